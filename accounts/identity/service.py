"""THE identity write path. Every change to a user, its profile, roles, directory groups and
external links, from every source, is applied here: nothing else calls ``user.save()`` or
``groups.add()``.

``apply_identity_changes`` is the one entry point (``apply_identity_change`` is the same code for a
single change). The flow, one module per step:

1. ``loading``  - per batch, load everything the batch touches in a handful of queries, after
   taking the admin lock when the batch could remove a Customer Cloud Admin (lock first, then read);
2. ``planner``  - per change, a pure plan: match, validate, guard (``policy``), diff. A refused change
   gets a coded ``IdentityError`` and leaves no trace; an accepted plan's claims are recorded with
   ``BatchState.accept``;
3. ``writer``   - the batch's accepted plans in one transaction with bulk statements, and one audit
   event per changed field, role or membership (old and new values).

A dry run writes nothing but carries what its earlier batches would have written into the later
ones (``RunCarry``: usernames and external ids taken, admins removed or added), so a preview sees a
username created twice across batches or the last admin removed across batches, like the real run.

If a batch write fails on a race (another writer took a username meanwhile), the batch is rolled
back and its changes are retried one by one, so one bad row never sinks the others and nothing is
half-applied. Results are compact (ids, codes, field names), never model objects, so a 100k-row run
keeps little in memory.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from accounts.credentials.revocation import privilege_rose, void_after_privilege_rise
from accounts.exceptions import ConflictError, IdentityError
from accounts.identity.loading import BatchState, RoleIndex, RunCarry
from accounts.identity.locks import admin_lock
from accounts.identity.lookups import org_index, role_index
from accounts.identity.planner import Plan, plan_change
from accounts.identity.types import UNSET, Actor, BulkResult, ChangeResult, IdentityChange, Mode
from accounts.identity.writer import write_plans

logger = logging.getLogger(__name__)

_END = object()


def apply_identity_change(*, change: IdentityChange, actor: Actor) -> ChangeResult:
    """Apply one change; raise its ``IdentityError`` if refused. The result carries the saved ``user``."""
    result = _Run(actor=actor, dry_run=False, keep_users=True).batch([change])[0]
    if result.error is not None:
        raise result.error
    return result


def apply_identity_changes(
    *,
    changes: Iterable[IdentityChange],
    actor: Actor,
    batch_size: int | None = None,
    dry_run: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> BulkResult:
    """Apply many changes; per-item results in input order. ``dry_run`` plans without keeping anything."""
    batch_size = batch_size or getattr(settings, "IDM_BULK_BATCH_SIZE", 2000)
    run = _Run(actor=actor, dry_run=dry_run)
    results: list[ChangeResult] = []
    _run_batches(run, changes, batch_size, results, on_progress)
    return BulkResult(results)


def _run_batches(run: _Run, changes: Iterable[IdentityChange], batch_size: int, results: list[ChangeResult],
                 on_progress: Callable[[int], None] | None) -> None:
    pending = iter(changes)
    batch: list[IdentityChange] = []
    done = 0
    nxt: Any = next(pending, _END)
    while nxt is not _END:
        batch.append(nxt)
        nxt = next(pending, _END)
        if len(batch) >= batch_size or nxt is _END:
            with _collector_paused():
                results.extend(run.batch(batch))
            done += len(batch)
            batch = []
            if on_progress:
                on_progress(done)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while one batch is planned and written, on again after.

    A batch allocates some 30 tracked containers per row (plans, model instances and their states,
    audit values) that all live until the batch ends, so the collector's frequent passes over them
    found nothing to free and cost about a third of the process's CPU in a 20k-row creation (0.7 of
    2.2 s). What a batch leaves as cyclic garbage (a user and profile caching each other) is collected
    by the first pass after it. A caller that turned the collector off keeps it off."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _may_remove_admin(change: IdentityChange) -> bool:
    """Could this change take a Customer Cloud Admin out of the active admins?"""
    if change.mode == Mode.CREATE:
        return False
    return (change.state is not UNSET or change.roles is not UNSET or bool(change.roles_remove)
            or change.django_admin is not UNSET
            or change.org_id is not UNSET)  # a move into an SSO org can take the last password admin


def _gives_powers(change: IdentityChange, powerful: frozenset[str]) -> bool:
    """Could this change give a user a role with powers beyond sign-in (``powerful``: the slugs and
    lower-cased names of such roles)? Checks that judge the powers of a whole set of users (an
    identity provider's, an org's sign-in: ``sso.policy``, ``orgs.check_may_change_sign_in``) read
    them under the admin lock, so such a grant takes it too and is seen, never raced past."""
    refs = set(change.roles_add)
    if change.roles is not UNSET:
        refs |= set(change.roles)
    return any(str(ref).lower() in powerful or ref in powerful for ref in refs)


def _powerful_roles(roles: RoleIndex) -> frozenset[str]:
    from accounts.identity.privilege import SIGN_IN_PERMS

    out: set[str] = set()
    for slug, role in roles.by_slug.items():
        if any(p.codename not in SIGN_IN_PERMS for p in role.group.permissions.all()):
            out |= {slug, role.name.lower()}
    return frozenset(out)


class _Run:
    """One call of the service: lookups shared by its batches, and how each batch is applied."""

    def __init__(self, *, actor: Actor, dry_run: bool, keep_users: bool = False) -> None:
        self.actor = actor
        self.dry_run = dry_run
        self.keep_users = keep_users
        self.orgs = org_index()  # shared with the other steps of a request (lookups.py)
        self.roles = role_index()
        self.powerful = _powerful_roles(self.roles)
        self.carry = RunCarry() if dry_run else None

    def batch(self, changes: list[IdentityChange]) -> list[ChangeResult]:
        """Apply one batch; on a write race, roll it back and retry its changes one by one."""
        try:
            return self._batch_once(changes)
        except IntegrityError:
            if len(changes) == 1:
                return [_refused(changes[0], ConflictError(
                    "conflict", "Another change to the same user or username happened at the same time; retry."))]
            logger.warning("bulk batch hit a concurrent write; retrying %d changes one by one", len(changes))
            out: list[ChangeResult] = []
            for change in changes:
                out.extend(self.batch([change]))
            return out

    def _batch_once(self, changes: list[IdentityChange]) -> list[ChangeResult]:
        with transaction.atomic():
            if not self.dry_run and any(_may_remove_admin(c) or _gives_powers(c, self.powerful) for c in changes):
                admin_lock()  # lock first, then read the admins (locks.py)
            state = BatchState(changes, self.actor, self.orgs, self.roles, dry_run=self.dry_run, carry=self.carry)
            accepted: list[Plan] = []
            results: list[ChangeResult] = []
            risen: list[Plan] = []  # plans raising their user's privilege (judged before accept() updates state)
            for change in changes:
                try:
                    plan = plan_change(change, state)
                except IdentityError as error:
                    results.append(_refused(change, error))
                    continue
                if not self.dry_run and privilege_rose(plan, state):
                    risen.append(plan)
                state.accept(plan)
                accepted.append(plan)
                results.append(ChangeResult(ref=change.ref, status=plan.status, changed_fields=plan.changed,
                                            warnings=plan.warnings))
            if self.carry is not None:
                self.carry.add(accepted)  # what this batch would have written, for the next ones
            else:
                write_plans(accepted, now=state.now, actor=self.actor, roles=state.roles)
                if risen:  # links and temporary passwords issued before a promotion stop working (H2)
                    void_after_privilege_rise(actor=self.actor, plans=risen, now=state.now)
            plans = iter(accepted)
            for result in results:
                if result.status != "refused":
                    plan = next(plans)
                    result.user_id = plan.user.pk
                    if self.keep_users:
                        result.user = plan.user
        return results


def _refused(change: IdentityChange, error: IdentityError) -> ChangeResult:
    return ChangeResult(ref=change.ref, status="refused", error=error)
