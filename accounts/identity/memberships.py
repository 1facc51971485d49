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

``groups_members_replace`` replaces the members of many groups at once (a directory sync's group
mirror: 170,873 memberships of 1,000 groups at 100k users, issue 10) with a fixed number of
statements whatever the number of groups: one read of their memberships, one of the users
concerned, one delete and one ``COPY`` of membership rows, one ``COPY`` of audit rows
(``audit.save_event_rows``) -- still one event per membership change, all or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction

from accounts.exceptions import ValidationFailed
from accounts.identity import policy
from accounts.identity.audit import save_event_rows
from accounts.identity.bulkio import copy_text, uses_copy
from accounts.identity.types import Actor
from accounts.models import DirectoryGroup

Membership = User.groups.through
BATCH = 2000
MAX_MEMBERS_PER_CALL = 100_000
COPY_MIN = 50  # fewer new rows than this are inserted without COPY
COPY_CHUNK = 10_000  # rows per write to the COPY stream
GROUP_BATCH = 500  # groups per membership read (SQLite's bound-parameter limit)


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


def _usernames(user_ids: Sequence[int]) -> dict[int, str]:
    """``{id: username}`` of the users among ``user_ids`` (the others do not exist): on PostgreSQL one
    query with the ids as one array parameter (an ``IN`` list of 100k ids costs its conversion)."""
    if not user_ids:
        return {}
    if uses_copy():
        meta = User._meta
        quote = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {quote(meta.pk.column)}, {quote(meta.get_field('username').column)} "  # noqa: S608
                           f"FROM {quote(meta.db_table)} WHERE {quote(meta.pk.column)} = ANY(%s)", [list(user_ids)])
            return dict(cursor.fetchall())
    names: dict[int, str] = {}
    for start in range(0, len(user_ids), BATCH):
        names.update(User.objects.filter(pk__in=user_ids[start:start + BATCH]).values_list("pk", "username"))
    return names


def _events(dgroup: DirectoryGroup, user_ids: list[int], names: dict[int, str], *, added: bool):
    action, old, new = (("group.member_added", None, dgroup.display_name) if added
                        else ("group.member_removed", dgroup.display_name, None))
    return ((action, uid, names.get(uid, ""), old, new) for uid in user_ids)


def _insert_memberships(group_id: int, user_ids: list[int]) -> None:
    _insert_membership_rows([(group_id, uid) for uid in user_ids])


def _insert_membership_rows(rows: list[tuple[int, int]]) -> None:
    """``(group_id, user_id)`` rows for users just checked not to be members: with ``COPY`` on
    PostgreSQL (the first sync of a directory adds 170k at once). A concurrent writer that added one
    of them since makes the rows conflict; then they go in again skipping the rows that exist. A few
    rows (a SCIM PATCH) go straight to ``bulk_create``: a savepoint and a ``COPY`` would cost more
    statements."""
    if len(rows) < COPY_MIN or not uses_copy():
        Membership.objects.bulk_create([Membership(group_id=gid, user_id=uid) for gid, uid in rows],
                                       ignore_conflicts=True, batch_size=BATCH)
        return
    try:
        with transaction.atomic():
            _copy_membership_rows(rows)
    except IntegrityError:
        Membership.objects.bulk_create([Membership(group_id=gid, user_id=uid) for gid, uid in rows],
                                       ignore_conflicts=True, batch_size=BATCH)


def _copy_membership_rows(rows: list[tuple[int, int]]) -> None:
    """One ``COPY`` of the rows, formatted here (two integers a line in ``COPY``'s text format; the
    row id comes from the table's sequence)."""
    meta = Membership._meta
    columns = (meta.get_field("group").column, meta.get_field("user").column)
    copy_text(Membership, columns, (
        ("".join(f"{int(group_id)}\t{int(user_id)}\n" for group_id, user_id in rows[at:at + COPY_CHUNK]),
         len(rows[at:at + COPY_CHUNK])) for at in range(0, len(rows), COPY_CHUNK)))


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
                save_event_rows(actor=actor, target_type="user", field="groups",
                                events=_events(dgroup, new, names, added=True))
    return result


