"""Audit retention: delete audit events older than IDM_AUDIT_RETENTION_DAYS, and audit the purge itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import models, transaction
from django.utils import timezone

from ops.app_settings import ops_settings

BATCH = 10_000


@dataclass(frozen=True)
class PurgeResult:
    deleted: int
    before: datetime
    retention_days: int


def audit_purge(*, now: datetime | None = None, retention_days: int | None = None) -> PurgeResult:
    """Delete events created before ``now - retention_days`` in batches; record ``audit.purged``.

    Audit events are append-only for everyone else (``AppendOnlyQuerySet``): this is the one place that
    deletes them, through Django's base ``QuerySet.delete`` by primary-key batches. Each user's last
    event that set or confirmed their email address stays whatever its age: it says who vouches for
    the address reset links go to (``accounts.credentials.email_trust``, review 4 F1)."""
    from accounts.credentials.email_trust import current_email_setters
    from accounts.identity.audit import record_event
    from accounts.identity.types import Actor
    from accounts.models import AuditEvent

    days = ops_settings.audit_retention_days if retention_days is None else retention_days
    if days < 1:
        raise ValueError("retention must be at least one day")
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted = 0
    while True:
        ids = list(AuditEvent.objects.filter(created_at__lt=cutoff).exclude(current_email_setters())
                   .order_by("id").values_list("id", flat=True)[:BATCH])
        if not ids:
            break
        with transaction.atomic():
            count, _ = models.QuerySet.delete(models.QuerySet(AuditEvent).filter(id__in=ids))
        deleted += count
    record_event(actor=Actor.system("audit retention"), action="audit.purged", target_type="audit_log",
                 new={"deleted": deleted, "before": cutoff.isoformat(), "retention_days": days},
                 message=f"Deleted {deleted} audit events older than {cutoff:%Y-%m-%d %H:%M} UTC ({days} days).")
    return PurgeResult(deleted=deleted, before=cutoff, retention_days=days)


def outbox_purge(*, now: datetime | None = None) -> int:
    """Delete outbox messages older than IDM_OUTBOX_DAYS (they may hold set-password links)."""
    from ops.models import OutboxMessage

    cutoff = (now or timezone.now()) - timedelta(days=ops_settings.outbox_days)
    deleted, _ = OutboxMessage.objects.filter(created_at__lt=cutoff).delete()
    return deleted
