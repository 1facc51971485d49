"""Signal handlers: seed the role catalogue after migrate; audit sign-ins and sign-in failures."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_migrate
from django.dispatch import receiver
from django.utils.module_loading import import_string

from accounts.backends import sign_in_failure
from accounts.identity.audit import record_event
from accounts.identity.types import Actor


@receiver(post_migrate)
def seed_after_migrate(sender, **kwargs) -> None:
    if getattr(sender, "name", "") != "accounts":
        return
    from accounts.roles import seed_roles

    seed_roles()


def _actor(request, label: str, user=None) -> Actor:
    return Actor(
        label=label, type="user" if user else "anonymous", user=user,
        request_id=getattr(request, "request_id", "") if request else "",
        ip=getattr(request, "client_ip", None) if request else None,
    )


def _describe_sign_in(request, user) -> tuple[dict, str]:
    """The sign-in method for the audit: a backend may describe it (``describe_sign_in(user)``, e.g. the
    directory password backend names the directory), else "sso" or "password"."""
    # ``login(request, user, backend=...)`` (after the two-factor step) leaves ``user.backend`` unset; the
    # session has it.
    session = getattr(request, "session", None)
    method = getattr(user, "backend", "") or (session.get(BACKEND_SESSION_KEY, "") if session is not None else "")
    if method in settings.AUTHENTICATION_BACKENDS:
        describe = getattr(import_string(method), "describe_sign_in", None)
        if describe is not None:
            return describe(user)
    return {"method": "sso" if "saml" in method.lower() else "password"}, ""


@receiver(user_logged_in)
def audit_login(sender, request, user, **kwargs) -> None:
    new, message = _describe_sign_in(request, user)
    record_event(actor=_actor(request, user.get_username(), user), action="auth.login_succeeded",
                 target_type="user", target_id=user.pk, target_label=user.get_username(),
                 new=new, message=message)


@receiver(user_logged_out)
def audit_logout(sender, request, user, **kwargs) -> None:
    if user is not None:
        record_event(actor=_actor(request, user.get_username(), user), action="auth.logout",
                     target_type="user", target_id=user.pk, target_label=user.get_username())


@receiver(user_login_failed)
def audit_login_failed(sender, credentials, request=None, **kwargs) -> None:
    # ``credentials`` has the password already cleansed by Django; we keep only the username.
    # PostgreSQL refuses NUL bytes in text: a forged username must not turn "wrong password" into a 500.
    username = str(credentials.get("username", "")).replace("\x00", "\ufffd")[:150]
    failure = sign_in_failure(request)  # a backend's reason (e.g. the directory did not answer)
    new = {"reason": failure.reason, **failure.detail} if failure else {"reason": "invalid_credentials"}
    record_event(actor=_actor(request, username or "(unknown)"), action="auth.login_failed",
                 target_type="user", target_label=username, new=new)
