"""The privilege rule (issue 7 §1): no one takes over a more privileged account.

An actor may change another user's credentials or sign-in — password, email, username, state
(block / deactivate / reactivate), second factor, break-glass membership, external identity links —
and their roles or organization only when the actor holds every permission the target holds, at
least everywhere the target holds it (a target's org-scoped permission applies in the target's org
subtree; a global one everywhere, so only a global holder covers it). Customer Cloud Admins are
changed only by Customer Cloud Admins, Django superusers only by superusers. Sign-in permissions
(console / desktop access) carry no power over others and are left out, as in
``Access.can_assign_role``. Models: Microsoft Entra's "who can reset whose password" table and
Okta's "help desk admins cannot reset super admins".

Provider actors (SCIM, directory sync, SAML just-in-time) never grant Customer Cloud Admin and
never change a Cloud Admin or a superuser. System actors (setup commands, seeders) are unrestricted.
The actor's own account is governed by the ``self_*`` guards of the identity service, not here.

``check_privilege`` is the one pure decision. The helpers below it load ``Powers`` from the
database for the console (``may_change_user``) and the front doors that write outside the identity
service (MFA reset, break-glass list).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from accounts.exceptions import PolicyDenied

CLOUD_ADMIN_SLUG = "customer-cloud-admin"  # == accounts.roles.CUSTOMER_CLOUD_ADMIN (kept import-free)
SIGN_IN_PERMS = frozenset({"console_access", "desktop_access"})

USER, PROVIDER, SYSTEM = "user", "provider", "system"

# The changes this rule governs, as the identity service names them in a plan's ``changed`` list,
# plus the two that are written outside it.
SENSITIVE_CHANGES = frozenset({"username", "email", "password", "state", "org", "roles", "link",
                               "mfa_reset", "break_glass"})

# Sign-in fields a provider may change only on users whose powers all came from it (see
# ``check_provider_sign_in_change``): each is a way to take the account over.
PROVIDER_GUARDED_CHANGES = frozenset({"username", "email", "password", "state"})

PERM_LABELS = {
    "view_directory": "View directory",
    "manage_users": "Manage users",
    "modify_user_profile": "Modify user profiles",
    "assign_roles": "Assign roles",
    "manage_orgs": "Manage organizations",
    "reset_passwords": "Reset passwords",
    "view_audit_log": "View audit log",
    "manage_identity": "Manage identity providers",
    "manage_mfa": "Manage two-factor authentication",
}


@dataclass(frozen=True)
class Powers:
    """What one party may do, and where.

    ``grants`` maps a permission to ``None`` (everywhere) or the org paths whose subtrees it covers.
    ``kind`` is ``user``, ``provider`` (SCIM, directory sync, SAML JIT) or ``system``.
    """

    grants: Mapping[str, frozenset[str] | None] = field(default_factory=dict)
    cloud_admin: bool = False
    superuser: bool = False
    kind: str = USER


def covers(actor_reach: frozenset[str] | None, target_reach: frozenset[str] | None) -> bool:
    """Does the actor's reach of a permission include all of the target's reach?"""
    if actor_reach is None:
        return True
    if target_reach is None:
        return False
    return all(any(path.startswith(mine) for mine in actor_reach) for path in target_reach)


def missing_permissions(*, actor: Powers, target: Powers) -> list[str]:
    """The target's permissions (sign-in ones aside) the actor does not hold wherever the target does."""
    return sorted(
        perm for perm, reach in target.grants.items()
        if perm not in SIGN_IN_PERMS and (perm not in actor.grants or not covers(actor.grants[perm], reach))
    )


