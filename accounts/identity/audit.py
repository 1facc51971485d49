"""Audit records. Identity changes are audited from ``service.py``; sign-in and configuration
events from their own modules, always through the helpers here so every record has the same shape."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Iterator
from itertools import chain, islice
from typing import Any, NamedTuple

from django.db import connection
from django.dispatch import Signal
from django.utils import timezone

from accounts.identity.types import Actor
from accounts.models import AuditEvent

# Sent with ``events`` after each save: saved AuditEvent objects, or ``AuditRow`` tuples (the same
# attribute names) from ``save_event_rows``. Alerts and metrics listen here (bulk_create sends no post_save).
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


class AuditRow(NamedTuple):
    """One written audit record as ``save_event_rows`` writes it: the ``AuditEvent`` columns under
    their attribute names (no ``id``), so ``events_saved`` listeners read it as they read an event."""

    created_at: datetime.datetime
    actor_id: int | None
    actor_label: str
    actor_type: str
    action: str
    target_type: str
    target_id: str
    target_label: str
    field: str
    old_value: Any
    new_value: Any
    source: str
    request_id: str
    job_id: str
    ip_address: str | None
    message: str


# Fewer rows than this are inserted with ``bulk_create``: one statement, where ``COPY`` is its own.
ROWS_COPY_MIN = 50


def save_event_rows(*, actor: Actor, target_type: str, field: str = "",
                    events: Iterable[tuple[str, Any, str, Any, Any]], message: str = "") -> int:
    """Write one audit record per ``(action, target_id, target_label, old, new)`` in ``events``, with the
    same values ``build_event`` + ``save_events`` write, without building model instances: the
    actor's columns are worked out once, each JSON value is encoded once per distinct text value, and
    on PostgreSQL the rows go in with one ``COPY``. For the hundreds of thousands of records of one
    change (a first directory sync adds 170k memberships, one ``group.member_added`` each, issue 10),
    where ``AuditEvent`` instances and their per-field conversion were most of the time.

    ``events`` is read as it is written (``COPY_CHUNK`` at a time), so a generator keeps memory flat;
    ``events_saved`` is sent with each chunk's ``AuditRow`` tuples once the chunk is in the ``COPY``
    stream (inside the caller's transaction: listeners act on commit). Returns the number written."""
    actor_user = getattr(actor, "user", None)
    actor_id = getattr(actor_user, "pk", None) or None
    now = timezone.now()
    head = (now, actor_id, actor.label[:255], str(actor.type))
    ip = AuditEvent._meta.get_field("ip_address").get_prep_value(actor.ip or None)  # normalised, as saved
    tail = (str(actor.source), actor.request_id or "", actor.job_id or "", ip, message)

    def chunks() -> Iterator[list[AuditRow]]:
        pending = iter(events)
        while chunk := [AuditRow(*head, action, target_type, str(target_id) if target_id != "" else "",
                                 str(label)[:255], field, _clean(field, old), _clean(field, new), *tail)
                        for action, target_id, label, old, new in islice(pending, COPY_CHUNK)]:
            yield chunk

    rows = chunks()
    first = next(rows, [])
    if not first:
        return 0
    if connection.vendor == "postgresql" and len(first) >= ROWS_COPY_MIN:
        return _copy_rows(chain([first], rows))
    written = 0
    for chunk in chain([first], rows):  # a few rows, or another database: Django's bulk insert
        AuditEvent.objects.bulk_create([AuditEvent(**row._asdict()) for row in chunk], batch_size=1000)
        events_saved.send(sender=AuditEvent, events=chunk)
        written += len(chunk)
    return written


# COPY's text format: a backslash, tab, newline or carriage return inside a value is escaped.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NULL = "\\N"
_VARYING = ("target_id", "target_label", "action", "old_value", "new_value")  # the rest: one value per call
COPY_CHUNK = 5000  # rows per write to the COPY stream


def _copy_text(value: Any) -> str:
    return _NULL if value is None else str(value).translate(_COPY_ESCAPES)


def _json_text(value: Any) -> str:
    return _NULL if value is None else json.dumps(value).translate(_COPY_ESCAPES)


def _copy_rows(chunks: Iterator[list[AuditRow]]) -> int:
    """``COPY`` the rows of ``chunks`` (all from one ``save_event_rows`` call) into the audit table,
    formatted here in ``COPY``'s text format: the columns every row of the call shares are formatted
    once, and so is each (action, old, new) of text values (a membership event's group name), leaving
    two values per row to format. A JSON value goes as its JSON text, which the server parses as
    ``jsonb``; ``None`` is SQL NULL, as ``JSONField`` stores it."""
    from accounts.identity.bulkio import copy_text  # bulkio's writers import this module's events

    meta = AuditEvent._meta
    constant = [name for name in AuditRow._fields if name not in _VARYING]
    columns = [meta.get_field(name).column for name in (*_VARYING, *constant)]
    shared = ""
    middles: dict[tuple[str, Any, Any], str] = {}

    def middle(action: str, old: Any, new: Any) -> str:
        if (old is None or type(old) is str) and (new is None or type(new) is str):
            key = (action, old, new)
            text = middles.get(key)
            if text is None:
                text = middles[key] = f"{_copy_text(action)}\t{_json_text(old)}\t{_json_text(new)}\t{shared}"
            return text
        return f"{_copy_text(action)}\t{_json_text(old)}\t{_json_text(new)}\t{shared}"

    def texts() -> Iterator[tuple[str, int]]:
        nonlocal shared
        for chunk in chunks:
            if not shared:
                first = chunk[0]
                shared = "\t".join(first.created_at.isoformat() if name == "created_at"
                                    else _copy_text(getattr(first, name)) for name in constant) + "\n"
            yield "".join(
                f"{row.target_id.translate(_COPY_ESCAPES)}\t{row.target_label.translate(_COPY_ESCAPES)}\t"
                f"{middle(row.action, row.old_value, row.new_value)}" for row in chunk), len(chunk)
            events_saved.send(sender=AuditEvent, events=chunk)  # once the chunk is in the COPY

    return copy_text(AuditEvent, columns, texts())
