"""Every guard of the identity service, as pure functions of the actor (and its ``Access``), the
target and the change. Each refusal is a coded ``PolicyDenied``; none reads or writes the database
(the planner hands them what the batch loaded), so each rule is tested on its own.

The privilege rule ("no actor changes the credentials of a more privileged user") lives beside
this module in ``privilege.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any

from accounts.exceptions import PolicyDenied, ValidationFailed
from accounts.identity.types import UNSET, Actor, IdentityChange, Source, UserState
from accounts.permissions import CUSTOMER_CLOUD_ADMIN, SIGN_IN_PERMS

PROVIDER_SOURCES = frozenset({Source.SCIM, Source.LDAP})
# Fields a provider owns on the users it manages: the console may not overwrite them.
PROVIDER_OWNED_FIELDS = frozenset({"username", "email", "first_name", "last_name", "org", "groups"})
USER_FIELDS = ("username", "email", "first_name", "last_name")
PROFILE_ONLY_FIELDS = frozenset({"email", "first_name", "last_name", "notes"})
ADOPTION_FIELDS = frozenset({"owner", "link"})


def touched_fields(change: IdentityChange) -> set[str]:
    """The fields a change names (whether or not their values differ from the current ones)."""
    touched = {f for f in (*USER_FIELDS, "notes", "password", "state") if getattr(change, f) is not UNSET}
    if change.password_hash is not UNSET:
        touched.add("password")
    if change.org_id is not UNSET:
        touched.add("org")
    if change.roles is not UNSET or change.roles_add or change.roles_remove:
        touched.add("roles")
    if change.groups is not UNSET or change.groups_add or change.groups_remove:
        touched.add("groups")
    if change.link is not None:
        touched.add("link")
    if change.owner_source_id is not UNSET:
        touched.add("owner")
    return touched


def owner_label(source: str, provider: str) -> str:
    """"SCIM provisioning (okta)" - who manages a user, for messages."""
    label = Source(source).label if source in Source.values else source
    return f"{label} ({provider})" if provider else label


def check_source_may_change(*, actor: Actor, owner: str, owner_provider: str, username: str,
                            touched: Set[str], source_owns_org: bool = True) -> None:
    """Ownership: providers change only their own users; other sources leave provider-owned fields alone.

    ``source_owns_org`` False: the owning source does not map organizations (its org mode is "fixed"
    or "unmanaged"), so the console may move the user; the source never moves them back.
    """
    if actor.source in PROVIDER_SOURCES:
        if owner != actor.source or owner_provider != actor.provider:
            raise PolicyDenied(
                "not_owner",
                f"{username} is managed by {owner_label(owner, owner_provider)}; "
                f"this provider may only change users it created.",
            )
        return
    if actor.source == Source.SAML:
        if touched - {"link"} and owner != Source.SAML:
            raise PolicyDenied("not_owner", "Single sign-on may only link users it did not create.")
        return
    if owner in PROVIDER_SOURCES:
        if actor.source == Source.BULK:
            raise PolicyDenied(
                "managed_by_provider",
                f"{username} is managed by {owner_label(owner, owner_provider)}; change it there, not in an upload.",
            )
        blocked = touched & PROVIDER_OWNED_FIELDS
        if not source_owns_org:
            blocked -= {"org"}
        if blocked:
            raise PolicyDenied(
                "managed_by_provider",
                f"{', '.join(sorted(blocked))} of {username} "
                f"{'is' if len(blocked) == 1 else 'are'} managed by {owner_label(owner, owner_provider)}.",
                field=sorted(blocked)[0],
            )


def check_scope(access: Any, perm: str, org: Any, what: str) -> None:
    """The actor (``access`` None = unscoped system/provider work) may use ``perm`` on ``org``."""
    if access is None:
        return
    if org is None or not access.can(perm, org):
        raise PolicyDenied("out_of_scope", f"You may not {what} in {org.name if org else 'this organization'}.")


def check_update_scope(access: Any, org: Any, touched: Set[str], *, is_self: bool) -> None:
    """Profile edits need modify_user_profile or manage_users in the user's org; the rest manage_users.

    Role changes are judged by ``check_roles_assignable``; a user may set their own password.
    An adoption (the owner and the source's link) hands the source the user's email, username and
    state, so it needs manage_users in the user's org (review N1, superseding F10's manage_identity);
    it is further bounded by the privilege rule (``privilege.check_planned_update``, judged on the
    "link" change), by ``check_adoption_password_power`` and by ``privilege.check_provider_sign_in_change``.
    """
    if access is None:
        return
    perm_ok = access.can("manage_users", org) or (
        touched <= PROFILE_ONLY_FIELDS and access.can("modify_user_profile", org)
    ) or (touched <= {"password"} and access.can("reset_passwords", org))  # Help Desk resets
    if touched - {"roles"} and not perm_ok and not (is_self and touched <= {"password"}):
        raise PolicyDenied("out_of_scope", f"You may not change users in {org.name}.")


def check_adoption_password_power(access: Any, org: Any, *, username: str, source_label: str) -> None:
    """Linking a user to a directory with password sign-in on makes the directory decide their password:
    the acting admin must be able to reset it (review N1). ``access`` ``None``: system actor."""
    if access is None or access.is_cloud_admin:
        return
    if access.is_global("reset_passwords") or (org is not None and access.can("reset_passwords", org)):
        return
    raise PolicyDenied(
        "out_of_scope",
        f"You may not link {username} to {source_label}: its users sign in with the directory password, and you "
        f"may not reset passwords in {org.name if org is not None else 'their organization'}.")


def check_roles_assignable(access: Any, roles: Iterable[Any], org: Any) -> None:
    """Explicit role grants or removals: ``assign_roles`` in ``org`` and never more than the actor holds."""
    roles = list(roles)
    if access is None or not roles:
        return
    check_scope(access, "assign_roles", org, "assign roles")
    for role in roles:
        if not access.can_assign_role(role):
            raise PolicyDenied("role_not_assignable", f"You may not assign the role {role.name}.", field="roles")


def holds_role_powers(access: Any, role: Any, org: Any) -> bool:
    """"Never more than you hold": every permission of ``role`` (sign-in ones aside) is the actor's
    in ``org``, everywhere if the role is global; only a Cloud Admin hands out Cloud Admin."""
    if access is None:
        return True
    if role.slug == CUSTOMER_CLOUD_ADMIN:
        return access.is_cloud_admin
    if access.is_cloud_admin:
        return True
    perms = {p.codename for p in role.group.permissions.all()} - SIGN_IN_PERMS
    if role.scope == "global":
        return all(access.is_global(p) for p in perms)
    return all(access.can(p, org) for p in perms)


def split_default_roles(access: Any, roles: Iterable[Any], org: Any) -> tuple[list[Any], list[Any]]:
    """Default roles a new user gets: (given, skipped). An org's defaults go to every user an admin
    creates there, so they pass the same "never more than you hold" check as explicit roles; the ones
    that fail are skipped with a warning rather than refusing the user (issue 7 §5)."""
    given, skipped = [], []
    for role in roles:
        (given if holds_role_powers(access, role, org) else skipped).append(role)
    return given, skipped


def check_source_granted_roles_kept(actor: Actor, *, removed: Iterable[Any], source_grants: Mapping[str, Sequence[str]]) -> None:
    """A person does not remove by hand a role an enabled provisioning source grants (issue 8): the
    source would grant it again on its next run, so the removal would not last. Like Okta's and
    Entra's group-based assignments, it is changed where it comes from: the source's rules or the
    user's data at the source (or the source is disabled). ``removed``: the ``Role`` objects the
    change takes away; ``source_grants``: role slug -> names of the sources granting it."""
    if actor.type != "user" or actor.source in PROVIDER_SOURCES:
        return
    for role in removed:
        sources = source_grants.get(role.slug)
        if sources:
            raise PolicyDenied(
                "role_granted_by_source",
                f"{role.name} is granted by the provisioning source {' and '.join(sources)}: remove it by "
                "changing the source's rules or the user's data at the source; removed here, the source would "
                "grant it again.",
                field="roles",
            )


def check_self_role_change(actor: Actor, *, is_self: bool) -> None:
    if is_self and actor.source in (Source.LOCAL, Source.BULK):
        raise PolicyDenied("self_role_change", "You cannot change your own roles.", field="roles")


def check_self_lockout(new_state: str, *, is_self: bool) -> None:
    if is_self and new_state != UserState.ACTIVE:
        raise PolicyDenied("self_lockout", "You cannot block or deactivate your own account.", field="state")


def is_active_admin(*, role_slugs: Set[str], state: str, is_active: bool) -> bool:
    """Counts for the last-admin rule: holds Customer Cloud Admin and is active (invited is not)."""
    return CUSTOMER_CLOUD_ADMIN in role_slugs and state == UserState.ACTIVE and is_active


def check_last_admin(*, active_admins: Set[Any], key: Any, username: str) -> None:
    """Refuse taking ``key`` out of the active Customer Cloud Admins when no other one is left."""
    if active_admins - {key}:
        return
    raise PolicyDenied(
        "last_admin",
        f"{username} is the last active Customer Cloud Admin; give the role to someone else first.",
    )


def last_admin_sso_denied(provider: Any, *, field: str = "") -> PolicyDenied:
    """The ``last_admin_sso`` refusal: the change would leave no Customer Cloud Admin with password sign-in."""
    return PolicyDenied(
        "last_admin_sso",
        "Every Customer Cloud Admin would then have to sign in through single sign-on, so an identity "
        "provider outage would lock everyone out. Make at least one Cloud Admin a break-glass user of "
        f"{provider or 'the identity provider'} (or keep one in an organization with local sign-in) first.",
        field=field)


def check_password_admin_remains(*, password_admins: Set[Any], key: Any, provider: Any, field: str = "org") -> None:
    """Taking ``key`` out of the Cloud Admins who can sign in with a password (blocking, deactivating,
    removing the role, moving into an SSO org without break-glass) is refused when no other one is left
    (issue 7 §2). The last active admin at all is ``check_last_admin``'s refusal, judged first."""
    if key in password_admins and not password_admins - {key}:
        raise last_admin_sso_denied(provider, field=field)


