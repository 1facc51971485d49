"""A directory's recent sync runs as numbers for the directory page: the duration and the changes of
each of the last runs, drawn as server-side SVG bar charts (``ops`` ``bar_chart``) with the same
numbers as a table. Read-only, one query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ops.dashboard import Series
from provisioning.models import ProvisioningRun, Source

CHANGE_KEYS = ("created", "updated", "blocked", "deactivated", "reactivated")
HISTORY_RUNS = 20


@dataclass(frozen=True)
class RunPoint:
    """One finished sync run: when, how it ended, how long it took (seconds) and its counts."""

    run_id: str
    started_at: datetime
    status: str
    status_label: str
    incremental: bool
    seconds: float
    counts: dict


@dataclass(frozen=True)
class SyncHistory:
    """The last runs (oldest first) and the two charts drawn from them."""

    runs: list[RunPoint]
    durations: Series
    changes: Series


def sync_history(source: Source, *, limit: int = HISTORY_RUNS) -> SyncHistory:
    """The source's last ``limit`` finished, real (not dry) sync runs, oldest first."""
    rows = (ProvisioningRun.objects.filter(source=source, kind=ProvisioningRun.Kind.SYNC, dry_run=False,
                                           finished_at__isnull=False)
            .order_by("-started_at", "-id")[:limit])
    runs = [RunPoint(run_id=r.run_id, started_at=r.started_at, status=r.status, status_label=r.get_status_display(),
                     incremental=bool(r.counts.get("incremental")),
                     seconds=round((r.finished_at - r.started_at).total_seconds(), 1), counts=r.counts)
            for r in reversed(list(rows))]
    starts = [p.started_at for p in runs]
    durations = Series(starts, {"seconds": [p.seconds for p in runs]})
    changes = Series(starts, {key: [int(p.counts.get(key, 0)) for p in runs] for key in CHANGE_KEYS})
    return SyncHistory(runs=runs, durations=durations, changes=changes)
