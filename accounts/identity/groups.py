"""Directory groups (SCIM / LDAP): create, rename, delete. Memberships change through
``IdentityChange.groups*`` in the planner (or ``memberships`` for big groups), under the same
ownership rule (``policy``).

A provider's group is its own: only that provider renames, deletes or changes its members; a group
created by a provider records its provisioning source (``DirectoryGroup.owner_source``).
The backing ``auth.Group`` gets a bounded, unique name whatever the provider sends, and keeps
following the display name when the group is renamed (``group_rename``).

``groups_create`` creates many groups in one transaction with a fixed number of statements (a
directory's first sync creates 1,000; ``group_create`` is the one-group case of it).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from django.contrib.auth.models import Group, User
from django.db import IntegrityError, models, transaction

from accounts.exceptions import ConflictError, ValidationFailed
from accounts.identity.audit import build_event, save_event_rows, save_events
from accounts.identity.bulkio import insert_objects, uses_copy
from accounts.identity.grants import origin_source_id
from accounts.identity.policy import check_group_owner
from accounts.identity.types import UNSET, Actor
from accounts.models import DirectoryGroup

GROUP_NAME_MAX = Group._meta.get_field("name").max_length  # 150
DISPLAY_NAME_MAX = DirectoryGroup._meta.get_field("display_name").max_length  # 255
EXTERNAL_ID_MAX = DirectoryGroup._meta.get_field("external_id").max_length  # 255


def backing_group_name(source: str, provider: str, display_name: str) -> str:
    """``dir:<source>:<provider>:<name>:<random>`` cut to fit ``auth.Group.name``; the random tail
    keeps it unique however long or alike the provider key and display name are."""
    tail = ":" + uuid.uuid4().hex[:16]
    return f"dir:{source}:{provider}:{display_name}"[:GROUP_NAME_MAX - len(tail)] + tail


def validate_display_name(value: Any) -> str:
    """A group display name: non-empty text of at most 255 characters (edge spaces dropped)."""
    name = value.strip() if isinstance(value, str) else ""
    if not name:
        raise ValidationFailed("group_name_required", "Give the group a display name.", field="displayName")
    if len(name) > DISPLAY_NAME_MAX:
        raise ValidationFailed("group_name_too_long", f"Group names are at most {DISPLAY_NAME_MAX} characters.",
                               field="displayName")
    return name


def validate_external_id(value: Any) -> str:
    value = value or ""
    if not isinstance(value, str) or len(value) > EXTERNAL_ID_MAX:
        raise ValidationFailed("external_id_invalid", f"External ids are text of at most {EXTERNAL_ID_MAX} "
                                                      "characters.", field="externalId")
    return value


class NewGroup(NamedTuple):
    """A directory group to create: its display name and the provider's id for it (may be empty)."""

    display_name: str
    external_id: str = ""


COPY_MIN = 50  # fewer groups than this are inserted with ``bulk_create`` (one statement per table)
LOOKUP_BATCH = 500  # external ids per existence query (SQLite's bound-parameter limit)


def group_create(*, actor: Actor, display_name: str, external_id: str = "") -> DirectoryGroup:
    """Create a directory group owned by the actor's source."""
    return groups_create(actor=actor, groups=[NewGroup(display_name, external_id)])[0]


def groups_create(*, actor: Actor, groups: Iterable[NewGroup], dry_run: bool = False) -> list[DirectoryGroup]:
    """Create directory groups owned by the actor's source, all or none, in the order given: each
    name validated and its backing ``auth.Group`` named as ``group_create`` names it, one
    ``group.created`` event each. An external id that exists already for the provider, or is given
    twice, refuses the whole call (``group_exists``). A constant number of statements whatever the
    number of groups (one existence query, one insert per table, one for the audit). ``dry_run``
    checks everything and returns the groups unsaved."""
    specs = [(validate_display_name(display_name), validate_external_id(external_id))
             for display_name, external_id in groups]
    seen: set[str] = set()
    for _, external_id in specs:
        if external_id in seen:
            raise _exists(external_id)
        if external_id:
            seen.add(external_id)
    owner_source_id = origin_source_id(actor) if specs else None
    with transaction.atomic():
        taken = _taken_external_ids(actor, list(seen))
        for _, external_id in specs:
            if external_id in taken:
                raise _exists(external_id)
        backing = [Group(name=backing_group_name(actor.source, actor.provider, display_name))
                   for display_name, _ in specs]
        dgroups = [DirectoryGroup(group=group, display_name=display_name, source=actor.source,
                                  provider=actor.provider, external_id=external_id,
                                  owner_source_id=owner_source_id)
                   for group, (display_name, external_id) in zip(backing, specs, strict=True)]
        if dry_run or not specs:
            return dgroups
        try:
            _insert(Group, backing)
            for dgroup, group in zip(dgroups, backing, strict=True):
                dgroup.group_id = group.pk  # the instance cached before the group had its id
            _insert(DirectoryGroup, dgroups)
        except IntegrityError as exc:  # created meanwhile by a concurrent call: the unique constraint
            raise ConflictError("group_exists", "A group with one of these external ids was created meanwhile.",
                                field="externalId") from exc
        save_event_rows(actor=actor, target_type="group", events=(
            ("group.created", dgroup.pk, dgroup.display_name, None,
             {"display_name": dgroup.display_name, "external_id": dgroup.external_id}) for dgroup in dgroups))
    return dgroups


