"""Console password sign-in, and what every password backend shares: who may sign in at all, and how
a backend tells the sign-in page why an attempt failed when "wrong password" would mislead."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.backends import ModelBackend

from accounts.identity.types import UserState

_FAILURE_ATTRIBUTE = "idm_sign_in_failure"


def account_may_sign_in(user) -> bool:
    """Active in Django and, when the user has a profile, active or invited (not blocked or deactivated)."""
    if not getattr(user, "is_active", False):
        return False
    profile = getattr(user, "profile", None)
    return profile is None or profile.state in (UserState.ACTIVE, UserState.INVITED)


@dataclass(frozen=True)
class SignInFailure:
    """Why a backend refused, beyond "wrong username or password".

    ``reason`` goes to the ``auth.login_failed`` audit event with ``detail`` (never a password);
    ``message`` (when set) replaces the page's one failure message — only for failures that say
    nothing about the password, e.g. a directory that did not answer. ``password_checked=False``
    means nobody learnt anything about the password, so only the address's throttle counter moves.
    """

    reason: str
    message: str = ""
    password_checked: bool = True
    detail: dict = field(default_factory=dict)


def note_sign_in_failure(request, failure: SignInFailure) -> None:
    """Record ``failure`` on the request for the sign-in page and the failure audit (last one wins)."""
    if request is not None:
        setattr(request, _FAILURE_ATTRIBUTE, failure)


def sign_in_failure(request) -> SignInFailure | None:
    """The failure a backend noted during this request's ``authenticate``, if any."""
    return getattr(request, _FAILURE_ATTRIBUTE, None) if request is not None else None


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
        return account_may_sign_in(user)
