"""Writing a batch of accepted plans: bulk statements and their audit events, inside the caller's
transaction (``service`` opens it). Every UPDATE writes only the fields that changed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from django.contrib.auth.models import User
from django.db import transaction

from accounts.identity.audit import save_events
from accounts.identity.bulkio import insert_objects, insert_rows, update_objects
from accounts.identity.grants import mirror_owner_source, record_grant_origins
from accounts.identity.loading import MembershipThrough, RoleIndex, chunks
from accounts.identity.planner import Plan
from accounts.identity.types import Actor
from accounts.models import ExternalIdentity, PasswordHistory, UserProfile
from accounts.sessions import end_sessions_on_commit


def write_plans(plans: Sequence[Plan], *, now, actor: Actor, roles: RoleIndex | None = None,
                audit: bool = True) -> None:
    """Insert, update and delete what ``plans`` need, then their audit events (unless ``audit`` is off,
    for dry runs that write only so later batches see earlier ones, and are rolled back). With
    ``roles`` (the batch's role index) it also keeps the grant-origin rows (``grants``)."""
    creates = [p for p in plans if p.status == "created"]
    updates = [p for p in plans if p.status == "updated"]
    if creates:
        insert_objects(User, [p.user for p in creates])
        if any(p.user.pk is None for p in creates):  # backends without RETURNING
            by_name = dict(User.objects.filter(username__in=[p.user.username for p in creates])
                           .values_list("username", "pk"))
            for p in creates:
                p.user.pk = p.user.id = by_name[p.user.username]
        # ``profile.user = user`` without the descriptor's per-object router calls: the id and the
        # related-object caches both ways, as the descriptor leaves them.
        link = UserProfile._meta.get_field("user")
        for p in creates:
            p.profile.user_id = p.user.pk
            link.set_cached_value(p.profile, p.user)
            link.remote_field.set_cached_value(p.user, p.profile)
        insert_objects(UserProfile, [p.profile for p in creates])

    # Users: group by the exact set of changed fields so each UPDATE writes only what changed.
    by_fields: dict[tuple[str, ...], list[User]] = defaultdict(list)
    for p in updates:
        if p.user_fields:
            by_fields[tuple(sorted(p.user_fields))].append(p.user)
    for fields, users in by_fields.items():
        update_objects(User, users, fields)
    by_pfields: dict[tuple[str, ...], list[UserProfile]] = defaultdict(list)
    for p in updates:
        if p.profile_fields:
            by_pfields[tuple(sorted(p.profile_fields | {"updated_at"}))].append(p.profile)
            p.profile.updated_at = now
    for fields, profiles in by_pfields.items():
        update_objects(UserProfile, profiles, fields)

    # A new user's rows cannot exist yet: plain COPY. An existing user's may (a concurrent writer).
    insert_rows(MembershipThrough, ("user_id", "group_id"),
                [(p.user.pk, g) for p in creates for g in sorted(p.add_groups)])
    memberships = [MembershipThrough(user_id=p.user.pk, group_id=g) for p in plans if p.status != "created"
                   for g in p.add_groups]
    if memberships:
        MembershipThrough.objects.bulk_create(memberships, batch_size=2000, ignore_conflicts=True)
    removals: dict[int, list[int]] = defaultdict(list)
    for p in updates:
        for g in p.remove_groups:
            removals[g].append(p.user.pk)
    for gid, uids in removals.items():
        for chunk in chunks(uids):
            MembershipThrough.objects.filter(group_id=gid, user_id__in=chunk).delete()

    if roles is not None:
        record_grant_origins(plans, actor=actor, roles=roles)

    links = []
    for p in plans:
        for link in p.new_links:
            link.user = p.user
            links.append(link)
    insert_objects(ExternalIdentity, links)
    update_objects(ExternalIdentity, [link for p in updates for link in p.updated_links],
                   ["external_id", "raw", "last_seen_at"])
    update_objects(ExternalIdentity, [link for p in plans if p.status in ("updated", "unchanged")
                                      for link in p.seen_links], ["raw", "last_seen_at"])
    mirror_owner_source(plans, actor=actor)
    insert_rows(PasswordHistory, ("user_id", "password"),
                [(p.user.pk, p.user.password) for p in plans if p.password_changed])

    if audit:
        events = []
        for p in plans:
            for event in p.events:
                event.target_id = str(p.user.pk)
                events.append(event)
        save_events(events)
    # Blocked, deactivated, or a password someone else set: end the user's sessions once committed.
    end_sessions_on_commit(actor=actor, changes=[(p.user.pk, p.profile.state, p.changed) for p in updates])
    # Users who lost roles and with them console access: their sessions end too (issue 12).
    lost_roles = [p.user.pk for p in updates if p.remove_groups]
    if lost_roles:
        from accounts.credentials.service import end_sessions_if_console_access_lost

        transaction.on_commit(lambda: end_sessions_if_console_access_lost(actor=actor, user_ids=lost_roles))