def _exists(external_id: str) -> ConflictError:
    return ConflictError("group_exists", f"A group with external id {external_id!r} exists.", field="externalId")


def _taken_external_ids(actor: Actor, external_ids: Sequence[str]) -> set[str]:
    taken: set[str] = set()
    for start in range(0, len(external_ids), LOOKUP_BATCH):
        taken.update(DirectoryGroup.objects.filter(
            source=actor.source, provider=actor.provider, external_id__in=external_ids[start:start + LOOKUP_BATCH],
        ).values_list("external_id", flat=True))
    return taken


def _insert(model: type[models.Model], objs: list[Any]) -> None:
    """Insert unsaved instances, giving them their ids: ``COPY`` for many on PostgreSQL."""
    if len(objs) >= COPY_MIN and uses_copy():
        insert_objects(model, objs)
    else:
        model._default_manager.bulk_create(objs)


def group_rename(*, actor: Actor, dgroup: DirectoryGroup, display_name: Any) -> bool:
    """Rename a directory group (only its owning provider may): the display name (validated, at most
    255 characters) and the backing ``auth.Group`` name (bounded, unique), audited with old and new
    names. Returns whether anything changed; renaming to the current name is a no-op."""
    return bool(group_update(actor=actor, dgroup=dgroup, display_name=display_name))


def group_update(*, actor: Actor, dgroup: DirectoryGroup, display_name: Any = UNSET,
                 external_id: Any = UNSET) -> list[str]:
    """Rename a directory group or change its external id (unique per provider: ``group_exists``)."""
    check_group_owner(actor, dgroup)
    if display_name is not UNSET:
        display_name = validate_display_name(display_name)
    if external_id is not UNSET:
        external_id = validate_external_id(external_id)
    changed = []
    events = []
    with transaction.atomic():
        if external_id and external_id != dgroup.external_id and DirectoryGroup.objects.filter(
                source=dgroup.source, provider=dgroup.provider, external_id=external_id).exclude(pk=dgroup.pk).exists():
            raise ConflictError("group_exists", f"A group with external id {external_id!r} exists.",
                                field="externalId")
        if display_name is not UNSET and display_name != dgroup.display_name:
            # The backing group's name follows (bounded and unique, whatever the new name).
            Group.objects.filter(pk=dgroup.group_id).update(
                name=backing_group_name(dgroup.source, dgroup.provider, display_name))
        for name, value in (("display_name", display_name), ("external_id", external_id)):
            if value is UNSET or value == getattr(dgroup, name):
                continue
            events.append(build_event(actor=actor, action="group.updated", target_type="group", target_id=dgroup.pk,
                                      target_label=dgroup.display_name, field=name,
                                      old=getattr(dgroup, name), new=value))
            setattr(dgroup, name, value)
            changed.append(name)
        if changed:
            dgroup.save(update_fields=changed)
            save_events(events)
    return changed


def group_delete(*, actor: Actor, dgroup: DirectoryGroup) -> None:
    """Delete a directory group; its memberships go with it (each audited)."""
    check_group_owner(actor, dgroup)
    with transaction.atomic():
        members = list(User.objects.filter(groups=dgroup.group_id).values_list("pk", "username"))
        group = dgroup.group
        pk, display_name = dgroup.pk, dgroup.display_name
        dgroup.delete()
        group.delete()
        save_event_rows(actor=actor, target_type="user", field="groups", events=(
            ("user.group_removed", user_pk, username, display_name, None) for user_pk, username in members))
        save_event_rows(actor=actor, target_type="group", events=[
            ("group.deleted", pk, display_name, {"display_name": display_name}, None)])
