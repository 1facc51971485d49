"""Console password sign-in."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend

from accounts.identity.types import UserState


class ConsoleModelBackend(ModelBackend):
    """``ModelBackend`` that also refuses users whose directory state forbids signing in.

    Django already refuses ``is_active=False`` (blocked, deactivated); this also checks the profile
    state, so a user whose session was open when they were blocked is signed out on the next request
    (``get_user`` goes through ``user_can_authenticate``). SSO-only orgs are enforced by the sign-in
    view, which knows about break-glass users.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        # No username holds a NUL byte, and PostgreSQL refuses one in a query (a 500 instead of "wrong password").
        if isinstance(username, str) and "\x00" in username:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)

    def user_can_authenticate(self, user) -> bool:
        if not super().user_can_authenticate(user):
            return False
        profile = getattr(user, "profile", None)
        return profile is None or profile.state in (UserState.ACTIVE, UserState.INVITED)