def check_privilege(*, actor: Powers, target: Powers | None, grants_roles: Iterable[str] = (),
                    target_label: str = "this user") -> None:
    """Raise ``PolicyDenied`` unless ``actor`` may change ``target``'s credentials, sign-in, roles or org.

    ``target`` is the user's current powers (``None`` when the user is being created);
    ``grants_roles`` the role slugs the change adds. Roles an actor may assign at all are judged by
    ``Access.can_assign_role``; this adds the provider limit on Cloud Admin.
    """
    if actor.kind == SYSTEM:
        return
    if actor.kind != USER:
        if CLOUD_ADMIN_SLUG in set(grants_roles):
            raise PolicyDenied(
                "role_not_assignable",
                "Provisioning and single sign-on never grant Customer Cloud Admin: a Customer Cloud Admin "
                "assigns it in the console.", field="roles")
        if target is not None and (target.cloud_admin or target.superuser):
            raise PolicyDenied(
                "target_more_privileged",
                f"Only a Customer Cloud Admin can change {target_label}: provisioning and single sign-on "
                f"never change a Customer Cloud Admin.")
        return
    if target is None:
        return
    if target.superuser and not actor.superuser:
        raise PolicyDenied(
            "target_more_privileged",
            f"Only a Django superuser can change {target_label}, who has Django admin access.")
    if target.cloud_admin and not actor.cloud_admin:
        raise PolicyDenied("target_more_privileged", f"Only a Customer Cloud Admin can change {target_label}.")
    missing = missing_permissions(actor=actor, target=target)
    if missing:
        labels = ", ".join(PERM_LABELS.get(p, p) for p in missing)
        raise PolicyDenied(
            "target_more_privileged",
            f"Only a Customer Cloud Admin, or an admin who also holds {labels} wherever {target_label} "
            f"holds {'it' if len(missing) == 1 else 'them'}, can change {target_label}.")


def rises(*, before: Powers, after: Powers) -> bool:
    """Does a user who held ``before`` and now holds ``after`` outrank their old self: would someone
    holding exactly ``before`` be refused a change of them (``check_privilege``)? Whoever could
    change the user before may not any more, so what they issued then must stop working
    (``accounts.credentials.revocation``). Sign-in permissions do not count, as in the rule."""
    try:
        check_privilege(actor=Powers(grants=before.grants, cloud_admin=before.cloud_admin,
                                     superuser=before.superuser), target=after)
    except PolicyDenied:
        return True
    return False


def check_provider_sign_in_change(*, changed: Iterable[str], foreign_roles: Iterable[tuple[str, Iterable[str], str]],
                                  source_label: str, target_label: str = "this user") -> None:
    """Second layer of the rule for sources (outside review F1a): a provider changes the sign-in fields
    of one of its users (``PROVIDER_GUARDED_CHANGES``) only when every role carrying powers that the
    user holds came from that provider. ``foreign_roles`` are ``(slug, perms, scope)`` of the roles
    the user holds with no grant from the provider (granted by hand or by another source): taking
    the account over would hand whoever controls the provider's credential powers the source never
    granted, so the change is refused with ``role_not_from_source``.
    """
    touched = sorted(set(changed) & PROVIDER_GUARDED_CHANGES)
    if not touched:
        return
    powerful = sorted(slug for slug, perms, _scope in foreign_roles if set(perms) - SIGN_IN_PERMS)
    if powerful:
        raise PolicyDenied(
            "role_not_from_source",
            f"{source_label} may not change the {', '.join(touched)} of {target_label}, who holds "
            f"{', '.join(powerful)} granted by hand or by another source: a Customer Cloud Admin (or an admin "
            f"who holds {'that role' if len(powerful) == 1 else 'those roles'}) makes this change in the console.",
            field=touched[0])


