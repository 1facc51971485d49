"""A run's live progress: what it is doing and how far it got, written cheaply while it works and read
by the run page's poller (``provisioning.views.run_progress``).

A run writes its phase, the number of entries read and the number handed to the identity service
(``progress_done``) with one UPDATE per batch, never per entry. A directory sync sets
``progress_done`` itself after each batch: the steps it calls count their own batches in it.
``progress_total`` is an estimate where the total is not known in advance (a directory's users
linked before the run); an incremental run has none, and the page shows the counts without a bar.
"""

from __future__ import annotations

from provisioning.models import ProvisioningRun

PHASES = {
    "": "Starting",
    "groups": "Reading groups",
    "users": "Reading users",
    "anchors": "Checking every anchor for deleted or moved-out users",
    "lifecycle": "Blocking users gone from the directory",
    "mirror": "Mirroring groups",
    "deactivating": "Deactivating users past their grace period",
}


def record_progress(run: ProvisioningRun, *, phase: str, read: int | None = None,
                    written: int | None = None) -> None:
    """Store ``phase`` (a ``PHASES`` key) and, when given, the entries read and handed to the identity
    service so far: one UPDATE."""
    run.progress_phase = phase
    fields = {"progress_phase": phase}
    if read is not None:
        run.progress_read = read
        fields["progress_read"] = read
    if written is not None:
        run.progress_done = written
        fields["progress_done"] = written
    ProvisioningRun.objects.filter(pk=run.pk).update(**fields)


def progress_json(run: ProvisioningRun) -> dict:
    """What the run page's poller shows: status, phase, entries read and written, the estimated total,
    the bar's value (``done``, at most the total) and percentage (``None`` when no total is known), and
    whether the run has finished."""
    running = run.status == ProvisioningRun.Status.RUNNING
    done = max(run.progress_read, run.progress_done)
    percent = None
    if run.progress_total:  # an estimate may be passed (a directory that grew): the bar waits at 99 %
        done = min(done, run.progress_total) if running else run.progress_total
        percent = min(99, int(100 * done / run.progress_total)) if running else 100
    return {
        "status": run.status, "status_label": run.get_status_display(),
        "phase": run.progress_phase, "phase_label": PHASES.get(run.progress_phase, run.progress_phase) if running
        else run.get_status_display(),
        "read": run.progress_read, "written": run.progress_done, "total": run.progress_total, "done": done,
        "percent": percent, "finished": not running, "text": progress_text(run),
    }


def progress_text(run: ProvisioningRun) -> str:
    """The counts in words, e.g. "12,000 of about 100,000 entries read · 3,000 written"."""
    if run.kind == ProvisioningRun.Kind.SYNC:
        total = f" of about {run.progress_total:,}" if run.progress_total else ""
        return f"{run.progress_read:,}{total} entries read · {run.progress_done:,} written"
    total = f" of {run.progress_total:,}" if run.progress_total else ""
    return f"{run.progress_done:,}{total} done"
