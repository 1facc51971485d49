"""Celery tasks of the ops app: thin wrappers around ops.backup and ops.retention."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="ops.backup_daily")
def backup_daily() -> dict:
    """The daily backup (beat); a failure is recorded and audited by ``backup_create`` and re-raised."""
    from ops.backup import backup_create

    record = backup_create(trigger="schedule")
    return {"file": record.path, "size_bytes": record.size_bytes}


@shared_task(name="ops.audit_purge")
def audit_purge_daily() -> dict:
    """The daily audit retention purge (beat); also drops old outbox messages."""
    from ops.retention import audit_purge, outbox_purge

    result = audit_purge()
    return {"deleted": result.deleted, "before": result.before.isoformat(), "outbox_deleted": outbox_purge()}


@shared_task(name="ops.dashboard_warm")
def dashboard_warm() -> str:
    """Keep the dashboard's past-day counts cached (beat, every 30 minutes)."""
    from ops.dashboard import warm

    warm()
    return "ok"
