"""Required actions at sign-in: a user who must change their password can open nothing else.

At a password sign-in (``on_login``) the user's pending "change password" action is copied into the
session; ``RequiredActionsMiddleware`` then sends every page to ``/account/new-password/`` until it
is done (sign-out, the recovery codes shown after enrolment and static files stay reachable).
Two-factor enrolment is enforced earlier, by ``accounts.mfa.flow`` before the sign-in completes.
SSO sign-ins are left alone: the identity provider owns those credentials.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.shortcuts import redirect
from django.urls import reverse

from accounts.redirects import local_path

REQUIRED_KEY = "_idm_required_password_change"
NEXT_KEY = "_idm_required_next"
RECOVERY_CODES_KEY = "_idm_new_recovery_codes"


@receiver(user_logged_in)
def on_login(sender, request, user, **kwargs) -> None:
    from accounts.credentials.models import RequiredAction

    if request is None or "saml" in (getattr(user, "backend", "") or "").lower():
        return
    pending = set(RequiredAction.objects.filter(user=user).values_list("kind", flat=True))
    if RequiredAction.Kind.CHANGE_PASSWORD in pending:
        request.session[REQUIRED_KEY] = True
    if RequiredAction.Kind.ENROL_MFA in pending:
        # Signed in with a password: the flow made them enrol, or they already had a device (a code was asked).
        from accounts.credentials.service import complete_action
        from accounts.identity.types import Actor
        from accounts.mfa.flow import confirmed_device

        if confirmed_device(user) is not None:
            complete_action(actor=Actor.for_user(user, request=request), user=user, kind=RequiredAction.Kind.ENROL_MFA)


class RequiredActionsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        session = getattr(request, "session", None)
        if session is not None and session.get(REQUIRED_KEY) and request.user.is_authenticated:
            target = reverse("accounts:required_password")
            allowed = (target, reverse("accounts:logout"), reverse("accounts:recovery_codes"))
            if request.path not in allowed and not request.path.startswith(settings.STATIC_URL):
                if request.method == "GET" and NEXT_KEY not in session:
                    session[NEXT_KEY] = local_path(request.get_full_path()[:500], reverse("accounts:home"))
                return redirect(target)
        return self.get_response(request)
