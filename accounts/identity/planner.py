"""Planning one change: match, validate, guard, diff - and nothing else.

``plan_change(change, state)`` returns a ``Plan`` (the writes the change needs, its audit events,
and the claims it makes) or raises the change's coded ``IdentityError``. It reads the ``BatchState``
and never writes it: claims (usernames, links), the batch's admin set and the loaded objects change
only when the service accepts the plan (``BatchState.accept``). Objects it changes are copies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.hashers import is_password_usable
from django.contrib.auth.models import User

from accounts.exceptions import ConflictError, NotFound, ValidationFailed
from accounts.identity import policy, privilege
from accounts.identity.audit import build_event
from accounts.identity.bulkio import clone_instance, new_instance
from accounts.identity.loading import BatchState, Current, claimant
from accounts.identity.types import UNSET, ExternalLink, IdentityChange, Mode, Source, UserState
from accounts.identity.validators import (
    hash_checked_password,
    unusable_password,
    username_key,
    validate_email,
    validate_name,
    validate_username,
)
from accounts.models import AuditEvent, ExternalIdentity, UserProfile
from accounts.permissions import CUSTOMER_CLOUD_ADMIN


@dataclass(slots=True)  # slots: a batch holds one per row
class Plan:
    """The writes one change needs, and the claims it makes on the batch once accepted."""

    change: IdentityChange
    status: str
    user: User
    profile: UserProfile
    claimant: tuple = ()
    user_fields: set[str] = field(default_factory=set)
    profile_fields: set[str] = field(default_factory=set)
    add_groups: set[int] = field(default_factory=set)
    remove_groups: set[int] = field(default_factory=set)
    new_links: list[ExternalIdentity] = field(default_factory=list)
    updated_links: list[ExternalIdentity] = field(default_factory=list)
    seen_links: list[ExternalIdentity] = field(default_factory=list)  # matched again: raw / last_seen_at only
    password_changed: bool = False
    events: list[AuditEvent] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Claims, committed by BatchState.accept():
    username_claims: list[str] = field(default_factory=list)
    link_claims: list[tuple[str, str, str]] = field(default_factory=list)
    # Set when the change moves the user into or out of the admins who can sign in with a password.
    password_admin_key: Any = None
    password_admin_after: bool = False
    admin_key: Any = None  # set when the change moves the user into or out of the active admins
    admin_after: bool = False
    role_slugs_after: frozenset[str] = frozenset()
    # Roles whose grant by the provider actor's source ends while another grant keeps the role.
    released_roles: frozenset[str] = frozenset()
    # Console / system actors: roles asked for that the user already holds only through a source;
    # the writer records the manual grant row.
    pinned_roles: frozenset[str] = frozenset()
    group_ids_after: frozenset[int] = frozenset()

    def event(self, state: BatchState, action: str, field_name: str = "", old: Any = None, new: Any = None,
              message: str = "") -> None:
        if state.dry_run:
            return  # previews build no audit objects (they dominate the cost of a 100k-row dry run)
        self.events.append(build_event(actor=state.actor, action=action, target_type="user", target_id="",
                                       target_label=self.user.username, field=field_name, old=old, new=new,
                                       message=message))


def plan_change(change: IdentityChange, state: BatchState) -> Plan:
    """Plan ``change`` against ``state`` without touching it; raise its ``IdentityError`` if refused."""
    current = match(change, state)
    if current is None:
        if change.mode == Mode.UPDATE or change.user_id:
            raise NotFound("user_not_found", "No such user.", field="username")
        return _plan_create(change, state)
    if change.mode == Mode.CREATE:
        raise ConflictError("username_taken", f"A user named {current.user.username!r} already exists.",
                            field="username")
    return _plan_update(change, state, current, policy.touched_fields(change))


def match(change: IdentityChange, state: BatchState) -> Current | None:
    """The existing user a change is about: by id, else by external link, else by username."""
    if change.user_id:
        current = state.by_id.get(change.user_id)
        if current is None:
            raise NotFound("user_not_found", "This user does not exist.")
        return current
    if change.match_link is not None:
        link = change.match_link
        owner = state.link_owner.get((link.source, link.provider, link.external_id))
        if owner in state.by_id:  # (a link taken earlier in a dry run has no loaded owner)
            return state.by_id[owner]
    if isinstance(change.username, str):
        uid = state.by_username.get(username_key(change.username))
        if uid is not None:
            return state.by_id[uid]
    return None


# --------------------------------------------------------------------------------------------
# Claims (checked here, recorded on accept)


def _check_username_free(name: str, state: BatchState, me: tuple, own_id: int | None) -> str:
    lowered = username_key(name)
    existing = state.by_username.get(lowered)
    if (existing is not None and existing != own_id) or lowered in state.taken_usernames:
        raise ConflictError("username_taken", f"The username {name!r} is taken (usernames ignore case).",
                            field="username")
    if lowered in state.claimed_usernames and state.claimed_usernames[lowered] != me:
        raise ConflictError("username_duplicate_in_batch", f"The username {name!r} appears more than once.",
                            field="username")
    return lowered


def _check_link_free(link: ExternalLink, state: BatchState, me: tuple, own_id: int | None) -> tuple[str, str, str]:
    key = (link.source, link.provider, link.external_id)
    owner = state.link_owner.get(key)
    if owner is not None and owner != own_id:
        raise ConflictError("external_id_taken", f"The external id {link.external_id!r} is linked to another user.",
                            field="external_id")
    if key in state.claimed_links and state.claimed_links[key] != me:
        raise ConflictError("external_id_duplicate_in_batch", f"The external id {link.external_id!r} appears twice.",
                            field="external_id")
    return key


# --------------------------------------------------------------------------------------------
# Shared pieces


def _resolve_roles(slugs: Iterable[str], state: BatchState) -> set[str]:
    return {state.roles.resolve(s).slug for s in slugs}


def _known_groups(group_ids: Iterable[int], state: BatchState) -> set[int]:
    ids = set(group_ids)
    if not ids:
        return ids
    unknown = ids - state.directory_groups.keys()
    if unknown:
        raise NotFound("unknown_group", f"No directory group with id {sorted(unknown)[0]}.", field="groups")
    return ids


def _state_fields(new_state: str, user: User, profile: UserProfile, now: Any) -> None:
    profile.state = new_state
    user.is_active = new_state in (UserState.ACTIVE, UserState.INVITED)
    if new_state == UserState.BLOCKED:
        profile.blocked_at = now
    elif new_state == UserState.DEACTIVATED:
        profile.deactivated_at = now
    else:
        profile.blocked_at = None
        profile.deactivated_at = None


# --------------------------------------------------------------------------------------------
# Create


def _target_org(state: BatchState, org_id: int, doing: str):
    """The org a user is created in or moved to: it must exist, be active and be in the actor's
    ``manage_users`` scope (``doing`` names the action in the refusal)."""
    org = state.orgs.get(org_id)
    if org is None:
        raise NotFound("org_not_found", "The organization does not exist.", field="org")
    if not org.is_active:
        raise ValidationFailed("org_inactive", f"{org.name} is deactivated.", field="org")
    policy.check_scope(state.access, "manage_users", org, doing)
    return org


@dataclass(frozen=True, slots=True)
class _NewRoles:
    """What a new user's roles come to in one org, judged once per batch for each (org, roles asked)."""

    slugs: frozenset[str]
    group_ids: frozenset[int]  # the roles' backing groups (the membership rows)
    names: tuple[str, ...]  # sorted role names, for the audit event
    warnings: tuple[str, ...]


