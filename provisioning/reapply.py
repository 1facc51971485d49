"""Re-apply a source's rules to every user it owns (after the rules changed), as one journaled run.

For each linked user the stored ``SourceRecord`` is evaluated (``preview.user_diffs``, the same code
as the console preview, so what was previewed is what is applied); only users whose org, roles or
active state would change become ``IdentityChange`` values, applied through the identity service's
bulk path in batches with the source as actor. Roles: the source removes only roles it granted
(``RoleGrant`` rows with this source) and records a grant row for each role it now grants; manual
grants are never removed, and a role the source stops granting that another grant still holds stays
(only the source's grant row goes: ``UserDiff.grants_release``). The grant rows themselves are written by the identity service's writer
(``accounts/identity/grants.py``), in the same statements batch as the roles. Inactive / back again
goes through ``provisioning.lifecycle``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from django.db import transaction

from accounts.exceptions import IdentityError
from accounts.identity.orgs import org_create
from accounts.identity.types import UNSET, IdentityChange, Mode
from accounts.models import Organization
from provisioning.journal import JournalRecorder, apply_journaled, finish_run, run_actor, start_run
from provisioning.lifecycle import journal_states, source_actor, source_says_active, source_says_inactive
from provisioning.models import JournalEntry, ProvisioningRun, Source
from provisioning.preview import UNCHANGED, UserDiff, user_diffs
from provisioning.resolve import source_links

BATCH = 1000
PROGRESS_EVERY_SECONDS = 1.0


def _org_for(diff: UserDiff, created: dict, actor, recorder: JournalRecorder, dry_run: bool) -> int | None:
    """The org id a diff moves the user to, creating a named org once per run (never in a dry run)."""
    if diff.create_org is None:
        return diff.org_after_id
    name, parent_id = diff.create_org
    key = (name.lower(), parent_id)
    if key not in created:
        if dry_run:
            created[key] = None
        else:
            try:
                created[key] = org_create(actor=actor, name=name, parent=Organization.objects.get(pk=parent_id)).pk
                recorder.add(subject="org_created", result=JournalEntry.Result.APPLIED, new=name)
            except (IdentityError, Organization.DoesNotExist) as exc:
                created[key] = None
                recorder.add(subject="org_created", result=JournalEntry.Result.REFUSED, new=name,
                             code=getattr(exc, "code", "org_not_found"), message=str(exc))
    return created[key]


def reapply_rules(*, source: Source, run: ProvisioningRun | None = None, dry_run: bool = False,
                  batch_size: int = BATCH, on_progress: Callable[[int], None] | None = None) -> ProvisioningRun:
    """Apply ``source``'s saved rules to all its linked users; return the finished run."""
    actor = source_actor(source)
    run = run or start_run(kind=ProvisioningRun.Kind.RULES_REAPPLY, actor=actor, source=source, dry_run=dry_run)
    run.progress_total = source_links(source).count()
    run.save(update_fields=["progress_total"])
    try:
        counts = apply_rules(source=source, run=run, dry_run=dry_run, batch_size=batch_size, on_progress=on_progress)
    except Exception as exc:  # the run must end as "failed" with the reason, never stay "running"
        finish_run(run, counts={}, error=f"{type(exc).__name__}: {exc}")
        raise
    return finish_run(run, counts=counts)


