"""Directory groups (SCIM / LDAP): create, rename, delete. Memberships change through
``IdentityChange.groups*`` in the planner (or ``memberships`` for big groups), under the same
ownership rule (``policy``).

A provider's group is its own: only that provider renames, deletes or changes its members; a group
created by a provider records its provisioning source (``DirectoryGroup.owner_source``).
The backing ``auth.Group`` gets a bounded, unique name whatever the provider sends, and keeps
following the display name when the group is renamed (``group_rename``).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import transaction

from accounts.exceptions import ConflictError, ValidationFailed
from accounts.identity.audit import build_event, save_events
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


def group_create(*, actor: Actor, display_name: str, external_id: str = "") -> DirectoryGroup:
    """Create a directory group owned by the actor's source."""
    display_name = validate_display_name(display_name)
    external_id = validate_external_id(external_id)
    with transaction.atomic():
        if external_id and DirectoryGroup.objects.filter(
            source=actor.source, provider=actor.provider, external_id=external_id
        ).exists():
            raise ConflictError("group_exists", f"A group with external id {external_id!r} exists.",
                                field="externalId")
        group = Group.objects.create(name=backing_group_name(actor.source, actor.provider, display_name))
        dgroup = DirectoryGroup.objects.create(group=group, display_name=display_name, source=actor.source,
                                               provider=actor.provider, external_id=external_id,
                                               owner_source_id=origin_source_id(actor))
        save_events([build_event(actor=actor, action="group.created", target_type="group", target_id=dgroup.pk,
                                 target_label=display_name, new={"display_name": display_name,
                                                                  "external_id": external_id})])
    return dgroup


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
        events = [build_event(actor=actor, action="user.group_removed", target_type="user", target_id=pk,
                              target_label=username, field="groups", old=dgroup.display_name)
                  for pk, username in members]
        events.append(build_event(actor=actor, action="group.deleted", target_type="group", target_id=dgroup.pk,
                                  target_label=dgroup.display_name, old={"display_name": dgroup.display_name}))
        group = dgroup.group
        dgroup.delete()
        group.delete()
        save_events(events)
