"""Grant origins: the ``provisioning.RoleGrant`` rows the writer keeps beside role-group memberships.

A role added by a provider actor (SCIM provider, LDAP sync: ``Actor.provider_actor``) is recorded as
granted by that actor's ``provisioning.Source``; a role added by anyone else (console, upload,
system) is recorded as manual (``source`` NULL), also when the user already held it only through a
source (``Plan.pinned_roles``). A provider actor also records its grant for roles
it asks for that the user already holds (a source that now also grants a role held by hand), so its
later runs may take back what it granted and nothing else. A removed role loses all its grant rows;
a role a provider stops granting while another grant holds it (``Plan.released_roles``, decided by
the planner) loses only that provider's row.
Two or three statements per batch, IN lists in chunks, never one per user.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from accounts.identity.bulkio import insert_rows
from accounts.identity.loading import RoleIndex, chunks
from accounts.identity.lookups import shared
from accounts.identity.types import UNSET, Actor, Source

PROVIDER_SOURCES = frozenset({Source.SCIM, Source.LDAP})


def origin_source_id(actor: Actor) -> int | None:
    """The ``provisioning.Source`` id a provider actor stands for; None (manual) for everyone else."""
    if actor.source not in PROVIDER_SOURCES or not actor.provider:
        return None
    from provisioning.models import Source as ProvisioningSource

    return shared(f"source:{actor.source}:{actor.provider}", lambda: (
        ProvisioningSource.objects.filter(kind=actor.source, slug=actor.provider).values_list("pk", flat=True).first()))


def record_grant_origins(plans: Sequence[Any], *, actor: Actor, roles: RoleIndex) -> None:
    """Insert grant rows for roles ``plans`` add (and a provider's requested roles), delete the rows of
    roles they remove."""
    from provisioning.models import RoleGrant

    role_by_group = {gid: role.pk for gid, role in roles.by_group.items()}

    source_id = origin_source_id(actor)
    label = actor.label if source_id is not None else ""
    new_users = {p.user.pk for p in plans if p.status == "created"}
    wanted: set[tuple[int, int]] = set()
    for p in plans:
        if p.status not in ("created", "updated", "unchanged"):
            continue
        wanted |= {(p.user.pk, role_by_group[g]) for g in p.add_groups if g in role_by_group}
        wanted |= {(p.user.pk, roles.by_slug[s].pk) for s in p.pinned_roles}
        if source_id is not None:
            asked = set(p.change.roles_add) | (set(p.change.roles) if p.change.roles is not UNSET else set())
            for ref in asked:
                role = roles.by_slug.get(ref) or roles.by_name.get(str(ref).lower())
                if role is not None and role.slug in p.role_slugs_after:
                    wanted.add((p.user.pk, role.pk))
    # A new user has no grant rows yet: plain COPY; an existing user's may exist (ignore those).
    insert_rows(RoleGrant, ("user_id", "role_id", "source_id", "granted_by_label"),
                [(u, r, source_id, label) for u, r in sorted(wanted) if u in new_users])
    existing = [RoleGrant(user_id=u, role_id=r, source_id=source_id, granted_by_label=label)
                for u, r in sorted(wanted) if u not in new_users]
    if existing:
        RoleGrant.objects.bulk_create(existing, ignore_conflicts=True, batch_size=2000)

    if source_id is not None:
        released = {(p.user.pk, roles.by_slug[s].pk) for p in plans if p.status in ("updated", "unchanged")
                    for s in p.released_roles}
        _delete_pairs(RoleGrant.objects.filter(source_id=source_id), released)

    removed = {(p.user.pk, role_by_group[g]) for p in plans if p.status == "updated"
               for g in p.remove_groups if g in role_by_group}
    _delete_pairs(RoleGrant.objects.all(), removed)


def _delete_pairs(rows: Any, pairs: set[tuple[int, int]]) -> None:
    """Delete the grant rows of ``rows`` whose (user id, role id) is in ``pairs``, per chunk of users."""
    if not pairs:
        return
    user_ids = sorted({u for u, _ in pairs})
    role_ids = sorted({r for _, r in pairs})
    for chunk in chunks(user_ids):
        doomed = [pk for pk, u, r in rows.filter(user_id__in=chunk, role_id__in=role_ids)
                  .values_list("pk", "user_id", "role_id") if (u, r) in pairs]
        if doomed:
            rows.model.objects.filter(pk__in=doomed).delete()


def mirror_owner_source(plans: Sequence[Any], *, actor: Actor) -> None:
    """Set ``UserProfile.owner_source`` (the real reference to the owning ``provisioning.Source``) on
    profiles a provider actor owns by its ``source`` / ``source_provider`` strings and that lack it:
    one UPDATE per chunk; no ownership is decided here (the planner's policy did that)."""
    source_id = origin_source_id(actor)
    if source_id is None:
        return
    from accounts.models import UserProfile

    ids = [p.user.pk for p in plans if p.status in ("created", "updated", "unchanged")
           and p.profile.owner_source_id is None]
    for chunk in chunks(ids):
        UserProfile.objects.filter(user_id__in=chunk, owner_source__isnull=True, source=actor.source,
                                   source_provider=actor.provider).update(owner_source_id=source_id)