def powers_from_roles(roles: Iterable[tuple[str, Iterable[str], str]], *, org_path: str | None,
                      superuser: bool = False) -> Powers:
    """Powers of a user from ``(slug, perms, scope)`` of each role held and their org path.

    Unlike ``Access`` this ignores whether the user is active: a blocked Cloud Admin is still one
    (otherwise blocking an admin would open them to takeover).
    """
    grants: dict[str, frozenset[str] | None] = {}
    cloud_admin = superuser
    for slug, perms, scope in roles:
        cloud_admin = cloud_admin or slug == CLOUD_ADMIN_SLUG
        for perm in perms:
            if scope == "global" or slug == CLOUD_ADMIN_SLUG:
                grants[perm] = None
            elif grants.get(perm, frozenset()) is not None and org_path:
                grants[perm] = frozenset({org_path})  # a user's org-scoped roles all act in their one org
    if superuser:
        from accounts.roles import ALL_PERMS

        grants = {perm: None for perm in ALL_PERMS}
    return Powers(grants=grants, cloud_admin=cloud_admin, superuser=superuser)


def with_paths(powers: Powers, extra_path: str) -> Powers:
    """``powers`` with every org-scoped grant also at ``extra_path`` (a user about to move there)."""
    grants = {perm: None if reach is None else reach | {extra_path} for perm, reach in powers.grants.items()}
    return Powers(grants=grants, cloud_admin=powers.cloud_admin, superuser=powers.superuser, kind=powers.kind)


def check_planned_update(*, actor: Powers, changed: Iterable[str], target_roles: Iterable[tuple[str, Iterable[str], str]],
                         superuser: bool, org_path: str | None, new_org_path: str | None = None,
                         added_roles: Iterable[str] = (), target_label: str = "this user",
                         via_sign_in: bool = False) -> None:
    """The rule for one planned update of another user (the identity service's planning step).

    Judged on what really changes (``changed``), so re-uploading an unchanged export passes. A move
    counts the target's org-scoped permissions at the new org too. ``via_sign_in``: the change comes
    from the user's own SAML sign-in, which links only users whose org signs in through that IdP
    (``sso.signin``): the link gives the IdP nothing it does not hold already, so it is not counted.
    """
    added = set(added_roles)
    sensitive = set(changed) & SENSITIVE_CHANGES
    if via_sign_in:
        sensitive.discard("link")
    if not sensitive and not added:
        return
    target = powers_from_roles(target_roles, org_path=org_path, superuser=superuser)
    if new_org_path and new_org_path != org_path:
        target = with_paths(target, new_org_path)
    check_privilege(actor=actor, target=target, grants_roles=added, target_label=target_label)


# --------------------------------------------------------------------------------------------
# Loading powers (the I/O edge: the decision above stays pure)


def powers_of_access(access) -> Powers:
    """Powers of an acting console user from their ``accounts.access.Access``."""
    user = access.user
    return Powers(
        grants={perm: None if paths is None else frozenset(paths) for perm, paths in access.grants.items()},
        cloud_admin=access.is_cloud_admin,
        superuser=bool(getattr(user, "is_superuser", False)) and bool(access.grants),
    )


def powers_of_actor(actor) -> Powers:
    """Powers of an ``accounts.identity.types.Actor``."""
    from accounts.access import Access

    if actor.type == SYSTEM:
        return Powers(kind=SYSTEM)
    if actor.user is None or actor.type in ("provider", "sync"):
        return Powers(kind=PROVIDER)
    return powers_of_access(Access.of(actor.user))


def role_tuples(roles) -> list[tuple[str, list[str], str]]:
    """``(slug, perms, scope)`` of ``Role`` objects (with ``group__permissions`` prefetched)."""
    return [(r.slug, [p.codename for p in r.group.permissions.all()], r.scope) for r in roles]


