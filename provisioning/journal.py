"""The change journal: every provisioning run or request records what it changed, field by field.

A run (``ProvisioningRun``) is started before the work and finished after it; its ``run_id`` is the
``job_id`` of the actor doing the work, so every audit event the identity service writes links back
to the run. ``record_change_results`` turns the service's per-change results into journal entries:
which fields the service changed (its decision, not re-computed here), the value before (read before
the write by ``snapshot_users``) and the value asked for. A dry run goes through the same code and
records the same entries as ``planned`` while the service writes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from django.contrib.auth.models import User
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.identity.bulkio import insert_rows
from accounts.identity.types import UNSET, Actor, IdentityChange, Mode
from accounts.models import ExternalIdentity, Role, UserProfile
from provisioning.models import JournalEntry, ProvisioningRun, Source

FLUSH_EVERY = 2000
COPY_MIN = 50  # fewer entries than this are inserted with one INSERT
_SECRET_SUBJECTS = frozenset({"password", "password_hash"})


def start_run(*, kind: str, actor: Actor, source: Source | None = None, dry_run: bool = False,
              total: int = 0, run_id: str = "") -> ProvisioningRun:
    """Create the run record (status "running"); ``run_id`` defaults to a new random id (a caller whose
    audit events already carry a job id, like a bulk upload, passes that one)."""
    extra = {"run_id": run_id} if run_id else {}
    return ProvisioningRun.objects.create(kind=kind, source=source, dry_run=dry_run, progress_total=total,
                                          started_by_label=actor.label[:255], **extra)


def run_actor(actor: Actor, run: ProvisioningRun) -> Actor:
    """``actor`` with the run id as its job id, so the audit log links each event to the run."""
    return replace(actor, job_id=run.run_id)


def finish_run(run: ProvisioningRun, *, counts: dict[str, int], error: str = "") -> ProvisioningRun:
    """Mark the run finished (failed when ``error`` is given) with its counts."""
    run.counts = counts
    run.error = error
    run.status = ProvisioningRun.Status.FAILED if error else ProvisioningRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.save(update_fields=["counts", "error", "status", "finished_at"])
    return run


def snapshot_users(user_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The journal-relevant state of users before a write: names, email, org, state, roles (sorted)."""
    ids = [i for i in user_ids if i]
    out: dict[int, dict[str, Any]] = {}
    for row in User.objects.filter(pk__in=ids).values("pk", "username", "email", "first_name", "last_name"):
        out[row.pop("pk")] = row
    for row in UserProfile.objects.filter(user_id__in=ids).values("user_id", "org_id", "state", "notes"):
        out.setdefault(row["user_id"], {}).update(org=row["org_id"], state=row["state"], notes=row["notes"])
    roles: dict[int, list[str]] = defaultdict(list)
    role_by_group = dict(Role.objects.values_list("group_id", "slug"))
    for user_id, group_id in User.groups.through.objects.filter(
            user_id__in=ids, group_id__in=list(role_by_group)).values_list("user_id", "group_id"):
        roles[user_id].append(role_by_group[group_id])
    for user_id in out:
        out[user_id]["roles"] = sorted(roles.get(user_id, []))
    return out


def _asked(change: IdentityChange, subject: str) -> Any:
    """The value ``change`` asks for ``subject`` (as shown in the journal)."""
    if subject in _SECRET_SUBJECTS or subject == "password":
        return "(changed)"
    if subject == "org":
        return change.org_id if change.org_id is not UNSET else None
    if subject == "roles":
        if change.roles is not UNSET:
            return sorted(change.roles)
        return {"add": sorted(change.roles_add), "remove": sorted(change.roles_remove)}
    if subject == "groups":
        if change.groups is not UNSET:
            return sorted(change.groups)
        return {"add": sorted(change.groups_add), "remove": sorted(change.groups_remove)}
    if subject == "owner":
        return change.owner_source_id if change.owner_source_id is not UNSET else None
    if subject == "link":
        link = change.link or change.match_link
        return link.external_id if link else None
    value = getattr(change, subject, UNSET)
    return None if value is UNSET else value


def _user_id(result: Any) -> int | None:
    # ``ChangeResult.user_id`` after the service split; ``user.pk`` before it.
    user_id = getattr(result, "user_id", None)
    if user_id is None and getattr(result, "user", None) is not None:
        user_id = result.user.pk
    return user_id


class JournalRecorder:
    """Collects journal entries of one run and inserts them in batches (``COPY`` on PostgreSQL: a
    first directory sync journals 100k created users, and Django's ``bulk_create`` of the model
    instances was a tenth of it)."""

    COLUMNS = ("run_id", "user_id", "user_label", "subject", "old_value", "new_value", "result", "code", "message",
               "ref")

    def __init__(self, run: ProvisioningRun):
        self.run = run
        self.pending: list[tuple] = []  # rows of COLUMNS
        self.written = 0

    def add(self, *, subject: str, result: str, user_id: int | None = None, user_label: str = "",
            old: Any = None, new: Any = None, code: str = "", message: str = "", ref: Any = "") -> None:
        self.pending.append((self.run.pk, user_id, str(user_label)[:255], subject[:64], old, new, result, code[:64],
                             message, "" if ref is None else str(ref)[:255]))
        if len(self.pending) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            if len(self.pending) >= COPY_MIN:
                insert_rows(JournalEntry, self.COLUMNS, self.pending)
            else:  # a statement, not a sequence lookup and a COPY
                JournalEntry.objects.bulk_create([JournalEntry(**dict(zip(self.COLUMNS, row, strict=True)))
                                                  for row in self.pending])
            self.written += len(self.pending)
            self.pending = []