def group_members_remove(*, actor: Actor, dgroup: DirectoryGroup, user_ids: Iterable[int],
                         dry_run: bool = False) -> MembershipResult:
    """Remove members; ids not in the group are ignored. Cost grows with the users given only."""
    _check_owner(actor, dgroup)
    ids = _ids(user_ids)
    result = MembershipResult()
    for start in range(0, len(ids), BATCH):
        chunk = ids[start:start + BATCH]
        present = dict(Membership.objects.filter(group_id=dgroup.group_id, user_id__in=chunk)
                       .values_list("user_id", "user__username"))
        removed = sorted(present)
        result.removed += removed
        if removed and not dry_run:
            with transaction.atomic():
                Membership.objects.filter(group_id=dgroup.group_id, user_id__in=removed).delete()
                save_event_rows(actor=actor, target_type="user", field="groups",
                                events=_events(dgroup, removed, present, added=False))
    return result


def group_members_replace(*, actor: Actor, dgroup: DirectoryGroup, user_ids: Iterable[int],
                          dry_run: bool = False) -> MembershipResult:
    """Make the membership exactly ``user_ids`` (SCIM PUT / replace, a full LDAP sync of the group),
    writing only the difference, all or nothing."""
    return groups_members_replace(actor=actor, members=[(dgroup, user_ids)], dry_run=dry_run)[dgroup.pk]


def groups_members_replace(*, actor: Actor, members: Iterable[tuple[DirectoryGroup, Iterable[int]]],
                           dry_run: bool = False) -> dict[int, MembershipResult]:
    """Make each group's membership exactly the user ids given with it, writing only the differences,
    all groups or none; the result of each group under its ``DirectoryGroup`` id. Ids that name no
    user are ignored (``unknown``). Every group must be the actor's to change (checked before
    anything is read); each group at most once."""
    members = [(dgroup, _ids(user_ids)) for dgroup, user_ids in members]
    policy.check_group_membership_owner(actor, [dgroup for dgroup, _ in members])
    if len({dgroup.group_id for dgroup, _ in members}) != len(members):
        raise ValueError("groups_members_replace: a group is given twice")
    results = {dgroup.pk: MembershipResult() for dgroup, _ in members}
    if not members:
        return results
    with transaction.atomic():
        current = _memberships([dgroup.group_id for dgroup, _ in members])
        changes = []  # (dgroup, ids to add, {user id: membership row id} to remove)
        for dgroup, wanted in members:
            rows = current.get(dgroup.group_id, {})
            wanted_set = set(wanted)
            changes.append((dgroup, [uid for uid in wanted if uid not in rows],
                            {uid: row for uid, row in rows.items() if uid not in wanted_set}))
        names = _usernames(sorted({uid for _, add, remove in changes for uid in (*add, *remove)}))
        for dgroup, add, remove in changes:
            result = results[dgroup.pk]
            result.added = [uid for uid in add if uid in names]
            result.unknown = [uid for uid in add if uid not in names]
            result.removed = sorted(remove)
        if dry_run:
            return results
        row_ids = sorted(row for _, _, remove in changes for row in remove.values())
        for start in range(0, len(row_ids), BATCH):
            Membership.objects.filter(pk__in=row_ids[start:start + BATCH]).delete()
        _insert_membership_rows([(dgroup.group_id, uid) for dgroup, _, _ in changes
                                 for uid in results[dgroup.pk].added])
        save_event_rows(actor=actor, target_type="user", field="groups", events=(
            event for dgroup, _, _ in changes for result in [results[dgroup.pk]]
            for event in (*_events(dgroup, result.removed, names, added=False),
                          *_events(dgroup, result.added, names, added=True))))
    return results


def _memberships(group_ids: list[int]) -> dict[int, dict[int, int]]:
    """``{group id: {user id: membership row id}}`` of the given groups, in one query per 500 groups."""
    current: dict[int, dict[int, int]] = {}
    for start in range(0, len(group_ids), GROUP_BATCH):
        for row, group_id, user_id in (Membership.objects.filter(group_id__in=group_ids[start:start + GROUP_BATCH])
                                       .values_list("pk", "group_id", "user_id").iterator(chunk_size=10_000)):
            current.setdefault(group_id, {})[user_id] = row
    return current
