"""An applied bulk upload as a provisioning run with a change journal (issue 8).

The upload's apply is one ``ProvisioningRun`` of kind "bulk_upload" (no source; started by the
confirming admin) whose ``run_id`` is the upload's id, the ``job_id`` its audit events already carry,
so the audit log links them to the run. The service's per-row results are journaled by
``provisioning.journal.apply_journaled`` (the one journal writer: field, old -> new, applied or
refused with the service's code, ``ref`` = line number); rows the upload refused itself (validation
errors, or every error of an "only if no errors" upload that applied nothing) are journaled here
with their line, code and message.

This is the seam between ``accounts`` and ``provisioning``: ``accounts.bulk_upload.apply`` imports
this module inside ``apply_upload`` only, so nothing in ``accounts`` loads ``provisioning`` at import
time (docs/architecture.md, "Layers").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from accounts.bulk_upload.models import BulkUpload
from accounts.bulk_upload.parser import Row
from accounts.bulk_upload.validate import RowOutcome
from accounts.identity.types import Actor, IdentityChange
from provisioning.journal import JournalRecorder, apply_journaled, finish_run, start_run
from provisioning.models import JournalEntry, ProvisioningRun


def upload_run(upload: BulkUpload) -> ProvisioningRun | None:
    """The run (journal) of an applied upload, if it has one (uploads applied before issue 8 have none)."""
    return ProvisioningRun.objects.filter(run_id=upload.job_id, kind=ProvisioningRun.Kind.BULK_UPLOAD).first()


class UploadJournal:
    """The run of one upload's apply: start, journal rows and service results, finish."""

    def __init__(self, run: ProvisioningRun, actor: Actor):
        self.run = run
        self.actor = actor
        self.counts = {"created": 0, "updated": 0, "unchanged": 0, "refused": 0}

    @classmethod
    def start(cls, upload: BulkUpload, *, actor: Actor, total: int) -> UploadJournal:
        """Create the upload's run (status "running"); its run id is the upload's id."""
        run = start_run(kind=ProvisioningRun.Kind.BULK_UPLOAD, actor=actor, total=total, run_id=upload.job_id)
        return cls(run, actor)

    def refused_rows(self, outcomes: Iterable[RowOutcome], rows: Iterable[Row]) -> None:
        """One "refused" entry per row in error (subject "row", the first error's code, every message)."""
        usernames = {row.line: row.cells.get("username", "") for row in rows}
        recorder = JournalRecorder(self.run)
        for outcome in sorted(outcomes, key=lambda o: o.line):
            if outcome.status != "error" or not outcome.errors:
                continue
            recorder.add(subject="row", result=JournalEntry.Result.REFUSED,
                         user_label=outcome.username or usernames.get(outcome.line, ""),
                         code=outcome.errors[0].code, message=outcome.message(), ref=outcome.line)
            self.counts["refused"] += 1
        recorder.flush()

    def apply(self, *, changes: list[IdentityChange], batch_size: int, on_progress: Callable[[int], None],
              on_result: Callable[[IdentityChange, Any], None]) -> None:
        """Apply ``changes`` through the identity service as this run, journaling every result."""
        counts = apply_journaled(changes=changes, actor=self.actor, run=self.run, batch_size=batch_size,
                                 on_result=on_result, on_progress=on_progress)
        for key, value in counts.items():
            self.counts[key] = self.counts.get(key, 0) + value

    def finish(self, *, error: str = "") -> ProvisioningRun:
        """Mark the run succeeded (or failed with ``error``) with its counts."""
        return finish_run(self.run, counts=self.counts, error=error)