def _create_org(state: BatchState, org_id: Any) -> tuple[Any, Any]:
    """(org, its single sign-on source or None) for users created in ``org_id``: ``_target_org`` and
    ``sso_source`` depend only on the org and the actor, so a batch judges each org once (a refusal
    is not remembered: the next change asking for that org is judged, and refused, again)."""
    key = ("org", org_id)
    hit = state.memo.get(key)
    if hit is None:
        org = _target_org(state, org_id, "create users")
        hit = state.memo[key] = (org, state.orgs.sso_source(org.pk))
    return hit


def _create_roles(change: IdentityChange, state: BatchState, org: Any) -> _NewRoles:
    """The roles a new user in ``org`` gets for what ``change`` asks: explicit roles (checked as
    assignable by the actor) or the org's defaults (those the actor may not hand out skipped with a
    warning), then the privilege rule. A function of the actor, the org and the role references
    only, so a batch judges each combination once; refusals are not remembered."""
    try:
        key = ("roles", org.pk, frozenset(change.roles) if change.roles is not UNSET else None,
               frozenset(change.roles_add), frozenset(change.roles_remove))
    except TypeError:  # unhashable references: judge without remembering (an unknown role refuses)
        key = None
    hit = state.memo.get(key) if key is not None else None
    if hit is not None:
        return hit
    if change.roles is not UNSET:
        roles = _resolve_roles(change.roles, state) | _resolve_roles(change.roles_add, state)
    else:
        roles = _resolve_roles(change.roles_add, state)
    roles -= _resolve_roles(change.roles_remove, state)
    warnings: tuple[str, ...] = ()
    if not roles:
        defaults = [state.roles.by_slug[s] for s in sorted(state.orgs.default_role_slugs(org.pk))]
        given, skipped = policy.split_default_roles(state.access, defaults, org)
        roles = {r.slug for r in given}
        if skipped:
            warnings = (
                f"Default role(s) not given because they carry more than you hold: "
                f"{', '.join(r.name for r in skipped)}; an administrator who holds them can assign them.",
            )
    else:
        policy.check_roles_assignable(state.access, [state.roles.by_slug[s] for s in sorted(roles)], org)
    privilege.check_privilege(actor=state.powers, target=None, grants_roles=roles)
    hit = _NewRoles(slugs=frozenset(roles), group_ids=frozenset(state.roles.by_slug[s].group_id for s in roles),
                    names=tuple(sorted(state.roles.by_slug[s].name for s in roles)), warnings=warnings)
    if key is not None:
        state.memo[key] = hit
    return hit