def is_password_admin(*, admin: bool, superuser: bool, state: str, is_active: bool, password_sign_in: bool) -> bool:
    """Counts for ``check_password_admin_remains`` (as ``orgs.password_sign_in_admins`` counts a user with
    a profile): an active Cloud Admin or superuser whose org lets them sign in with a password."""
    return (admin or superuser) and is_active and state == UserState.ACTIVE and password_sign_in


def sso_password_denied(username: str, provider: Any) -> ValidationFailed:
    """The ``sso_user`` refusal of a password for a user who signs in through single sign-on (issue 7 §5):
    such users have no idm password, unless they are break-glass users of the provider."""
    name = getattr(provider, "name", None) or "single sign-on"
    return ValidationFailed(
        "sso_user",
        f"{username} signs in with {name}: passwords do not apply. Make them a break-glass user of {name} "
        "first if they need password sign-in.", field="password")


def check_django_admin_actor(actor: Actor) -> None:
    if actor.type != "system":
        raise PolicyDenied("django_admin_system_only",
                           "Django admin access is granted only by setup commands (create_first_admin).",
                           field="django_admin")


def group_owned_by_other(actor: Actor, dgroup: Any) -> bool:
    """A directory group pushed by a provider belongs to it: nobody else edits it or its members."""
    return dgroup.source in PROVIDER_SOURCES and (dgroup.source, dgroup.provider) != (actor.source, actor.provider)