def powers_of_users(users: Iterable) -> dict[int, Powers]:
    """Powers of each user (active or not): one query for their roles' permissions, and one for
    the org paths of users whose profile and org are not loaded yet (the users list loads them)."""
    from django.contrib.auth.models import User

    users = list(users)
    ids = [u.pk for u in users]
    held: dict[int, dict[str, tuple[str, list[str]]]] = {pk: {} for pk in ids}
    rows = (User.groups.through.objects.filter(user_id__in=ids, group__role__isnull=False)
            .values_list("user_id", "group__role__slug", "group__role__scope", "group__permissions__codename"))
    for uid, slug, scope, codename in rows:
        _, perms = held[uid].setdefault(slug, (scope, []))
        if codename is not None:
            perms.append(codename)
    paths = {u.pk: _loaded_org_path(u) for u in users}
    missing = [pk for pk, path in paths.items() if path is _NOT_LOADED]
    if missing:
        paths.update(User.objects.filter(pk__in=missing).values_list("pk", "profile__org__path"))
    return {u.pk: powers_from_roles([(slug, perms, scope) for slug, (scope, perms) in held[u.pk].items()],
                                    org_path=paths.get(u.pk), superuser=u.is_superuser)
            for u in users}


def combined_powers(users) -> Powers:
    """Every power any of ``users`` (a ``User`` queryset) holds, active or not: the target of a change
    that reaches all of them at once, such as an identity provider's settings (whoever controls the
    IdP signs in as any of them) or an org's sign-in method. An org-scoped permission counts at its
    holder's org (everywhere for a holder with no org). Two queries, whatever the number of users."""
    from django.contrib.auth.models import User

    grants: dict[str, frozenset[str] | None] = {}
    cloud_admin = False
    rows = (User.groups.through.objects.filter(user__in=users, group__role__isnull=False)
            .values_list("group__role__slug", "group__role__scope", "group__permissions__codename",
                         "user__profile__org__path").distinct())
    for slug, scope, perm, path in rows:
        cloud_admin = cloud_admin or slug == CLOUD_ADMIN_SLUG
        if perm is None or perm in SIGN_IN_PERMS:
            continue
        reach = None if scope == "global" or slug == CLOUD_ADMIN_SLUG or not path else frozenset({path})
        held = grants.get(perm, frozenset())
        grants[perm] = None if held is None or reach is None else held | reach
    superuser = users.filter(is_superuser=True).exists()
    if superuser:
        from accounts.roles import ALL_PERMS

        grants = {perm: None for perm in ALL_PERMS if perm not in SIGN_IN_PERMS}
    return Powers(grants=grants, cloud_admin=cloud_admin or superuser, superuser=superuser)


_NOT_LOADED = object()


def _loaded_org_path(user):
    """The user's org path if their profile and its org are already loaded (``None``: no profile)."""
    if "profile" not in user._state.fields_cache:
        return _NOT_LOADED
    profile = user._state.fields_cache["profile"]
    if profile is None:
        return None
    if "org" not in profile._state.fields_cache:
        return _NOT_LOADED
    return profile.org.path


def check_may_change_user(actor, target, *, grants_roles: Iterable[str] = ()) -> None:
    """``check_privilege`` for an ``Actor`` (or a console user) and a ``User``; own account passes."""
    from accounts.identity.types import Actor

    if not isinstance(actor, Actor):
        actor = Actor.for_user(actor)
    if actor.user is not None and actor.user.pk == target.pk:
        return
    check_privilege(actor=powers_of_actor(actor), target=powers_of_users([target])[target.pk],
                    grants_roles=grants_roles, target_label=target.get_username())


def check_may_change_credentials(actor, target) -> None:
    """Credential writes made outside the identity service (reset links, required actions, sessions,
    unlocks): the actor may reset passwords or manage users in ``target``'s org (scope), and the
    privilege rule holds. Raise the coded ``IdentityError``; one's own account passes."""
    from accounts.access import Access
    from accounts.exceptions import ValidationFailed
    from accounts.identity.policy import check_update_scope
    from accounts.identity.types import Actor

    if not isinstance(actor, Actor):
        actor = Actor.for_user(actor)
    if actor.user is not None and actor.user.pk == target.pk:
        return
    profile = getattr(target, "profile", None)  # (no profile: RelatedObjectDoesNotExist, an AttributeError)
    if profile is None:
        raise ValidationFailed("no_profile", f"{target.get_username()} has no directory profile.")
    if actor.user is not None and actor.enforce_scope:
        check_update_scope(Access.of(actor.user), profile.org, {"password"}, is_self=False)
    check_may_change_user(actor, target)


