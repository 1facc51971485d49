"""Who may administer a provisioning source: the privilege rule of issue 7 §1 applied to sources
(outside review of 2026-11-30, findings F1, F2, F5, F10).

A source's credential (a SCIM token, a directory's bind settings) and its settings are a way to act
on many users at once: whoever controls them acts with the source's powers. Those are the roles its
rules can grant, acting in the organizations it places users in, and the roles held by the users it
owns, in their organizations (the source can change their email, then a reset link does the rest).
So:

- creating a provider, rotating its token, editing its settings or connection, enabling or
  disabling it needs an actor who holds every one of those powers wherever the source exercises
  them (``check_may_administer_source``); a Customer Cloud Admin always does;
- changing where a source puts users (its org settings) or whom it adopts needs a Customer Cloud
  Admin when any of its rules grants an admin role, and otherwise ``manage_users`` in every org the
  source would place users in; enabling adoption (or changing ``adopt_by``) needs ``manage_users``
  in every org, since adoption may match any user (``check_source_settings_change``, review N2);
- a rule may grant only roles whose powers the saver holds wherever the source places users
  (``check_rule_grants``), besides the Cloud-Admin-only admin roles of ``rules.validate_rule``.

The decisions read what they need in a few queries and never write. The console calls
``may_administer_source`` to hide what it would refuse.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import User
from django.db.models import Q

from accounts.access import Access
from accounts.exceptions import PolicyDenied
from accounts.identity import privilege
from accounts.identity.policy import holds_role_powers
from accounts.identity.privilege import PERM_LABELS, SIGN_IN_PERMS, SYSTEM, USER, Powers
from accounts.identity.types import Actor
from accounts.models import Organization, Role, UserProfile
from accounts.roles import CUSTOMER_CLOUD_ADMIN
from provisioning.models import Directory, MappingRule, Source

ORG_SETTINGS = ("org_mode", "fixed_org_id", "org_attribute", "org_create_under_id", "fallback_org_id")
ADOPTION_SETTINGS = ("adoption_enabled", "adopt_by")
ORG_FIELD_OF = {"fixed_org_id": "fixed_org", "org_create_under_id": "org_create_under",
                "fallback_org_id": "fallback_org"}


def placement_orgs(source: Source) -> list[Organization] | None:
    """The orgs whose subtrees ``source`` (as configured on this instance, saved or not) puts new users
    in; ``None``: anywhere (an attribute-mode source with neither a create-under nor a fallback org
    may name any org). Unmanaged mode places no new user (the identity service needs an org)."""
    mode = source.org_mode
    if mode == Source.OrgMode.FIXED:
        ids = {source.fixed_org_id}
    elif mode == Source.OrgMode.ATTRIBUTE:
        ids = {source.org_create_under_id, source.fallback_org_id} - {None}
        if not ids:
            return None
    elif mode == Source.OrgMode.RULES:
        ids = {source.fallback_org_id}
        if source.pk:
            ids |= set(MappingRule.objects.filter(source_id=source.pk, kind=MappingRule.Kind.ORG)
                       .values_list("target_org_id", flat=True))
    else:
        ids = set()
    # A new user nothing places (unmanaged mode, no matching rule and no fallback) is refused by the
    # identity service ("org_required"), so it lands nowhere and adds no org here.
    return list(Organization.objects.filter(pk__in=ids - {None}))


def source_powers(source: Source) -> Powers:
    """Everything whoever controls ``source`` can do: the roles its rules grant, where it places users
    and where its users are; the roles its users hold, in their orgs (sign-in permissions aside); with
    directory password sign-in on, resetting the passwords of the users it owns."""
    grants: dict[str, frozenset[str] | None] = {}
    cloud_admin = False

    def add(perm: str | None, reach: frozenset[str] | None) -> None:
        if perm is None or perm in SIGN_IN_PERMS:
            return
        held = grants.get(perm, frozenset())
        grants[perm] = None if held is None or reach is None else held | reach

    if source.pk:
        user_paths = frozenset(p for p in UserProfile.objects.filter(owner_source_id=source.pk)
                               .values_list("org__path", flat=True).distinct() if p)
        # Roles held by the source's users, each in its holder's org (one query).
        held_rows = (User.groups.through.objects
                     .filter(user__profile__owner_source_id=source.pk, group__role__isnull=False)
                     .values_list("group__role__slug", "group__role__scope", "group__permissions__codename",
                                  "user__profile__org__path").distinct())
        for slug, scope, perm, path in held_rows:
            cloud_admin = cloud_admin or slug == CUSTOMER_CLOUD_ADMIN
            local = scope != Role.Scope.GLOBAL and slug != CUSTOMER_CLOUD_ADMIN and path
            add(perm, frozenset({path}) if local else None)  # (an org-less holder counts as everywhere)
        rule_rows = (MappingRule.roles.through.objects.filter(mappingrule__source_id=source.pk)
                     .values_list("role__slug", "role__scope", "role__group__permissions__codename").distinct())
        placed = placement_orgs(source)
        reach = None if placed is None else frozenset(o.path for o in placed) | user_paths
        for slug, scope, perm in rule_rows:
            cloud_admin = cloud_admin or slug == CUSTOMER_CLOUD_ADMIN
            add(perm, None if scope == Role.Scope.GLOBAL else reach)
        # New users also get their org's default roles (review 4, F3): those of every org the source may
        # place users in, and of those orgs' ancestors, which they may inherit (a superset: inheritance
        # switched off somewhere only makes it larger than needed).
        for slug, scope, perm in _default_role_rows(placed):
            cloud_admin = cloud_admin or slug == CUSTOMER_CLOUD_ADMIN
            add(perm, None if scope == Role.Scope.GLOBAL else reach)
        # Directory password sign-in makes the directory decide its users' passwords (review N1).
        if Directory.objects.filter(source_id=source.pk, password_sign_in=True).exists():
            add("reset_passwords", user_paths)
    return Powers(grants=grants, cloud_admin=cloud_admin)


def _default_role_rows(placed: list[Organization] | None):
    """``(slug, scope, permission)`` of the default roles a new user placed in ``placed`` (their subtrees;
    ``None``: anywhere) may receive, directly or inherited from an ancestor (one query)."""
    through = Organization.default_roles.through.objects
    if placed is not None:
        if not placed:
            return []
        ancestors = {int(part) for org in placed for part in org.path.strip("/").split("/") if part}
        where = Q(organization_id__in=ancestors)
        for org in placed:
            where |= Q(organization__path__startswith=org.path)
        through = through.filter(where)
    return through.values_list("role__slug", "role__scope", "role__group__permissions__codename").distinct()


def _actor_powers(actor: Actor) -> Powers:
    return privilege.powers_of_actor(actor)


def check_may_administer_source(*, actor: Actor, source: Source, action: str = "change") -> None:
    """Raise ``PolicyDenied("source_more_privileged")`` unless ``actor`` holds every power of ``source``.

    ``action`` completes the message ("rotate the token of", "change"...). System actors (setup
    commands) pass; provider actors never administer a source.
    """
    mine = _actor_powers(actor)
    if mine.kind == SYSTEM or mine.cloud_admin:
        return
    if mine.kind != USER:
        raise PolicyDenied("source_more_privileged", "Provisioning sources are administered in the console.")
    theirs = source_powers(source)
    missing = privilege.missing_permissions(actor=mine, target=theirs)
    if theirs.cloud_admin or missing:
        what = "Customer Cloud Admin" if theirs.cloud_admin else ", ".join(PERM_LABELS.get(p, p) for p in missing)
        raise PolicyDenied(
            "source_more_privileged",
            f"Only a Customer Cloud Admin can {action} {source.name}: its rules grant or its users hold {what}, "
            f"which you do not hold wherever it applies, and whoever controls a source acts with its powers.")


def may_administer_source(actor: Actor, source: Source) -> bool:
    """For the console: would ``check_may_administer_source`` let ``actor`` change ``source``?"""
    try:
        check_may_administer_source(actor=actor, source=source)
    except PolicyDenied:
        return False
    return True


def grants_admin_roles(source: Source) -> bool:
    """Does any of the source's rules grant an admin role?"""
    return bool(source.pk) and MappingRule.objects.filter(
        source_id=source.pk, kind=MappingRule.Kind.ROLE, roles__is_admin_role=True).exists()