def _plan_create(change: IdentityChange, state: BatchState) -> Plan:
    actor = state.actor
    me = claimant(None, change)
    username = validate_username(change.username)
    username_claim = _check_username_free(username, state, me, None)
    if change.org_id is UNSET or change.org_id is None:
        raise ValidationFailed("org_required", "Choose an organization.", field="org")
    org, sso_source = _create_org(state, change.org_id)
    if sso_source is not None and _sets_password(change):
        # A new user has no break-glass membership yet: in an SSO org they sign in through the IdP only.
        raise policy.sso_password_denied(username, sso_source.auth_provider)

    user = new_instance(
        User,
        username=username,
        email=validate_email(change.email) if change.email is not UNSET else "",
        first_name=validate_name(change.first_name, "first_name") if change.first_name is not UNSET else "",
        last_name=validate_name(change.last_name, "last_name") if change.last_name is not UNSET else "",
    )
    if change.password_hash is not UNSET and change.password_hash:
        user.password = change.password_hash
    elif change.password is not UNSET and change.password:
        user.password = hash_checked_password(change.password, user)
    else:
        user.password = unusable_password()
    has_password = user.has_usable_password()

    source = actor.source if actor.source in (*policy.PROVIDER_SOURCES, Source.SAML) else Source.LOCAL
    if change.state is not UNSET:
        new_state = UserState(change.state)
    elif not has_password and source == Source.LOCAL:
        new_state = UserState.INVITED  # a local user with no password must be invited to set one
    else:
        new_state = UserState.ACTIVE
    profile = new_instance(
        UserProfile,
        org_id=org.pk,
        notes=change.notes if change.notes is not UNSET and change.notes else "",
        source=source,
        source_provider=actor.provider if source in policy.PROVIDER_SOURCES else "",
    )
    _state_fields(new_state, user, profile, state.now)

    new_roles = _create_roles(change, state, org)
    roles = new_roles.slugs

    groups: set[int] = set()
    if change.groups is not UNSET:
        groups |= _known_groups(change.groups, state)
    if change.groups_add:
        groups |= _known_groups(change.groups_add, state)
    if groups:
        groups -= set(change.groups_remove)
        policy.check_group_membership_owner(actor, [state.directory_groups[g] for g in sorted(groups)])

    plan = Plan(change=change, status="created", user=user, profile=profile, claimant=me,
                warnings=list(new_roles.warnings))
    plan.username_claims.append(username_claim)
    plan.add_groups = set(new_roles.group_ids) | groups if groups else set(new_roles.group_ids)
    if change.link is not None:
        plan.link_claims.append(_check_link_free(change.link, state, me, None))
        plan.new_links.append(ExternalIdentity(
            source=change.link.source, provider=change.link.provider, external_id=change.link.external_id,
            raw=change.link.raw or {}, last_seen_at=state.now,
        ))
    plan.password_changed = has_password
    plan.event(state, "user.created", new={
        "username": user.username, "email": user.email, "first_name": user.first_name,
        "last_name": user.last_name, "org": org.name, "state": new_state.value,
        "roles": list(new_roles.names),
        "groups": sorted(state.directory_groups[g].display_name for g in groups) if groups else [],
        "source": source,
    })
    if change.link is not None:
        plan.event(state, "user.linked", "external_id", None,
                   f"{change.link.source}:{change.link.provider}:{change.link.external_id}")
    if change.django_admin is not UNSET and change.django_admin:
        policy.check_django_admin_actor(actor)
        user.is_staff = user.is_superuser = True
        plan.event(state, "user.django_admin_granted", "django_admin", False, True)
    if policy.is_active_admin(role_slugs=roles, state=new_state, is_active=user.is_active):
        plan.admin_key, plan.admin_after = ("new", username_claim), True
    if policy.is_password_admin(admin=CUSTOMER_CLOUD_ADMIN in roles, superuser=user.is_superuser, state=new_state,
                                is_active=user.is_active, password_sign_in=sso_source is None):
        plan.password_admin_key, plan.password_admin_after = ("new", username_claim), True
    plan.role_slugs_after = roles
    plan.group_ids_after = frozenset(groups)
    plan.changed = ["created"]
    return plan


