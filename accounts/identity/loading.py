"""Loading a batch: everything the planner needs about the users, links, roles and groups a batch
touches, read in a handful of chunked queries (never one per row), plus the in-batch claims.

``BatchState`` is the only mutable state of a run. The planner reads it and never writes it; the
service calls ``BatchState.accept(plan)`` once a plan has passed every check, so a refused change
leaves no trace (no claimed username or link, no phantom admin, no mutated loaded object).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.access import Access
from accounts.exceptions import NotFound
from accounts.identity import privilege
from accounts.identity.orgs import OrgIndex
from accounts.identity.types import UNSET, Actor, IdentityChange, UserState
from accounts.identity.validators import username_key
from accounts.models import DirectoryGroup, ExternalIdentity, Role, UserProfile
from accounts.permissions import CUSTOMER_CLOUD_ADMIN

if TYPE_CHECKING:
    from accounts.identity.planner import Plan

MembershipThrough = User.groups.through
CHUNK = 5000


def chunks(items: Sequence, size: int = CHUNK) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def id_list(ids: Sequence[int]) -> Any:
    """``ids`` as the value of an ``__in`` lookup on user ids. On PostgreSQL one array parameter
    (``IN (SELECT unnest(%s::integer[]))``, the user id's type; served by the same index): Django's IN list of 2,000
    placeholders is compiled, quoted and parsed value by value, several times the cost of the
    lookup itself for a batch's memberships (10-18 ms of CPU per 2,000 users instead of 3 ms)."""
    if connection.vendor == "postgresql":
        return RawSQL(f"SELECT unnest(%s::{User._meta.pk.db_type(connection)}[])", (list(ids),))  # noqa: S611 (the type is the model field's, the ids a parameter)
    return ids


class RoleIndex:
    """All roles of a run, by slug, by backing group id and by lower-cased name."""

    def __init__(self) -> None:
        self.by_slug: dict[str, Role] = {}
        self.by_group: dict[int, Role] = {}
        for role in Role.objects.select_related("group").prefetch_related("group__permissions"):
            self.by_slug[role.slug] = role
            self.by_group[role.group_id] = role
        self.by_name = {r.name.lower(): r for r in self.by_slug.values()}

    def resolve(self, ref: str) -> Role:
        role = self.by_slug.get(ref) or self.by_name.get(str(ref).lower())
        if role is None:
            raise NotFound("unknown_role", f"No role named {ref!r}.", field="roles")
        return role


@dataclass
class Current:
    """Current state of one existing user as loaded for the batch (replaced, never mutated, on accept)."""

    user: User
    profile: UserProfile | None
    role_slugs: frozenset[str]
    group_ids: frozenset[int]
    links: dict[tuple[str, str], ExternalIdentity]


def claimant(user_pk: int | None, change: IdentityChange) -> tuple:
    """Who claims a username or link in a batch: an existing user, or one new change."""
    return ("user", user_pk) if user_pk is not None else ("new", id(change))


@dataclass
class RunCarry:
    """What the accepted plans of a dry run's earlier batches would have written, in compact form,
    so later batches of the same run plan as if it were there (nothing is written in a dry run)."""

    usernames: set[str] = field(default_factory=set)  # lower-cased, created or renamed to
    links: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    admins_added: set[Any] = field(default_factory=set)
    admins_removed: set[Any] = field(default_factory=set)
    password_admins_added: set[Any] = field(default_factory=set)
    password_admins_removed: set[Any] = field(default_factory=set)

    def add(self, plans: Sequence[Plan]) -> None:
        for plan in plans:
            self.usernames.update(plan.username_claims)
            for key in plan.link_claims:
                self.links[key] = plan.user.pk
            if plan.admin_key is not None:
                (self.admins_added if plan.admin_after else self.admins_removed).add(plan.admin_key)
                (self.admins_removed if plan.admin_after else self.admins_added).discard(plan.admin_key)
            if plan.password_admin_key is not None:
                after = plan.password_admin_after
                (self.password_admins_added if after else self.password_admins_removed).add(plan.password_admin_key)
                (self.password_admins_removed if after else self.password_admins_added).discard(plan.password_admin_key)


class BatchState:
    """What a batch knows: loaded users, links, groups, the active admins, and accepted claims."""

    def __init__(self, changes: Sequence[IdentityChange], actor: Actor, orgs: OrgIndex, roles: RoleIndex,
                 *, dry_run: bool = False, carry: RunCarry | None = None) -> None:
        self.actor = actor
        self.dry_run = dry_run
        self.orgs = orgs
        self.roles = roles
        self.now = timezone.now()
        self.access = Access.of(actor.user) if actor.user is not None and actor.enforce_scope else None
        self.powers = privilege.powers_of_actor(actor)  # for the privilege rule (issue 7 §1)

        ids = {c.user_id for c in changes if c.user_id}
        names = {username_key(c.username) for c in changes if isinstance(c.username, str)}
        links = {c.match_link for c in changes if c.match_link} | {c.link for c in changes if c.link}

        self.link_owner: dict[tuple[str, str, str], int] = {}
        by_source: dict[tuple[str, str], list[str]] = defaultdict(list)
        for link in links:
            by_source[(link.source, link.provider)].append(link.external_id)
        if by_source:
            link_q = Q()
            for (source, provider), ext_ids in by_source.items():
                link_q |= Q(source=source, provider=provider, external_id__in=ext_ids)
            for row in ExternalIdentity.objects.filter(link_q).values("source", "provider", "external_id", "user_id"):
                self.link_owner[(row["source"], row["provider"], row["external_id"])] = row["user_id"]
                ids.add(row["user_id"])

        users = _load_users(ids, names)
        self.by_id: dict[int, Current] = {}
        self.by_username: dict[str, int] = {}
        user_ids = [u.pk for u in users]
        memberships: dict[int, set[int]] = defaultdict(set)
        for chunk in chunks(user_ids):
            for uid, gid in MembershipThrough.objects.filter(user_id__in=id_list(chunk)).values_list("user_id", "group_id"):
                memberships[uid].add(gid)
        user_links: dict[int, dict[tuple[str, str], ExternalIdentity]] = defaultdict(dict)
        for chunk in chunks(user_ids):
            for ext in ExternalIdentity.objects.filter(user_id__in=id_list(chunk)):
                user_links[ext.user_id][(ext.source, ext.provider)] = ext
        for user in users:
            gids = memberships[user.pk]
            self.by_id[user.pk] = Current(
                user=user,
                profile=_profile_of(user),
                role_slugs=frozenset(roles.by_group[g].slug for g in gids if g in roles.by_group),
                group_ids=frozenset(g for g in gids if g not in roles.by_group),
                links=user_links[user.pk],
            )
            self.by_username[username_key(user.username)] = user.pk

        group_ids: set[int] = set()
        for c in changes:
            group_ids |= set(c.groups_add) | set(c.groups_remove)
            if c.groups is not UNSET:
                group_ids |= set(c.groups)
        for current in self.by_id.values():
            group_ids |= current.group_ids
        self.directory_groups: dict[int, DirectoryGroup] = {}
        for chunk in chunks(list(group_ids)):
            for dg in DirectoryGroup.objects.filter(group_id__in=chunk):
                self.directory_groups[dg.group_id] = dg

        # Read after the service took the admin lock (see locks.admin_lock): lock first, then read.
        cca = roles.by_slug.get(CUSTOMER_CLOUD_ADMIN)
        self.active_admins: set[Any] = set()
        if cca is not None:
            self.active_admins = set(
                User.objects.filter(groups=cca.group_id, is_active=True, profile__state=UserState.ACTIVE)
                .values_list("pk", flat=True)
            )
        # Taken by earlier batches of this (dry) run: as good as in the database.
        self.taken_usernames: set[str] = carry.usernames if carry is not None else set()
        if carry is not None:
            for key, owner in carry.links.items():
                self.link_owner.setdefault(key, owner if owner is not None else -1)
            self.active_admins = (self.active_admins - carry.admins_removed) | carry.admins_added
        self._carry = carry
        # Accepted in-batch claims, so two rows can't take the same username or external id.
        self.claimed_usernames: dict[str, tuple] = {}
        self.claimed_links: dict[tuple[str, str, str], tuple] = {}
        # The planner's per-batch memo of decisions that depend only on the actor and a few inputs
        # (an org, a set of role references), not on the row: judged once, not once per user.
        self.memo: dict[Any, Any] = {}

    @cached_property
    def break_glass(self) -> frozenset[tuple[int, int]]:
        """(provider id, user id) of every break-glass user, loaded when a change needs it."""
        from accounts.identity.orgs import Organization

        model = Organization._meta.get_field("auth_provider").related_model.break_glass_users.through
        return frozenset(model.objects.values_list("identityprovider_id", "user_id"))

    @cached_property
    def _source_rows(self) -> list[tuple[int, str, str, str]]:
        """Every provisioning source as (id, kind, slug, org mode): a handful of rows, loaded once
        per batch when a change needs them."""
        from provisioning.models import Source as ProvisioningSource

        return list(ProvisioningSource.objects.values_list("pk", "kind", "slug", "org_mode"))

    @cached_property
    def provisioning_sources(self) -> dict[int, tuple[str, str]]:
        """Every provisioning source's (kind, slug) by id."""
        return {pk: (kind, slug) for pk, kind, slug, _ in self._source_rows}

    @cached_property
    def adoption_enabled_sources(self) -> frozenset[int]:
        """Ids of the provisioning sources an admin enabled adoption for (one query, when a change
        adopts a user)."""
        from provisioning.models import Source as ProvisioningSource

        return frozenset(ProvisioningSource.objects.filter(adoption_enabled=True).values_list("pk", flat=True))

    @cached_property
    def password_sign_in_sources(self) -> frozenset[int]:
        """Ids of the sources whose directory has password sign-in on (one query, when a change adopts)."""
        from provisioning.models import Directory

        return frozenset(Directory.objects.filter(password_sign_in=True).values_list("source_id", flat=True))

    def source_owns_org(self, owner: str, owner_provider: str) -> bool:
        """Does the provider owning a user (by its kind and slug) decide the user's org? Only a source
        whose rules place users (org mode "attribute" or "rules") does; a provider without a
        provisioning source row (older data) counts as owning it."""
        from provisioning.models import Source as ProvisioningSource

        if owner not in ("scim", "ldap"):
            return False
        modes = {(kind, slug): mode for _, kind, slug, mode in self._source_rows}
        mode = modes.get((owner, owner_provider))
        return mode is None or mode in ProvisioningSource.ORG_MAPPING_MODES

    @cached_property
    def grant_rows(self) -> dict[int, frozenset[tuple[str, int | None]]]:
        """Per loaded user, its role grant rows as (role slug, source id or None for manual). Loaded
        when a change needs it, one query per chunk of users."""
        from provisioning.models import RoleGrant

        out: dict[int, set[tuple[str, int | None]]] = defaultdict(set)
        for chunk in chunks(list(self.by_id)):
            for user_id, slug, source_id in RoleGrant.objects.filter(user_id__in=id_list(chunk)).values_list(
                    "user_id", "role__slug", "source_id"):
                out[user_id].add((slug, source_id))
        return {user_id: frozenset(rows) for user_id, rows in out.items()}

    @cached_property
    def actor_source_id(self) -> int | None:
        """The provisioning source a provider actor stands for (None for everyone else)."""
        from accounts.identity.grants import origin_source_id

        return origin_source_id(self.actor)

    def grants_by_others(self, user_id: int) -> frozenset[str]:
        """Roles of ``user_id`` held by a grant that is not the actor's source's (manual, or another
        source's): such a role outlives this source's grant."""
        mine = self.actor_source_id
        return frozenset(slug for slug, source_id in self.grant_rows.get(user_id, ()) if source_id != mine)

    @cached_property
    def _enabled_source_names(self) -> dict[int, str]:
        from provisioning.models import Source as ProvisioningSource

        return dict(ProvisioningSource.objects.filter(enabled=True).values_list("pk", "name"))

    def source_grants(self, user_id: int) -> dict[str, list[str]]:
        """Roles of ``user_id`` an enabled provisioning source grants: role slug -> source names."""
        rows = self.grant_rows.get(user_id, ())
        if not any(source_id is not None for _, source_id in rows):
            return {}
        names = self._enabled_source_names
        out: dict[str, list[str]] = defaultdict(list)
        for slug, source_id in sorted(rows, key=lambda row: (row[0], names.get(row[1] or 0, ""))):
            if source_id in names:
                out[slug].append(names[source_id])
        return dict(out)

    def manual_grants(self, user_id: int) -> frozenset[str]:
        """Roles of ``user_id`` with a manual grant row."""
        return frozenset(slug for slug, source_id in self.grant_rows.get(user_id, ()) if source_id is None)

    @cached_property
    def password_admins(self) -> set[Any]:
        """Active Cloud Admins who can sign in with a password (``password_sign_in_admins``), loaded
        when a change needs it (after the admin lock, like ``active_admins``), with a dry run's carry."""
        from accounts.identity.orgs import password_sign_in_admins

        admins: set[Any] = set(password_sign_in_admins())
        if self._carry is not None:
            admins = (admins - self._carry.password_admins_removed) | self._carry.password_admins_added
        return admins

    def accept(self, plan: Plan) -> None:
        """Commit an accepted plan's claims and effects to the batch's view (the only mutation)."""
        if plan.password_admin_key is not None:
            if plan.password_admin_after:
                self.password_admins.add(plan.password_admin_key)
            else:
                self.password_admins.discard(plan.password_admin_key)
        for name in plan.username_claims:
            self.claimed_usernames[name] = plan.claimant
        for key in plan.link_claims:
            self.claimed_links[key] = plan.claimant
        if plan.admin_key is not None:
            if plan.admin_after:
                self.active_admins.add(plan.admin_key)
            else:
                self.active_admins.discard(plan.admin_key)
        if plan.status == "updated" and plan.user.pk in self.by_id:
            old = self.by_id[plan.user.pk]
            links = dict(old.links)
            for link in plan.updated_links:
                links[(link.source, link.provider)] = link
            for link in plan.new_links:
                links[(link.source, link.provider)] = link
            self.by_id[plan.user.pk] = Current(
                user=plan.user, profile=plan.profile, role_slugs=plan.role_slugs_after,
                group_ids=plan.group_ids_after, links=links,
            )


def _load_users(ids: set[int], names: set[str]) -> list[User]:
    found: dict[int, User] = {}
    if names and connection.vendor == "postgresql":
        # Which names exist, by the unique index on lower(username), with the names as one array
        # parameter: an IN list of 2,000 placeholders costs more to build and parse than the lookup
        # itself, and a batch of new users finds none. The users found are loaded by id below.
        ids = set(ids)
        table = connection.ops.quote_name(User._meta.db_table)
        with connection.cursor() as cursor:
            for chunk in chunks(list(names)):
                cursor.execute(f"SELECT id FROM {table} WHERE lower(username) = ANY(%s)", [list(chunk)])  # noqa: S608
                ids.update(row[0] for row in cursor.fetchall())
        names = set()
    for chunk in chunks(list(ids)):
        for user in User.objects.select_related("profile").filter(pk__in=chunk):
            found[user.pk] = user
    for chunk in chunks(list(names)):
        qs = User.objects.select_related("profile").annotate(_lu=Lower("username")).filter(_lu__in=chunk)
        for user in qs:
            found[user.pk] = user
        # SQLite's lower() folds only ASCII, so "Émile" is not found under "émile"; its REGEXP is
        # Python's ``re`` (Unicode-aware with IGNORECASE). PostgreSQL's lower() already folds Unicode.
        wider = [name for name in chunk if not name.isascii()]
        if wider and connection.vendor == "sqlite":
            pattern = "(?i)^(?:" + "|".join(re.escape(name) for name in wider) + ")$"
            for user in User.objects.select_related("profile").filter(username__regex=pattern):
                if username_key(user.username) in names:
                    found[user.pk] = user
    return list(found.values())


def _profile_of(user: User) -> UserProfile | None:
    try:
        return user.profile
    except UserProfile.DoesNotExist:
        return None
