"""Audit records. Identity changes are audited from ``service.py``; sign-in and configuration
events from their own modules, always through the helpers here so every record has the same shape."""

from __future__ import annotations

from typing import Any

from django.dispatch import Signal

from accounts.identity.types import Actor
from accounts.models import AuditEvent

# Sent with ``events`` (saved AuditEvent objects) after each save: alerts and metrics listen here
# (bulk_create sends no post_save).
events_saved = Signal()

# Fields whose values must never reach the audit log.
_SECRET_FIELDS = frozenset({"password", "password_hash", "token", "secret"})


def _clean(field: str, value: Any) -> Any:
    if field in _SECRET_FIELDS and value is not None:
        return "(changed)"
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return value


def build_event(
    *,
    actor: Actor,
    action: str,
    target_type: str = "",
    target_id: Any = "",
    target_label: str = "",
    field: str = "",
    old: Any = None,
    new: Any = None,
    message: str = "",
) -> AuditEvent:
    """An unsaved ``AuditEvent`` (the service saves them in bulk inside its transaction)."""
    from accounts.identity.bulkio import new_instance

    actor_user = getattr(actor, "user", None)
    if not getattr(actor_user, "pk", None):
        actor_user = None
    event = new_instance(
        AuditEvent,
        actor_id=actor_user.pk if actor_user is not None else None,
        actor_label=actor.label[:255],
        actor_type=actor.type,
        action=action,
        target_type=target_type,
        target_id=str(target_id) if target_id != "" else "",
        target_label=str(target_label)[:255],
        field=field,
        old_value=_clean(field, old),
        new_value=_clean(field, new),
        source=actor.source,
        request_id=actor.request_id or "",
        job_id=actor.job_id or "",
        ip_address=actor.ip or None,
        message=message,
    )
    if actor_user is not None:
        event._state.fields_cache["actor"] = actor_user  # as AuditEvent(actor=...) caches it
    return event


def record_event(**kwargs: Any) -> AuditEvent:
    """Build and save one event (for events outside a bulk write: sign-ins, config changes)."""
    event = build_event(**kwargs)
    event.save(force_insert=True)
    events_saved.send(sender=AuditEvent, events=[event])
    return event


def save_events(events: list[AuditEvent]) -> None:
    """Insert many events at once."""
    if events:
        from accounts.identity.bulkio import insert_objects

        insert_objects(AuditEvent, events)
        events_saved.send(sender=AuditEvent, events=events)