# --------------------------------------------------------------------------------------------
# Update


def _plan_update(change: IdentityChange, state: BatchState, current: Current, touched: set[str]) -> Plan:
    actor = state.actor
    if current.profile is None:
        raise ValidationFailed("no_profile", f"{current.user.username} has no directory profile.")
    owner, owner_provider = current.profile.source, current.profile.source_provider
    # A provider adopting a user into its own source is judged by ``check_adoption`` below (adoption
    # enabled by an admin, never break-glass, Cloud Admins or another source's users), not refused
    # here for not owning the user yet.
    adopting = (change.owner_source_id is not UNSET and change.owner_source_id != current.profile.owner_source_id
                and state.provisioning_sources.get(change.owner_source_id) == (actor.source, actor.provider))
    if (actor.source in policy.PROVIDER_SOURCES or actor.source == Source.SAML) and not adopting:
        policy.check_source_may_change(actor=actor, owner=owner, owner_provider=owner_provider,
                                       username=current.user.username, touched=touched)
    # Plan on copies: the loaded objects change only when the service accepts the plan.
    user, profile = clone_instance(current.user), clone_instance(current.profile)
    me = claimant(user.pk, change)
    plan = Plan(change=change, status="updated", user=user, profile=profile, claimant=me)
    is_self = actor.user is not None and actor.user.pk == user.pk
    policy.check_update_scope(state.access, state.orgs.get(profile.org_id), touched, is_self=is_self)

    # Plain user fields.
    for name in policy.USER_FIELDS:
        value = getattr(change, name)
        if value is UNSET:
            continue
        if name == "username":
            value = validate_username(value, current=user.username)
            if value != user.username:
                plan.username_claims.append(_check_username_free(value, state, me, user.pk))
        elif name == "email":
            value = validate_email(value)
        else:
            value = validate_name(value, name)
        if value != getattr(user, name):
            plan.event(state, "user.updated", name, getattr(user, name), value)
            setattr(user, name, value)
            plan.user_fields.add(name)
            plan.changed.append(name)

    if change.notes is not UNSET and (change.notes or "") != profile.notes:
        plan.event(state, "user.updated", "notes", profile.notes, change.notes or "")
        profile.notes = change.notes or ""
        plan.profile_fields.add("notes")
        plan.changed.append("notes")

    if change.password_hash is not UNSET or change.password is not UNSET:
        if _sets_password(change):
            # Judged in the org the change leaves the user in (a move out of SSO may come with a password).
            org_after = state.orgs.get(change.org_id) if change.org_id is not UNSET else None
            sso = _sso_only(state, user.pk, (org_after or state.orgs.get(profile.org_id)).pk)
            if sso is not None:
                raise policy.sso_password_denied(user.username, sso.auth_provider)
        new_hash = change.password_hash if change.password_hash is not UNSET else (
            hash_checked_password(change.password, user) if change.password else unusable_password()
        )
        user.password = new_hash
        plan.user_fields.add("password")
        plan.password_changed = bool(change.password or change.password_hash)
        plan.event(state, "user.password_changed", "password", None, "(changed)")
        plan.changed.append("password")
        if profile.state == UserState.INVITED and user.has_usable_password() and change.state is UNSET:
            _state_fields(UserState.ACTIVE, user, profile, state.now)
            plan.user_fields.add("is_active")
            plan.profile_fields |= {"state", "blocked_at", "deactivated_at"}
            plan.event(state, "user.activated", "state", UserState.INVITED, UserState.ACTIVE)

    if change.django_admin is not UNSET and bool(change.django_admin) != user.is_superuser:
        policy.check_django_admin_actor(actor)
        plan.event(state, "user.django_admin_granted" if change.django_admin else "user.django_admin_revoked",
                   "django_admin", user.is_superuser, bool(change.django_admin))
        user.is_staff = user.is_superuser = bool(change.django_admin)
        plan.user_fields |= {"is_staff", "is_superuser"}
        plan.changed.append("django_admin")

    # Lifecycle state.
    if change.state is not UNSET and change.state != profile.state:
        new_state = UserState(change.state)
        old_state = profile.state
        policy.check_self_lockout(new_state, is_self=is_self)
        _state_fields(new_state, user, profile, state.now)
        plan.user_fields.add("is_active")
        plan.profile_fields |= {"state", "blocked_at", "deactivated_at"}
        action = {
            UserState.BLOCKED: "user.blocked",
            UserState.DEACTIVATED: "user.deactivated",
            UserState.ACTIVE: {UserState.BLOCKED: "user.unblocked", UserState.INVITED: "user.activated"}.get(
                old_state, "user.reactivated"),
            UserState.INVITED: "user.invited",
        }[new_state]
        plan.event(state, action, "state", old_state, new_state.value)
        plan.changed.append("state")

    # Organization.
    if change.org_id is not UNSET and change.org_id != profile.org_id:
        new_org = _target_org(state, change.org_id, "move users")
        old_org = state.orgs.get(profile.org_id)
        plan.event(state, "user.moved", "org", old_org.name if old_org else None, new_org.name)
        profile.org_id = new_org.pk
        plan.profile_fields.add("org")
        plan.changed.append("org")
        leaving_sso = _sso_only(state, user.pk, current.profile.org_id) is not None
        if _sso_only(state, user.pk, new_org.pk) is not None:
            if user.has_usable_password():
                # Moved into single sign-on: no idm password any more (issue 7 §5), so the password step
                # cannot become an oracle for it and it cannot outlive the move.
                user.password = unusable_password()
                plan.user_fields.add("password")
                plan.event(state, "user.password_removed", "password", "(set)", None,
                           message=f"signs in with single sign-on in {new_org.name}")
                plan.changed.append("password")
        elif leaving_sso and not user.has_usable_password() and not _sets_password(change):
            plan.warnings.append(f"{user.username} has no password for local sign-in in {new_org.name}: send them "
                                 "a password reset link or an invitation.")

    # Roles.
    role_slugs = current.role_slugs
    if change.roles is not UNSET or change.roles_add or change.roles_remove or change.grants_release:
        target = _resolve_roles(change.roles, state) if change.roles is not UNSET else set(current.role_slugs)
        target |= _resolve_roles(change.roles_add, state)
        target -= _resolve_roles(change.roles_remove, state)
        if change.roles is not UNSET and not target:
            target = set(state.orgs.default_role_slugs(profile.org_id))
            plan.warnings.append("no roles given: the organization's default roles apply")
        added, removed = target - current.role_slugs, current.role_slugs - target
        if removed and actor.type == "user":  # a person, in the console or an upload (one query per batch)
            policy.check_source_granted_roles_kept(actor, removed=[state.roles.by_slug[s] for s in sorted(removed)],
                                                   source_grants=state.source_grants(user.pk))
        if actor.source in policy.PROVIDER_SOURCES and (removed or change.grants_release):
            # A source takes away only what nothing else grants: a role also granted by hand or by
            # another source stays, and only this source's grant row goes.
            held_by_others = state.grants_by_others(user.pk)
            released = _resolve_roles(change.grants_release, state) & current.role_slugs
            # Nothing else holds it any more (the other grant went since the source planned): it goes.
            orphaned = released - held_by_others - added
            removed |= orphaned
            target -= orphaned
            kept = removed & held_by_others
            removed -= kept
            target |= kept
            plan.released_roles = frozenset(kept | (released - orphaned))
        if actor.source not in policy.PROVIDER_SOURCES and change.roles_add:
            # Granting by hand a role the user holds only through a source: a manual grant row, so
            # the role outlives the source's grant (judged like a new grant, audited).
            pinned = _resolve_roles(change.roles_add, state) & current.role_slugs
            pinned = pinned - state.manual_grants(user.pk) if pinned else pinned
            if pinned:
                policy.check_self_role_change(actor, is_self=is_self)
                policy.check_roles_assignable(state.access, [state.roles.by_slug[s] for s in sorted(pinned)],
                                              state.orgs.get(profile.org_id))
                for slug in sorted(pinned):
                    plan.event(state, "user.role_granted_by_hand", "roles", None, state.roles.by_slug[slug].name,
                               message="already held through a provisioning source; now also granted by hand")
                plan.pinned_roles = frozenset(pinned)
        if added or removed:
            policy.check_self_role_change(actor, is_self=is_self)
            policy.check_roles_assignable(state.access, [state.roles.by_slug[s] for s in sorted(added | removed)],
                                          state.orgs.get(profile.org_id))
            for slug in sorted(added):
                plan.add_groups.add(state.roles.by_slug[slug].group_id)
                plan.event(state, "user.role_added", "roles", None, state.roles.by_slug[slug].name)
            for slug in sorted(removed):
                plan.remove_groups.add(state.roles.by_slug[slug].group_id)
                plan.event(state, "user.role_removed", "roles", state.roles.by_slug[slug].name, None)
            plan.changed.append("roles")
            role_slugs = frozenset(target)

    # Directory groups: only the owning provider changes a provider group's members; a full
    # replacement by a provider replaces its own groups and leaves everyone else's alone.
    group_ids = current.group_ids
    if change.groups is not UNSET or change.groups_add or change.groups_remove:
        if change.groups is not UNSET:
            given = _known_groups(change.groups, state)
            foreign = {g for g in current.group_ids
                       if g in state.directory_groups and policy.group_owned_by_other(actor, state.directory_groups[g])}
            target_g = given | (foreign - given)
        else:
            target_g = set(current.group_ids)
        target_g |= _known_groups(change.groups_add, state)
        target_g -= set(change.groups_remove)
        added_g, removed_g = target_g - current.group_ids, current.group_ids - target_g
        policy.check_group_membership_owner(
            actor, [state.directory_groups[g] for g in sorted(added_g | removed_g) if g in state.directory_groups])
        for gid in sorted(added_g):
            plan.add_groups.add(gid)
            plan.event(state, "user.group_added", "groups", None, state.directory_groups[gid].display_name)
        for gid in sorted(removed_g):
            plan.remove_groups.add(gid)
            name = state.directory_groups[gid].display_name if gid in state.directory_groups else str(gid)
            plan.event(state, "user.group_removed", "groups", name, None)
        if added_g or removed_g:
            plan.changed.append("groups")
            group_ids = frozenset(target_g)

    # Adoption: a source takes the user over (ownership and its link in one write).
    if change.owner_source_id is not UNSET and change.owner_source_id != profile.owner_source_id:
        source = state.provisioning_sources.get(change.owner_source_id)
        policy.check_adoption(
            actor=actor, source=source, owner=owner, owner_provider=owner_provider,
            owner_source_id=profile.owner_source_id, source_id=change.owner_source_id, link=change.link,
            role_slugs=current.role_slugs, superuser=user.is_superuser, username=user.username,
            break_glass=any(uid == user.pk for _, uid in state.break_glass),
            adoption_enabled=change.owner_source_id in state.adoption_enabled_sources,
            user_state=current.profile.state,
            foreign_roles=privilege.role_tuples(state.roles.by_slug[s] for s in current.role_slugs - {
                slug for slug, source_id in state.grant_rows.get(user.pk, ())
                if source_id is not None and source_id == change.owner_source_id})
            if actor.source in policy.PROVIDER_SOURCES else ())
        if change.owner_source_id in state.password_sign_in_sources and not is_self:
            policy.check_adoption_password_power(state.access, state.orgs.get(current.profile.org_id),
                                                 username=user.username, source_label=policy.owner_label(*source))
        plan.event(state, "user.adopted", "owner", policy.owner_label(owner, owner_provider),
                   policy.owner_label(*source))
        profile.source, profile.source_provider = source
        profile.owner_source_id = change.owner_source_id
        plan.profile_fields |= {"source", "source_provider", "owner_source"}
        plan.changed.append("owner")

    # External identity link (a changed link is a copy; the loaded one stays as it was).
    if change.link is not None:
        link = change.link
        plan.link_claims.append(_check_link_free(link, state, me, user.pk))
        existing = current.links.get((link.source, link.provider))
        value = f"{link.source}:{link.provider}:{link.external_id}"
        if existing is None:
            plan.new_links.append(ExternalIdentity(
                user=user, source=link.source, provider=link.provider, external_id=link.external_id,
                raw=link.raw or {}, last_seen_at=state.now,
            ))
            plan.event(state, "user.linked", "external_id", None, value)
            plan.changed.append("link")
        elif existing.external_id != link.external_id:
            old = f"{existing.source}:{existing.provider}:{existing.external_id}"
            updated = clone_instance(existing)
            updated.external_id = link.external_id
            updated.raw = link.raw or existing.raw
            updated.last_seen_at = state.now
            plan.updated_links.append(updated)
            plan.event(state, "user.linked", "external_id", old, value)
            plan.changed.append("link")
        else:
            # The source saw the user again: refresh what it said and when (bookkeeping, not an
            # identity change: not audited, does not make the change "updated").
            seen = clone_instance(existing)
            seen.raw = link.raw or existing.raw
            seen.last_seen_at = state.now
            plan.seen_links.append(seen)

    # The last active Customer Cloud Admin, judged on the outcome of the whole change.
    was_admin = user.pk in state.active_admins
    is_admin = policy.is_active_admin(role_slugs=role_slugs, state=profile.state, is_active=user.is_active)
    if was_admin and not is_admin:
        policy.check_last_admin(active_admins=state.active_admins, key=user.pk, username=user.username)
    if was_admin != is_admin:
        plan.admin_key, plan.admin_after = user.pk, is_admin
    if was_admin or is_admin or user.is_superuser or current.user.is_superuser:
        _plan_password_admin(plan, state, current, role_slugs)

    plan.role_slugs_after, plan.group_ids_after = role_slugs, group_ids
    if not plan.changed:
        plan.status = "unchanged"
        return plan
    if not is_self:  # no one takes over a more privileged account (issue 7 §1, privilege.py)
        privilege.check_planned_update(
            actor=state.powers, changed=plan.changed, target_label=current.user.username,
            superuser=current.user.is_superuser,
            target_roles=privilege.role_tuples(state.roles.by_slug[s] for s in current.role_slugs),
            org_path=_org_path(state, current.profile.org_id), new_org_path=_org_path(state, profile.org_id),
            added_roles={state.roles.by_group[g].slug for g in plan.add_groups if g in state.roles.by_group},
            via_sign_in=actor.source == Source.SAML)
        if actor.source in policy.PROVIDER_SOURCES and set(plan.changed) & privilege.PROVIDER_GUARDED_CHANGES:
            # A provider's sign-in changes (review F1a, second layer); grant rows load once per batch.
            mine = {slug for slug, source_id in state.grant_rows.get(user.pk, ())
                    if source_id is not None and source_id == state.actor_source_id}
            privilege.check_provider_sign_in_change(
                changed=plan.changed, source_label=actor.label or actor.provider, target_label=current.user.username,
                foreign_roles=privilege.role_tuples(state.roles.by_slug[s] for s in current.role_slugs - mine))
    if actor.source not in policy.PROVIDER_SOURCES and actor.source != Source.SAML:
        # Console and uploads: judged on what really changes, so re-uploading an export that
        # includes provider-owned users leaves them "unchanged" instead of refusing them.
        policy.check_source_may_change(actor=actor, owner=owner, owner_provider=owner_provider,
                                       username=current.user.username, touched=set(plan.changed),
                                       source_owns_org="org" not in plan.changed
                                       or state.source_owns_org(owner, owner_provider))
    return plan