def check_source_settings_change(*, actor: Actor, source: Source, before: Source | None) -> None:
    """Org and adoption settings (review F1b): with admin-granting rules only a Cloud Admin changes
    them; otherwise the actor must manage users in every org the source would put users in."""
    mine = _actor_powers(actor)
    if mine.kind == SYSTEM or mine.cloud_admin:
        return
    org_changed = before is None or any(getattr(before, f) != getattr(source, f) for f in ORG_SETTINGS)
    adoption_changed = before is not None and any(getattr(before, f) != getattr(source, f) for f in ADOPTION_SETTINGS)
    if not (org_changed or adoption_changed or (before is None and source.adoption_enabled)):
        return
    if grants_admin_roles(source):
        raise PolicyDenied(
            "source_needs_cloud_admin",
            f"Only a Customer Cloud Admin may change where {source.name} puts users or whom it adopts: its "
            f"rules grant admin roles.", field="org_mode" if org_changed else "adoption_enabled")
    if org_changed:
        check_orgs_in_scope(actor=actor, orgs=placement_orgs(source), source=source)
    if source.adoption_enabled and (adoption_changed or before is None) and not (
            actor.user is not None and Access.of(actor.user).is_global("manage_users")):
        # Adoption by a SCIM POST can match any user in any org (review N2).
        raise PolicyDenied(
            "source_needs_cloud_admin",
            f"Only a Customer Cloud Admin, or an admin who manages users in every organization, may let "
            f"{source.name} adopt existing users: it may match a user in any organization.",
            field="adoption_enabled")


