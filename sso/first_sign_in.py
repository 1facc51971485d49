"""An invited user who signs in through their identity provider is no longer "Invited".

Users of SSO orgs never set a password, so the invitation is completed by their first SSO sign-in:
the identity service moves them from invited to active (audited as ``user.state`` by
"SSO: <provider>"). Runs on Django's ``user_logged_in`` for sessions started by the SAML backend.
"""

from __future__ import annotations

import logging

from accounts.exceptions import IdentityError
from accounts.identity.service import apply_identity_change
from accounts.identity.types import Actor, IdentityChange, Mode, Source, UserState

logger = logging.getLogger(__name__)

SAML_BACKEND = "sso.backends.IdmSaml2Backend"


def activate_after_sso_sign_in(sender, request=None, user=None, **kwargs) -> None:
    """``user_logged_in`` receiver: invited → active after a successful SSO sign-in."""
    from django.contrib.auth import BACKEND_SESSION_KEY

    session = getattr(request, "session", None) if request is not None else None
    backend = (session.get(BACKEND_SESSION_KEY) if session is not None else None) or getattr(user, "backend", "")
    if user is None or backend != SAML_BACKEND:
        return
    profile = getattr(user, "profile", None)
    if profile is None or profile.state != UserState.INVITED:
        return
    from sso.signin import sso_provider_for

    provider = sso_provider_for(user)
    actor = Actor(label=f"SSO: {provider.name}"[:255] if provider else "SSO sign-in", type="system",
                  source=Source.SYSTEM, enforce_scope=False,
                  request_id=getattr(request, "request_id", "") if request else "",
                  ip=getattr(request, "client_ip", None) if request else None)
    try:
        apply_identity_change(change=IdentityChange(user_id=user.pk, state=UserState.ACTIVE, mode=Mode.UPDATE),
                              actor=actor)
    except IdentityError as exc:  # the sign-in itself succeeded; the state stays as it was
        logger.warning("could not activate %s after SSO sign-in: %s", user.get_username(), exc.code)
        return
    profile.refresh_from_db()