def _plan_password_admin(plan: Plan, state: BatchState, current: Current, role_slugs: frozenset[str]) -> None:
    """The last Cloud Admin who can sign in with a password (issue 7 §2): whatever takes them out of
    that set - block, deactivation, role removal, a move into SSO - is refused when the remaining active
    admins all sign in through single sign-on (an IdP outage would lock everyone out)."""
    user, profile = plan.user, plan.profile
    was = user.pk in state.password_admins
    sso = _sso_only(state, user.pk, profile.org_id)
    now = policy.is_password_admin(admin=CUSTOMER_CLOUD_ADMIN in role_slugs, superuser=user.is_superuser,
                                   state=profile.state, is_active=user.is_active, password_sign_in=sso is None)
    if was and not now:
        field = next((f for f in ("state", "roles", "org", "django_admin") if f in plan.changed), "org")
        policy.check_password_admin_remains(password_admins=state.password_admins, key=user.pk, field=field,
                                            provider=sso.auth_provider if sso is not None else None)
    if was != now:
        plan.password_admin_key, plan.password_admin_after = user.pk, now


def _sets_password(change: IdentityChange) -> bool:
    """Does the change give the user a usable password (not just clear it)?"""
    if change.password_hash is not UNSET and change.password_hash:
        return is_password_usable(change.password_hash)
    return change.password is not UNSET and bool(change.password)


def _sso_only(state: BatchState, user_pk: int | None, org_id: int) -> Any:
    """The org whose single sign-on a user of ``org_id`` must use (its ``auth_provider`` is the IdP), or
    ``None`` when password sign-in applies: a local org, or a break-glass user of the org's provider."""
    source = state.orgs.sso_source(org_id)
    if source is None or (user_pk is not None and (source.auth_provider_id, user_pk) in state.break_glass):
        return None
    return source


def _org_path(state: BatchState, org_id: int | None) -> str | None:
    org = state.orgs.get(org_id) if org_id else None
    return org.path if org is not None else None
