"""Signal handlers: seed the role catalogue after migrate; audit sign-ins and sign-in failures."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_migrate
from django.dispatch import receiver

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


@receiver(user_logged_in)
def audit_login(sender, request, user, **kwargs) -> None:
    method = getattr(user, "backend", "") or ""
    record_event(actor=_actor(request, user.get_username(), user), action="auth.login_succeeded",
                 target_type="user", target_id=user.pk, target_label=user.get_username(),
                 new={"method": "sso" if "saml" in method.lower() else "password"})


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
    record_event(actor=_actor(request, username or "(unknown)"), action="auth.login_failed",
                 target_type="user", target_label=username, new={"reason": "invalid_credentials"})
