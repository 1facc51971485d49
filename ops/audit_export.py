"""Audit export as JSON lines (the CSV export is ``accounts.views._audit_rows``); both stop at the limit."""

from __future__ import annotations

import json
from collections.abc import Iterator

# Exports stop here: a bigger slice belongs in a backup, not in a browser download.
AUDIT_EXPORT_LIMIT = 100_000


def jsonl_rows(events) -> Iterator[str]:
    """One JSON object per line, same fields as the CSV export; values keep their JSON types."""
    for e in events.iterator(chunk_size=2000):
        yield json.dumps({
            "time": e.created_at.isoformat(), "actor": e.actor_label, "actor_type": e.actor_type,
            "action": e.action, "target_type": e.target_type, "target_id": e.target_id,
            "target": e.target_label, "field": e.field, "old_value": e.old_value, "new_value": e.new_value,
            "source": e.source, "request_id": e.request_id, "job_id": e.job_id,
            "ip_address": e.ip_address, "message": e.message,
        }, ensure_ascii=False, default=str) + "\n"
