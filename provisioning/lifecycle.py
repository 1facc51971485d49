"""Block now, deactivate after the grace period (issue 8 "Lifecycle").

When a source says a user is inactive or gone, the user is blocked at once through the identity
service (which ends their sessions and audits with the source as actor) and a ``UserBlock`` row
records who blocked, why, and when the block becomes a deactivation. ``deactivate_due`` -- run by a
Celery beat sweep (``provisioning.tasks.deactivate_due_users``) -- deactivates every block whose time
has come. Nothing is held in a worker's memory, so a restart loses nothing: the next sweep finds
the rows.

A source saying "active" again lifts only its own block: within the grace period the user is
unblocked, after it reactivated. A block placed by an admin (a ``UserBlock`` without source, or a
blocked user with no row at all) is never lifted by a source.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.exceptions import IdentityError
from accounts.identity.service import apply_identity_changes
from accounts.identity.types import Actor, IdentityChange, Mode, UserState
from accounts.models import UserProfile
from provisioning.journal import JournalRecorder, finish_run, run_actor, start_run
from provisioning.models import JournalEntry, ProvisioningRun, Source, UserBlock


def source_actor(source: Source, *, job_id: str = "") -> Actor:
    """The actor for work a source does (audited as the provider or sync job)."""
    return Actor.provider_actor(source=source.kind, provider=source.slug, label=source.name, job_id=job_id)


@dataclass
class LifecycleCounts:
    """What a lifecycle call did. ``changed``: users whose state the service changed (or, in a dry run,
    would change); ``refusals``: users whose state change the service refused, with its error -- what
    a run journals per user (``journal_states``), so a refused block is never reported as applied."""

    blocked: int = 0
    deactivated: int = 0
    unblocked: int = 0
    reactivated: int = 0
    kept_admin_block: int = 0
    refused: int = 0
    errors: list[str] = field(default_factory=list)
    changed: set[int] = field(default_factory=set)
    refusals: dict[int, IdentityError] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if k not in ("errors", "changed", "refusals")}


def _apply_states(changes: list[IdentityChange], actor: Actor, counts: LifecycleCounts,
                  dry_run: bool = False) -> set[int]:
    """Apply state changes; the ids of users whose change was accepted (or was already in place)."""
    done: set[int] = set()
    if not changes:
        return done
    results = apply_identity_changes(changes=changes, actor=actor, dry_run=dry_run).results
    for change, result in zip(changes, results, strict=True):
        if result.status == "refused":
            counts.refused += 1
            counts.errors.append(f"{change.user_id}: {result.error.code}")
            counts.refusals[change.user_id] = result.error
        else:
            done.add(change.user_id)
            if result.status == "updated":
                counts.changed.add(change.user_id)
    return done


def journal_states(recorder: JournalRecorder, counts: LifecycleCounts, *, new: str, dry_run: bool,
                   labels: dict[int, str] | None = None, message: str = "") -> None:
    """One ``state`` journal entry per user a lifecycle call changed or was refused for: the real
    outcome (the service's code and message for a refusal), never "applied" for a change that did
    not happen. Users already in the state asked for get no entry."""
    done = JournalEntry.Result.PLANNED if dry_run else JournalEntry.Result.APPLIED
    labels = labels or {}
    for uid in sorted(counts.changed | set(counts.refusals)):
        error = counts.refusals.get(uid)
        if error is None:
            recorder.add(subject="state", user_id=uid, user_label=labels.get(uid, ""), new=new, result=done,
                         message=message)
        else:
            recorder.add(subject="state", user_id=uid, user_label=labels.get(uid, ""), new=new,
                         result=JournalEntry.Result.REFUSED, code=getattr(error, "code", "refused"),
                         message=getattr(error, "message", str(error)))


def source_says_inactive(*, source: Source, user_ids: Iterable[int], reason: str = "inactive at the source",
                         actor: Actor | None = None, now: datetime | None = None,
                         dry_run: bool = False) -> LifecycleCounts:
    """Block the users now and schedule their deactivation after the source's grace period.

    A user an admin already blocked stays blocked by the admin (the row keeps the admin's name and
    reason) but gets the deactivation date too: the source still says the user is gone.
    ``dry_run``: ask the service what it would do (refusals included) and write nothing.
    """
    actor = actor or source_actor(source)
    now = now or timezone.now()
    due = now + source.grace_period
    counts = LifecycleCounts()
    ids = list(user_ids)
    states = dict(UserProfile.objects.filter(user_id__in=ids).values_list("user_id", "state"))
    blocks = {b.user_id: b for b in UserBlock.objects.filter(user_id__in=ids)}
    to_block = [uid for uid in ids if states.get(uid) in (UserState.ACTIVE, UserState.INVITED)]
    with transaction.atomic():
        blocked = _apply_states(
            [IdentityChange(user_id=uid, state=UserState.BLOCKED, mode=Mode.UPDATE) for uid in to_block], actor, counts,
            dry_run=dry_run,
        )
        counts.blocked = len(blocked)
        if dry_run:
            return counts
        for uid in ids:
            state = states.get(uid)
            block = blocks.get(uid)
            if uid in blocked:
                UserBlock.objects.update_or_create(user_id=uid, defaults={
                    "source": source, "blocked_by_label": actor.label[:255], "reason": reason[:255],
                    "deactivate_after": due})
            elif state == UserState.BLOCKED:
                if block is None:
                    # Blocked before blocks were recorded: treat it as an admin's block.
                    UserBlock.objects.create(user_id=uid, source=None, blocked_by_label="(before provisioning)",
                                             reason="", deactivate_after=due)
                    counts.kept_admin_block += 1
                elif block.deactivate_after is None:
                    block.deactivate_after = due
                    block.save(update_fields=["deactivate_after"])
                    counts.kept_admin_block += block.source_id is None
    return counts


def source_says_active(*, source: Source, user_ids: Iterable[int], actor: Actor | None = None,
                       dry_run: bool = False) -> LifecycleCounts:
    """Lift this source's blocks: unblock within the grace period, reactivate after it.

    Admin blocks stay; a deactivation the source had scheduled on top of one is cancelled.
    ``dry_run``: ask the service what it would do (refusals included) and write nothing.
    """
    actor = actor or source_actor(source)
    counts = LifecycleCounts()
    ids = list(user_ids)
    blocks = {b.user_id: b for b in UserBlock.objects.filter(user_id__in=ids)}
    states = dict(UserProfile.objects.filter(user_id__in=ids).values_list("user_id", "state"))
    ours = [uid for uid, b in blocks.items() if b.source_id == source.pk]
    with transaction.atomic():
        done = _apply_states(
            [IdentityChange(user_id=uid, state=UserState.ACTIVE, mode=Mode.UPDATE) for uid in ours], actor, counts,
            dry_run=dry_run,
        )
        for uid in done:
            if states.get(uid) == UserState.DEACTIVATED:
                counts.reactivated += 1
            elif states.get(uid) == UserState.BLOCKED:
                counts.unblocked += 1
        if dry_run:
            return counts
        UserBlock.objects.filter(user_id__in=done, source=source).delete()
        admin_blocked = [uid for uid, b in blocks.items() if b.source_id is None]
        counts.kept_admin_block = len(admin_blocked)
        UserBlock.objects.filter(user_id__in=admin_blocked, source__isnull=True).update(deactivate_after=None)
    return counts


def deactivate_due(*, now: datetime | None = None, limit: int = 5000, source: Source | None = None) -> LifecycleCounts:
    """Deactivate blocked users whose grace period is over (the beat sweep; ``source``: only that
    source's blocks, as a directory sync does at its end). Safe to run twice at once: each row is
    claimed under a row lock, and a second sweep skips locked rows."""
    now = now or timezone.now()
    counts = LifecycleCounts()
    with transaction.atomic():
        rows = UserBlock.objects.select_for_update(skip_locked=True).filter(deactivate_after__lte=now)
        if source is not None:
            rows = rows.filter(source=source)
        due = list(rows.order_by("deactivate_after")
                   .values_list("pk", "user_id", "source_id")[:limit])
        by_source: dict[int | None, list[int]] = defaultdict(list)
        for _, user_id, source_id in due:
            by_source[source_id].append(user_id)
        sources = Source.objects.in_bulk([s for s in by_source if s is not None])
        rows = UserProfile.objects.filter(user_id__in=[u for _, u, _ in due]).values_list(
            "user_id", "state", "user__username")
        states, names = {}, {}
        for user_id, state, username in rows:
            states[user_id], names[user_id] = state, username
        # A sweep with work to do is a run: its audit events carry the run id, its journal lists them.
        run = start_run(kind=ProvisioningRun.Kind.LIFECYCLE, actor=Actor.system("deactivation sweep")) if due else None
        recorder = JournalRecorder(run) if run else None
        for source_id, user_ids in by_source.items():
            actor = source_actor(sources[source_id]) if source_id in sources else Actor.system("deactivation sweep")
            actor = run_actor(actor, run)
            wanted = [uid for uid in user_ids if states.get(uid) == UserState.BLOCKED]
            done = _apply_states(
                [IdentityChange(user_id=uid, state=UserState.DEACTIVATED, mode=Mode.UPDATE) for uid in wanted],
                actor, counts,
            )
            counts.deactivated += len(done)
            for uid in sorted(done):
                recorder.add(subject="state", user_id=uid, user_label=names.get(uid, ""), old=UserState.BLOCKED.value,
                             new=UserState.DEACTIVATED.value, result=JournalEntry.Result.APPLIED,
                             message="grace period over" if source_id in sources else "blocked by an admin")
            for uid in wanted:  # refused by the service (e.g. the last admin): journaled as refused
                error = counts.refusals.get(uid)
                if error is not None:
                    recorder.add(subject="state", user_id=uid, user_label=names.get(uid, ""),
                                 old=UserState.BLOCKED.value, new=UserState.DEACTIVATED.value,
                                 result=JournalEntry.Result.REFUSED, code=getattr(error, "code", "refused"),
                                 message=getattr(error, "message", str(error)))
        # The row stays (who blocked and why); only the pending deactivation is cleared.
        UserBlock.objects.filter(pk__in=[pk for pk, _, _ in due]).update(deactivate_after=None)
        if run is not None:
            recorder.flush()
            finish_run(run, counts=counts.as_dict())
    return counts


def record_admin_block(*, user_ids: Iterable[int], actor: Actor, reason: str = "") -> None:
    """Remember that an admin blocked (or deactivated) these users, so no source lifts it: a source's
    pending block of the same user becomes the admin's. Two statements per call, not one per user."""
    ids = sorted(set(user_ids))
    if not ids:
        return
    with transaction.atomic():
        UserBlock.objects.filter(user_id__in=ids).delete()
        UserBlock.objects.bulk_create([
            UserBlock(user_id=uid, source=None, blocked_by_label=actor.label[:255], reason=reason[:255],
                      deactivate_after=None) for uid in ids], batch_size=2000)


def forget_blocks(*, user_ids: Iterable[int]) -> None:
    """An admin unblocked or reactivated these users: whatever block was recorded is lifted with it."""
    ids = sorted(set(user_ids))
    if ids:
        UserBlock.objects.filter(user_id__in=ids).delete()