def check_orgs_in_scope(*, actor: Actor, orgs: Iterable[Organization] | None, source: Source,
                        field: str = "org_mode") -> None:
    """The actor manages users in each of ``orgs`` (``None``: everywhere, so globally)."""
    if actor.user is None:
        return
    access = Access.of(actor.user)
    if access.is_cloud_admin:
        return
    if orgs is None:
        if not access.is_global("manage_users"):
            raise PolicyDenied(
                "out_of_scope",
                f"As set, {source.name} may name any organization: only an admin who manages users in every "
                f"organization (or a Customer Cloud Admin) may set that. Choose a create-under or fallback "
                f"organization.", field="org_create_under")
        return
    for org in orgs:
        if not access.can("manage_users", org):
            field_name = next((ORG_FIELD_OF[f] for f in ORG_FIELD_OF if getattr(source, f) == org.pk), field)
            raise PolicyDenied(
                "out_of_scope",
                f"You may not point {source.name} at {org.name}: you do not manage users there.",
                field=field_name)


def check_rule_grants(*, actor: Actor, source: Source, role_slugs: Iterable[str],
                      target_org: Organization | None = None) -> None:
    """Saving a rule (review F2): every role it grants is within the actor's powers wherever the source
    places users or has users ("never more than you hold", ``policy.holds_role_powers``), and an org
    rule's target is an org the actor manages users in."""
    if actor.user is None:
        return
    access = Access.of(actor.user)
    if access.is_cloud_admin:
        return
    if target_org is not None:
        check_orgs_in_scope(actor=actor, orgs=[target_org], source=source, field="target_org")
    slugs = set(role_slugs)
    if not slugs:
        return
    placed = placement_orgs(source)
    orgs = list(Organization.objects.filter(parent__isnull=True)) if placed is None else placed
    if source.pk:
        orgs += list(Organization.objects.filter(
            pk__in=UserProfile.objects.filter(owner_source_id=source.pk).values("org_id").distinct()))
    for role in Role.objects.filter(slug__in=slugs).prefetch_related("group__permissions").order_by("slug"):
        where = orgs if role.scope != Role.Scope.GLOBAL else orgs[:1] or [None]
        if not all(holds_role_powers(access, role, org) for org in where):
            raise PolicyDenied(
                "role_beyond_your_powers",
                f"You may not save a rule granting {role.name}: you do not hold all of its permissions "
                f"wherever {source.name} puts users. A Customer Cloud Admin may.", field="roles")
