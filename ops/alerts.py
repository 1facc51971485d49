"""Admin-role alerts: when an admin role is granted, every Customer Cloud Admin gets an email.

Driven by the audit events the identity service writes (``user.role_added``), so every front door
(console, bulk upload, SCIM, directory sync) alerts without code of its own. Mail goes out after the
transaction commits; a failure to send is logged and audited, never undoes the grant.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.dispatch import receiver

from accounts.identity.audit import events_saved

log = logging.getLogger("idm.ops.alerts")


def _admin_role_names() -> set[str]:
    from accounts.models import Role

    return set(Role.objects.filter(is_admin_role=True).values_list("name", flat=True))


@receiver(events_saved, dispatch_uid="ops_admin_role_alerts")
def on_events_saved(sender, events, **kwargs) -> None:
    grants = [e for e in events if e.action == "user.role_added"]
    if not grants:
        return
    admin_roles = _admin_role_names()
    grants = [g for g in grants if g.new_value in admin_roles]
    if grants:
        snapshot = [_grant(g) for g in grants]
        transaction.on_commit(lambda: send_admin_role_alerts(snapshot))


def _grant(event) -> dict:
    return {"username": event.target_label, "role": event.new_value, "by": event.actor_label,
            "source": event.source, "at": event.created_at, "job_id": event.job_id}


def _org_of(username: str) -> str:
    from django.contrib.auth.models import User

    user = User.objects.filter(username=username).select_related("profile__org").first()
    profile = getattr(user, "profile", None) if user else None
    return profile.org.full_name() if profile is not None and profile.org_id else "(no organization)"


def cloud_admin_emails() -> list[str]:
    """Email addresses of active Customer Cloud Admins (and superusers), sorted, without blanks."""
    from django.contrib.auth.models import User
    from django.db.models import Q

    from accounts.roles import CUSTOMER_CLOUD_ADMIN

    users = User.objects.filter(Q(groups__role__slug=CUSTOMER_CLOUD_ADMIN) | Q(is_superuser=True), is_active=True)
    return sorted({u.email for u in users.distinct() if u.email})


def send_admin_role_alerts(grants: list[dict]) -> int:
    """One email to each Customer Cloud Admin listing the grants; returns the number of messages."""
    from django.utils import timezone

    recipients = cloud_admin_emails()
    if not recipients:
        log.warning("admin role granted but no Customer Cloud Admin has an email address")
        return 0
    lines = []
    for g in grants:
        when = timezone.localtime(g["at"]) if g["at"] else timezone.localtime()
        lines.append(f"- {g['username']} was granted {g['role']} in {_org_of(g['username'])}\n"
                     f"  on {when:%Y-%m-%d %H:%M %Z} by {g['by']} (source: {g['source']}).")
    # Fixed text: usernames come from admins and providers, and idm's sender must not say their words.
    subject = "idm: admin role granted" if len(grants) == 1 else f"idm: {len(grants)} admin roles granted"
    body = ("An administrator role was granted in idm.\n\n" + "\n".join(lines) +
            f"\n\nReview it in the console: {settings.IDM_BASE_URL}/audit/?action=user.role_added\n"
            "You get this email because you are a Customer Cloud Admin.\n")
    messages = [EmailMessage(subject=subject, body=body, to=[address]) for address in recipients]
    try:
        return get_connection().send_messages(messages) or 0
    except Exception as exc:  # noqa: BLE001 - the grant stands; the failure is logged and audited
        from accounts.identity.audit import record_event
        from accounts.identity.types import Actor

        log.warning("admin role alert not sent: %s", type(exc).__name__)
        record_event(actor=Actor.system("alerts"), action="alert.send_failed", target_type="email",
                     new={"recipients": len(recipients), "error": type(exc).__name__}, message=subject)
        return 0