def may_change_user(actor_user, target) -> bool:
    """May the signed-in ``actor_user`` change ``target``'s credentials and sign-in (for the console)?"""
    try:
        check_may_change_user(actor_user, target)
    except PolicyDenied:
        return False
    return True


def changeable_user_ids(actor_user, users: Iterable) -> set[int]:
    """Of ``users``, those the signed-in ``actor_user`` may change (users list bulk actions)."""
    from accounts.access import Access

    users = list(users)
    actor = powers_of_access(Access.of(actor_user))
    out = set()
    for pk, target in powers_of_users(users).items():
        if pk == actor_user.pk:
            out.add(pk)
            continue
        try:
            check_privilege(actor=actor, target=target)
        except PolicyDenied:
            continue
        out.add(pk)
    return out


# --------------------------------------------------------------------------------------------
# Who may still vouch for an email address (review 4 F1)
#
# A reset link goes to the user's email address, so whoever set that address chose where the
# user's password can be reset. The address is only as good as its setter's right to change the
# user *now*: an address a lesser admin set before a promotion must not receive links after it.


def check_may_vouch_email(actor_user, target) -> None:
    """Raise ``PolicyDenied`` unless the console user ``actor_user`` may set ``target``'s email now:
    active, ``manage_users`` or ``modify_user_profile`` wherever ``target``'s org is (the scope of an
    email edit, ``policy.check_update_scope``), and the privilege rule. One's own account passes.

    One query for both users' roles (``powers_of_users``), plus one for org paths not loaded yet."""
    if actor_user is None:
        raise PolicyDenied("actor_gone", "The account that set this address no longer exists.")
    if actor_user.pk == target.pk:
        return
    if not actor_user.is_active:
        raise PolicyDenied("actor_inactive", f"{actor_user.get_username()} is no longer active.")
    powers = powers_of_users([actor_user, target])
    actor, held = powers[actor_user.pk], powers[target.pk]
    org_path = _loaded_org_path(target)
    if org_path is _NOT_LOADED:
        from django.contrib.auth.models import User

        org_path = User.objects.filter(pk=target.pk).values_list("profile__org__path", flat=True).first()
    place = frozenset({org_path}) if org_path else None
    if not any(perm in actor.grants and covers(actor.grants[perm], place)
               for perm in ("manage_users", "modify_user_profile")):
        raise PolicyDenied("out_of_scope", f"{actor_user.get_username()} may not change users "
                           f"where {target.get_username()} is.")
    check_privilege(actor=actor, target=held, target_label=target.get_username())


def check_source_may_vouch_email(*, source_id: int, source_label: str, target) -> None:
    """Raise ``PolicyDenied`` (``role_not_from_source``) unless the provisioning source ``source_id``
    may still change ``target``'s sign-in fields: every role with powers the user holds came from it
    (``check_provider_sign_in_change``). Two queries: the held roles, and the source's grant rows."""
    from django.contrib.auth.models import User

    from provisioning.models import RoleGrant

    held: dict[str, tuple[str, list[str]]] = {}
    rows = (User.groups.through.objects.filter(user_id=target.pk, group__role__isnull=False)
            .values_list("group__role__slug", "group__role__scope", "group__permissions__codename"))
    for slug, scope, codename in rows:
        _, perms = held.setdefault(slug, (scope, []))
        if codename is not None:
            perms.append(codename)
    if not held:
        return
    granted = set(RoleGrant.objects.filter(user_id=target.pk, source_id=source_id).values_list("role__slug", flat=True))
    check_provider_sign_in_change(
        changed={"email"}, source_label=source_label, target_label=target.get_username(),
        foreign_roles=[(slug, perms, scope) for slug, (scope, perms) in held.items() if slug not in granted])