def record_change_results(
    recorder: JournalRecorder,
    *,
    changes: Sequence[IdentityChange],
    results: Sequence[Any],
    before: dict[int, dict[str, Any]],
    dry_run: bool,
) -> None:
    """Journal entries for the service's results of ``changes`` (same order): refusals with their
    code and message, and one entry per field the service changed (or would change)."""
    done = JournalEntry.Result.PLANNED if dry_run else JournalEntry.Result.APPLIED
    for change, result in zip(changes, results, strict=True):
        # A refused update has no result user: the change names it (adoption refusals, review F10).
        user_id = _user_id(result) or (change.user_id if isinstance(change.user_id, int) else None)
        label = change.username if change.username is not UNSET else before.get(user_id, {}).get("username", "")
        if result.status == "refused":
            error = result.error
            recorder.add(subject="change", result=JournalEntry.Result.REFUSED, user_id=user_id, user_label=label,
                         code=getattr(error, "code", "refused"), message=getattr(error, "message", str(error)),
                         ref=change.ref)
            continue
        old_state = before.get(user_id, {}) if result.status != "created" else {}
        for subject in result.changed_fields:
            recorder.add(subject=subject, result=done, user_id=user_id, user_label=label,
                         old=None if subject in _SECRET_SUBJECTS else old_state.get(subject),
                         new=_asked(change, subject), ref=change.ref)
    recorder.flush()


def _matched_user_ids(changes: Sequence[IdentityChange]) -> set[int]:
    """Users the changes will probably match (by id, username or link), read before the write.
    A create-only change never changes the user it matches (the service refuses it), so it needs
    no state from before (a first directory sync looked up 100k usernames for nothing)."""
    changes = [c for c in changes if c.mode != Mode.CREATE]
    ids = {c.user_id for c in changes if c.user_id}
    names = {c.username.lower() for c in changes if isinstance(c.username, str)}
    if names:
        ids |= set(User.objects.annotate(lname=Lower("username")).filter(lname__in=names).values_list("pk", flat=True))
    # One IN per (source, provider), not an OR per link: SQLite refuses an expression tree deeper
    # than 1000, which a 1,000-change batch of a directory sync would build.
    by_provider: dict[tuple[str, str], set[str]] = defaultdict(set)
    for change in changes:
        link = change.match_link or change.link
        if link:
            by_provider[(link.source, link.provider)].add(link.external_id)
    for (source, provider), external_ids in by_provider.items():
        ids |= set(ExternalIdentity.objects.filter(source=source, provider=provider, external_id__in=list(external_ids))
                   .values_list("user_id", flat=True))
    return ids


def apply_journaled(*, changes: Iterable[IdentityChange], actor: Actor, run: ProvisioningRun,
                    dry_run: bool = False, batch_size: int = 1000, track_progress: bool = True,
                    on_refused: Callable[[IdentityChange, Any], None] | None = None,
                    on_result: Callable[[IdentityChange, Any], None] | None = None,
                    on_progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Apply ``changes`` through the identity service as part of ``run`` and journal them.

    Works batch by batch (state read before each batch, then the service's bulk path), so memory
    stays flat; returns the counts (created/updated/unchanged/refused). Dry runs write only the journal.
    ``on_refused(change, error)`` is called for each change the service refused (also in a dry run),
    so a caller journaling more about a change (a grant row it ends) records the real outcome.
    ``on_result(change, result)`` sees every result (a front door's own report, e.g. a bulk upload's
    per-line result); ``on_progress(done)`` gets the changes done so far after each batch.
    """
    from accounts.identity.service import apply_identity_changes

    actor = run_actor(actor, run)
    recorder = JournalRecorder(run)
    counts = {"created": 0, "updated": 0, "unchanged": 0, "refused": 0}
    batch: list[IdentityChange] = []
    done = [0]

    def flush_batch() -> None:
        before = snapshot_users(_matched_user_ids(batch))
        results = apply_identity_changes(changes=batch, actor=actor, dry_run=dry_run, batch_size=batch_size).results
        record_change_results(recorder, changes=batch, results=results, before=before, dry_run=dry_run)
        for change, result in zip(batch, results, strict=True):
            counts[result.status] += 1
            if on_refused is not None and result.status == "refused":
                on_refused(change, result.error)
            if on_result is not None:
                on_result(change, result)
        done[0] += len(batch)
        if track_progress:
            run.progress_done += len(batch)
            ProvisioningRun.objects.filter(pk=run.pk).update(progress_done=run.progress_done)
        if on_progress is not None:
            on_progress(done[0])
        batch.clear()

    for change in changes:
        batch.append(change)
        if len(batch) >= batch_size:
            flush_batch()
    if batch:
        flush_batch()
    return counts