def check_group_owner(actor: Actor, dgroup: Any) -> None:
    """Rename, delete: only the provider that owns the group."""
    if group_owned_by_other(actor, dgroup):
        raise PolicyDenied("not_owner", f"The group {dgroup.display_name} belongs to "
                                        f"{owner_label(dgroup.source, dgroup.provider)}.")


def check_group_membership_owner(actor: Actor, dgroups: Iterable[Any]) -> None:
    """Adding or removing members: only the provider that owns the group (not another source, not the console)."""
    for dgroup in dgroups:
        if group_owned_by_other(actor, dgroup):
            raise PolicyDenied(
                "group_not_owner",
                f"Members of {dgroup.display_name} are managed by {owner_label(dgroup.source, dgroup.provider)}.",
                field="groups",
            )


def check_adoption(*, actor: Actor, source: tuple[str, str] | None, owner: str, owner_provider: str,
                   owner_source_id: int | None, source_id: int, link: Any, role_slugs: Set[str],
                   superuser: bool, break_glass: bool, username: str, adoption_enabled: bool = False,
                   foreign_roles: Iterable[tuple[str, Iterable[str], str]] = (), user_state: str = "") -> None:
    """A source may take over (adopt) an existing user: asked by an admin or the system, or by the
    provider itself for its own source when an admin enabled adoption for it (``adoption_enabled``:
    a SCIM POST of an existing userName, issue 9); with the source's own link, never a break-glass
    user, never a Customer Cloud Admin, never a user another source owns (two sources never own one
    user: reported, not resolved). ``source`` is the adopting source's (kind, slug), None if it does
    not exist.

    A provider adopting by itself (review N2, N8) never takes a user an admin blocked or deactivated,
    nor one holding a role with powers the source did not grant (``foreign_roles``, as
    ``privilege.check_provider_sign_in_change`` judges a provider's sign-in changes): the adoption
    would hand whoever holds the provider's credential that user's email, and so their account."""
    own_enabled_source = source is not None and adoption_enabled and (actor.source, actor.provider) == source
    if (actor.source in PROVIDER_SOURCES and not own_enabled_source) or actor.source == Source.SAML:
        raise PolicyDenied("adoption_not_allowed", "Only an administrator can apply an adoption.")
    if source is None:
        raise PolicyDenied("source_not_found", "The provisioning source does not exist.")
    if link is None or (link.source, link.provider) != source:
        raise PolicyDenied("adoption_link_required", "An adoption needs the source's external id.",
                           field="external_id")
    if break_glass:
        raise PolicyDenied("break_glass", f"{username} is a break-glass user and is never adopted.")
    if superuser or CUSTOMER_CLOUD_ADMIN in role_slugs:
        raise PolicyDenied("cloud_admin", f"{username} is a Customer Cloud Admin and is never adopted.")
    other_owner = owner_source_id not in (None, source_id) or (
        owner_source_id is None and owner in PROVIDER_SOURCES and (owner, owner_provider) != source)
    if other_owner:
        raise PolicyDenied("owned_by_other_source",
                           f"{username} is managed by {owner_label(owner, owner_provider)}; "
                           f"two sources never own one user.")
    if actor.source in PROVIDER_SOURCES:
        if user_state in (UserState.BLOCKED, UserState.DEACTIVATED):
            raise PolicyDenied("adoption_user_inactive",
                               f"{username} was {user_state} by an administrator and is not adopted by a provider.")
        powerful = sorted(slug for slug, perms, _scope in foreign_roles if set(perms) - SIGN_IN_PERMS)
        if powerful:
            raise PolicyDenied(
                "role_not_from_source",
                f"{username} holds {', '.join(powerful)}, which the source did not grant: an administrator who "
                f"holds {'that role' if len(powerful) == 1 else 'those roles'} links them in the console.")