def apply_rules(*, source: Source, run: ProvisioningRun, dry_run: bool = False, batch_size: int = BATCH,
                on_progress: Callable[[int], None] | None = None, user_ids=None, records=None,
                request_id: str = "") -> dict[str, int]:
    """The rules' org / roles / active decisions for the source's linked users (``user_ids``: some of
    them; ``records``: evaluate these instead of the stored ones), written as part of ``run``.
    ``request_id``: the front door's request (a SCIM call), carried by every audit event (issue 9).
    Returns counts; the caller finishes the run."""
    actor = replace(run_actor(source_actor(source), run), request_id=request_id)
    recorder = JournalRecorder(run)
    counts = {"users": 0, "updated": 0, "refused": 0, "blocked": 0, "reactivated": 0, "unchanged": 0, "errors": 0}
    created_orgs: dict = {}
    pending: list[UserDiff] = []

    def flush() -> None:
        changes = []
        for diff in pending:
            # grants_add: roles the source now grants, some perhaps already held by hand; the writer
            # records the source's grant row for each (accounts/identity/grants.py).
            roles_add = diff.gain | diff.grants_add
            org_id = _org_for(diff, created_orgs, actor, recorder, dry_run)
            if roles_add or diff.lose or diff.grants_release or org_id is not None:
                changes.append(IdentityChange(user_id=diff.user_id, mode=Mode.UPDATE, roles_add=roles_add,
                                              roles_remove=diff.lose, grants_release=diff.grants_release,
                                              org_id=org_id if org_id is not None else UNSET,
                                              ref=diff.username))
        refusals: dict[int, IdentityError] = {}
        with transaction.atomic():
            result_counts = apply_journaled(
                changes=changes, actor=actor, run=run, dry_run=dry_run, batch_size=batch_size, track_progress=False,
                on_refused=lambda change, error: refusals.__setitem__(change.user_id, error),
            ) if changes else {}
            counts["updated"] += result_counts.get("updated", 0)
            counts["refused"] += result_counts.get("refused", 0)
        accepted = JournalEntry.Result.PLANNED if dry_run else JournalEntry.Result.APPLIED
        for diff in pending:
            if diff.grants_release:  # the role stays (another grant holds it); the source's grant ends
                error = refusals.get(diff.user_id)
                # The grant row ends only if the service accepted the user's change: a refusal (the
                # privilege rule, the last admin...) leaves it, and the journal says so.
                recorder.add(subject="role_grant", user_id=diff.user_id, user_label=diff.username,
                             old=sorted(diff.grants_release), new=None, ref=diff.username,
                             message=getattr(error, "message", str(error)) if error else
                             "no longer granted by the source; still held through another grant",
                             code=getattr(error, "code", "refused") if error else "",
                             result=JournalEntry.Result.REFUSED if error else accepted)
        labels = {d.user_id: d.username for d in pending}
        inactive = [d.user_id for d in pending if d.inactive]
        back = [d.user_id for d in pending if d.reactivate]
        # Journaled from what the lifecycle (the identity service) really did, in a dry run too.
        if inactive:
            blocked = source_says_inactive(source=source, user_ids=inactive, actor=actor, dry_run=dry_run,
                                           reason="inactive by the source's rules")
            counts["blocked"] += blocked.blocked
            counts["refused"] += blocked.refused
            journal_states(recorder, blocked, new="blocked", dry_run=dry_run, labels=labels)
        if back:
            back_counts = source_says_active(source=source, user_ids=back, actor=actor, dry_run=dry_run)
            counts["reactivated"] += back_counts.unblocked + back_counts.reactivated
            counts["refused"] += back_counts.refused
            journal_states(recorder, back_counts, new="active", dry_run=dry_run, labels=labels)
        recorder.flush()
        pending.clear()

    done = 0
    progress_due = time.monotonic() + PROGRESS_EVERY_SECONDS
    for diff in user_diffs(source=source, rules=source.rule_set(), org_policy=source.org_policy(),
                           user_ids=user_ids, records=records):
        done += 1
        counts["users"] += 1
        if diff is not None and diff.error:
            counts["errors"] += 1
            recorder.add(subject="record", user_id=diff.user_id, user_label=diff.username, code=diff.error,
                         result=JournalEntry.Result.REFUSED, message="The stored source data cannot be evaluated.")
        elif diff is None or diff is UNCHANGED or not (diff.kinds() or diff.grants_add or diff.grants_release):
            counts["unchanged"] += 1
        else:
            pending.append(diff)
        if len(pending) >= batch_size:
            flush()
        if done % batch_size == 0 and time.monotonic() >= progress_due:
            # At most once a second: each update is a commit, and the progress bar polls no faster.
            progress_due = time.monotonic() + PROGRESS_EVERY_SECONDS
            ProvisioningRun.objects.filter(pk=run.pk).update(progress_done=done)
            if on_progress:
                on_progress(done)
    if pending:
        flush()
    ProvisioningRun.objects.filter(pk=run.pk).update(progress_done=done)
    run.progress_done = done
    recorder.flush()
    return counts
