"""Directory-group membership operations for SCIM and LDAP: add, remove, replace members.

Group-centric, unlike ``IdentityChange.groups*`` (user-centric): a SCIM ``PATCH /Groups/{id}`` that
adds one member of a 20,000-member group touches only that member's row -- the statements filter the
membership table by ``(group, given users)``, never load the whole membership, so the query count of
a one-member change does not depend on the group's size. ``group_members_replace`` must compare with
the current membership, so it reads it (ids only, in one query) and writes only the difference, in
batches.

Ownership: a provider's group is changed only by that provider; no console user or other source
changes it (``accounts.identity.policy.check_group_membership_owner``, the same check the user-centric
``IdentityChange.groups*`` path uses). Every membership change is audited (``group.member_added`` / ``group.member_removed``,
one event per member). ``dry_run`` computes the same result without writing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from accounts.exceptions import ValidationFailed
from accounts.identity import policy
from accounts.identity.audit import build_event, save_events
from accounts.identity.bulkio import insert_rows
from accounts.identity.types import Actor
from accounts.models import DirectoryGroup

Membership = User.groups.through
BATCH = 2000
MAX_MEMBERS_PER_CALL = 100_000
COPY_MIN = 50  # fewer new rows than this are inserted without COPY


@dataclass
class MembershipResult:
    """Ids of users added / removed, and of given ids that name no user (ignored)."""

    added: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)


def _check_owner(actor: Actor, dgroup: DirectoryGroup) -> None:
    policy.check_group_membership_owner(actor, [dgroup])


def _ids(user_ids: Iterable[int]) -> list[int]:
    ids = sorted({int(i) for i in user_ids})
    if len(ids) > MAX_MEMBERS_PER_CALL:
        raise ValidationFailed("too_many_members", f"At most {MAX_MEMBERS_PER_CALL} members per change.",
                               field="members")
    return ids


def _events(actor: Actor, dgroup: DirectoryGroup, action: str, user_ids: list[int], *, added: bool,
            names: dict[int, str] | None = None) -> list:
    if names is None:
        names = dict(User.objects.filter(pk__in=user_ids).values_list("pk", "username"))
    return [build_event(actor=actor, action=action, target_type="user", target_id=uid, target_label=names.get(uid, ""),
                        field="groups", old=None if added else dgroup.display_name,
                        new=dgroup.display_name if added else None) for uid in user_ids]


def _insert_memberships(group_id: int, user_ids: list[int]) -> None:
    """Membership rows for users just checked not to be members: with ``COPY`` on PostgreSQL (the
    first sync of a directory adds 170k at once). A concurrent writer that added one of them since
    makes the rows conflict; then they go in again skipping the rows that exist. A few rows (a SCIM
    PATCH) go straight to ``bulk_create``: a savepoint and a ``COPY`` would cost more statements."""
    if len(user_ids) < COPY_MIN:
        Membership.objects.bulk_create([Membership(group_id=group_id, user_id=uid) for uid in user_ids],
                                       ignore_conflicts=True)
        return
    try:
        with transaction.atomic():
            insert_rows(Membership, ("group_id", "user_id"), [(group_id, uid) for uid in user_ids])
    except IntegrityError:
        Membership.objects.bulk_create([Membership(group_id=group_id, user_id=uid) for uid in user_ids],
                                       ignore_conflicts=True)


def group_members_add(*, actor: Actor, dgroup: DirectoryGroup, user_ids: Iterable[int],
                      dry_run: bool = False) -> MembershipResult:
    """Add members; users already in the group are left alone. Cost grows with the users given only."""
    _check_owner(actor, dgroup)
    ids = _ids(user_ids)
    result = MembershipResult()
    for start in range(0, len(ids), BATCH):
        chunk = ids[start:start + BATCH]
        names = dict(User.objects.filter(pk__in=chunk).values_list("pk", "username"))  # also: which exist
        already = set(Membership.objects.filter(group_id=dgroup.group_id, user_id__in=chunk)
                      .values_list("user_id", flat=True))
        new = [uid for uid in chunk if uid in names and uid not in already]
        result.unknown += [uid for uid in chunk if uid not in names]
        result.added += new
        if new and not dry_run:
            with transaction.atomic():
                _insert_memberships(dgroup.group_id, new)
                save_events(_events(actor, dgroup, "group.member_added", new, added=True, names=names))
    return result


def group_members_remove(*, actor: Actor, dgroup: DirectoryGroup, user_ids: Iterable[int],
                         dry_run: bool = False) -> MembershipResult:
    """Remove members; ids not in the group are ignored. Cost grows with the users given only."""
    _check_owner(actor, dgroup)
    ids = _ids(user_ids)
    result = MembershipResult()
    for start in range(0, len(ids), BATCH):
        chunk = ids[start:start + BATCH]
        present = sorted(Membership.objects.filter(group_id=dgroup.group_id, user_id__in=chunk)
                         .values_list("user_id", flat=True))
        result.removed += present
        if present and not dry_run:
            with transaction.atomic():
                Membership.objects.filter(group_id=dgroup.group_id, user_id__in=present).delete()
                save_events(_events(actor, dgroup, "group.member_removed", present, added=False))
    return result


def group_members_replace(*, actor: Actor, dgroup: DirectoryGroup, user_ids: Iterable[int],
                          dry_run: bool = False) -> MembershipResult:
    """Make the membership exactly ``user_ids`` (SCIM PUT / replace, a full LDAP sync of the group),
    writing only the difference, all or nothing."""
    _check_owner(actor, dgroup)
    wanted = set(_ids(user_ids))
    current = set(Membership.objects.filter(group_id=dgroup.group_id).values_list("user_id", flat=True))
    with transaction.atomic():
        removed = group_members_remove(actor=actor, dgroup=dgroup, user_ids=current - wanted, dry_run=dry_run)
        added = group_members_add(actor=actor, dgroup=dgroup, user_ids=wanted - current, dry_run=dry_run)
    return MembershipResult(added=added.added, removed=removed.removed, unknown=added.unknown)
