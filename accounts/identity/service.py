"""THE identity write path. Every change to a user, its profile, roles, directory groups and
external links, from every source, is applied here: nothing else calls ``user.save()`` or
``groups.add()``.

``apply_identity_changes`` is the one implementation; ``apply_identity_change`` is the same code for
a single change. For each batch it:

1. loads everything the batch touches in a handful of queries (no query per row);
2. per change: matches a user, validates, applies policy guards, diffs against the current state;
   a refused change gets a coded ``IdentityError`` and contributes nothing;
3. writes all accepted changes of the batch in one transaction with bulk statements, and one audit
   event per changed field, role or membership (old and new values).

If the batch write fails on a race (another writer took a username meanwhile), the batch is rolled
back and its changes are retried one by one, so one bad row never sinks the others and nothing is
half-applied.
"""

from __future__ import annotations

import copy
import logging
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX, make_password
from django.contrib.auth.models import BaseUserManager, Group, User
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.access import Access
from accounts.exceptions import ConflictError, IdentityError, NotFound, PolicyDenied, ValidationFailed
from accounts.identity import privilege
from accounts.identity.audit import build_event, save_events
from accounts.identity.orgs import OrgIndex
from accounts.identity.types import (
    UNSET,
    Actor,
    BulkResult,
    ChangeResult,
    ExternalLink,
    IdentityChange,
    Mode,
    Source,
    UserState,
)
from accounts.models import AuditEvent, DirectoryGroup, ExternalIdentity, PasswordHistory, Role, UserProfile
from accounts.roles import CUSTOMER_CLOUD_ADMIN
from accounts.sessions import end_sessions_on_commit

logger = logging.getLogger(__name__)

PROVIDER_SOURCES = frozenset({Source.SCIM, Source.LDAP})
# Fields a provider owns on the users it manages: the console may not overwrite them.
PROVIDER_OWNED_FIELDS = frozenset({"username", "email", "first_name", "last_name", "org", "groups"})
USER_FIELDS = ("username", "email", "first_name", "last_name")
_username_validator = UnicodeUsernameValidator()
_email_validator = EmailValidator()
MembershipThrough = User.groups.through


def apply_identity_change(*, change: IdentityChange, actor: Actor) -> ChangeResult:
    """Apply one change; raise its ``IdentityError`` if refused."""
    result = apply_identity_changes(changes=[change], actor=actor).results[0]
    if result.error is not None:
        raise result.error
    return result


def apply_identity_changes(
    *,
    changes: Iterable[IdentityChange],
    actor: Actor,
    batch_size: int | None = None,
    dry_run: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> BulkResult:
    """Apply many changes; per-item results in input order. ``dry_run`` plans without writing."""
    batch_size = batch_size or getattr(settings, "IDM_BULK_BATCH_SIZE", 2000)
    orgs = OrgIndex()
    roles = _RoleIndex()
    results: list[ChangeResult] = []
    batch: list[IdentityChange] = []
    done = 0
    for change in changes:
        batch.append(change)
        if len(batch) >= batch_size:
            results.extend(_apply_batch(batch, actor, orgs, roles, dry_run))
            done += len(batch)
            batch = []
            if on_progress:
                on_progress(done)
    if batch:
        results.extend(_apply_batch(batch, actor, orgs, roles, dry_run))
        done += len(batch)
        if on_progress:
            on_progress(done)
    return BulkResult(results)


# --------------------------------------------------------------------------------------------
# Lookups loaded once per run or per batch


class _RoleIndex:
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
class _Current:
    """Current state of one existing user as loaded for the batch."""

    user: User
    profile: UserProfile | None
    role_slugs: set[str]
    group_ids: set[int]
    links: dict[tuple[str, str], ExternalIdentity]


class _Batch:
    """Everything a batch needs, loaded in bulk, plus the in-batch claims that keep rows consistent."""

    def __init__(self, changes: Sequence[IdentityChange], actor: Actor, orgs: OrgIndex, roles: _RoleIndex,
                 dry_run: bool = False):
        self.actor = actor
        self.dry_run = dry_run
        self.orgs = orgs
        self.roles = roles
        self.now = timezone.now()
        self.access = Access.of(actor.user) if actor.user is not None and actor.enforce_scope else None
        self.powers = privilege.powers_of_actor(actor)  # for the privilege rule (issue 7 §1)

        ids = {c.user_id for c in changes if c.user_id}
        names = {c.username.lower() for c in changes if isinstance(c.username, str)}
        links = {c.match_link for c in changes if c.match_link} | {c.link for c in changes if c.link}

        self.link_owner: dict[tuple[str, str, str], int] = {}
        link_q = Q()
        by_source: dict[tuple[str, str], list[str]] = defaultdict(list)
        for link in links:
            by_source[(link.source, link.provider)].append(link.external_id)
        for (source, provider), ext_ids in by_source.items():
            link_q |= Q(source=source, provider=provider, external_id__in=ext_ids)
        if by_source:
            for row in ExternalIdentity.objects.filter(link_q).values("source", "provider", "external_id", "user_id"):
                self.link_owner[(row["source"], row["provider"], row["external_id"])] = row["user_id"]
                ids.add(row["user_id"])

        users = self._load_users(ids, names)
        self.by_id: dict[int, _Current] = {}
        self.by_username: dict[str, int] = {}
        user_ids = [u.pk for u in users]
        memberships: dict[int, set[int]] = defaultdict(set)
        for chunk in _chunks(user_ids, 5000):
            for uid, gid in MembershipThrough.objects.filter(user_id__in=chunk).values_list("user_id", "group_id"):
                memberships[uid].add(gid)
        user_links: dict[int, dict[tuple[str, str], ExternalIdentity]] = defaultdict(dict)
        for chunk in _chunks(user_ids, 5000):
            for ext in ExternalIdentity.objects.filter(user_id__in=chunk):
                user_links[ext.user_id][(ext.source, ext.provider)] = ext
        for user in users:
            gids = memberships[user.pk]
            self.by_id[user.pk] = _Current(
                user=user,
                profile=getattr(user, "profile", None) if _has_profile(user) else None,
                role_slugs={roles.by_group[g].slug for g in gids if g in roles.by_group},
                group_ids={g for g in gids if g not in roles.by_group},
                links=user_links[user.pk],
            )
            self.by_username[user.username.lower()] = user.pk

        group_ids = set()
        for c in changes:
            group_ids |= set(c.groups_add) | set(c.groups_remove)
            if c.groups is not UNSET:
                group_ids |= set(c.groups)
        self.directory_groups: dict[int, DirectoryGroup] = {
            dg.group_id: dg for dg in DirectoryGroup.objects.filter(group_id__in=group_ids)
        }

        cca = roles.by_slug.get(CUSTOMER_CLOUD_ADMIN)
        self.active_admins: set[int] = set()
        if cca is not None:
            self.active_admins = set(
                User.objects.filter(groups=cca.group_id, is_active=True, profile__state=UserState.ACTIVE)
                .values_list("pk", flat=True)
            )
        # In-batch claims so two rows can't take the same username or external id.
        self.claimed_usernames: dict[str, Any] = {}
        self.claimed_links: dict[tuple[str, str, str], Any] = {}

    @staticmethod
    def _load_users(ids: set[int], names: set[str]) -> list[User]:
        found: dict[int, User] = {}
        for chunk in _chunks(list(ids), 5000):
            for user in User.objects.select_related("profile").filter(pk__in=chunk):
                found[user.pk] = user
        for chunk in _chunks(list(names), 5000):
            qs = User.objects.select_related("profile").annotate(_lu=Lower("username")).filter(_lu__in=chunk)
            for user in qs:
                found[user.pk] = user
        return list(found.values())


def _has_profile(user: User) -> bool:
    try:
        user.profile  # noqa: B018
    except UserProfile.DoesNotExist:
        return False
    return True


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --------------------------------------------------------------------------------------------
# Planning one change


@dataclass
class _Plan:
    """The writes one accepted change needs."""

    change: IdentityChange
    status: str
    user: User
    profile: UserProfile
    user_fields: set[str] = field(default_factory=set)
    profile_fields: set[str] = field(default_factory=set)
    add_groups: set[int] = field(default_factory=set)
    remove_groups: set[int] = field(default_factory=set)
    new_links: list[ExternalIdentity] = field(default_factory=list)
    updated_links: list[ExternalIdentity] = field(default_factory=list)
    password_changed: bool = False
    events: list[AuditEvent] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _match(change: IdentityChange, batch: _Batch) -> _Current | None:
    if change.user_id:
        current = batch.by_id.get(change.user_id)
        if current is None:
            raise NotFound("user_not_found", "This user does not exist.")
        return current
    if change.match_link is not None:
        link = change.match_link
        owner = batch.link_owner.get((link.source, link.provider, link.external_id))
        if owner is not None:
            return batch.by_id[owner]
    if isinstance(change.username, str):
        uid = batch.by_username.get(change.username.lower())
        if uid is not None:
            return batch.by_id[uid]
    return None


def _validate_username(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationFailed("username_required", "Enter a username.", field="username")
    if value != value.strip():
        raise ValidationFailed("username_spaces", "Remove leading or trailing spaces from the username.",
                               field="username")
    if len(value) > 150:
        raise ValidationFailed("username_too_long", "Usernames are at most 150 characters.", field="username")
    try:
        _username_validator(value)
    except ValidationError as exc:
        raise ValidationFailed(
            "username_invalid", "Usernames may contain only letters, digits and @ . + - _", field="username"
        ) from exc
    return value


def _validate_email(value: Any) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str):
        raise ValidationFailed("email_invalid", "Enter a valid email address.", field="email")
    if value != value.strip():
        raise ValidationFailed("email_spaces", "Remove leading or trailing spaces from the email.", field="email")
    if len(value) > 254:  # Django's validator allows 320; auth.User.email holds 254 (PostgreSQL refuses more)
        raise ValidationFailed("email_too_long", "Email addresses are at most 254 characters.", field="email")
    try:
        _email_validator(value)
    except ValidationError as exc:
        raise ValidationFailed("email_invalid", f"{value!r} is not a valid email address.", field="email") from exc
    return BaseUserManager.normalize_email(value)


def _validate_name(value: Any, field_name: str) -> str:
    value = "" if value is None else value
    if not isinstance(value, str):
        raise ValidationFailed("invalid", "Enter text.", field=field_name)
    if value != value.strip():
        raise ValidationFailed("spaces", "Remove leading or trailing spaces.", field=field_name)
    if len(value) > 150:
        raise ValidationFailed("too_long", "At most 150 characters.", field=field_name)
    return value


def _unusable_password() -> str:
    """Same as ``make_password(None)`` but ~20x faster (one token instead of 40 ``secrets.choice`` calls)."""
    return UNUSABLE_PASSWORD_PREFIX + secrets.token_urlsafe(30)


def _check_password(raw: str, user: User) -> str:
    try:
        password_validation.validate_password(raw, user)
    except ValidationError as exc:
        raise ValidationFailed("password_invalid", " ".join(exc.messages), field="password") from exc
    return make_password(raw)


def _check_source_may_change(current: _Current, change: IdentityChange, actor: Actor, touched: set[str]) -> None:
    """Ownership: providers change only their own users; other sources leave provider-owned fields alone."""
    profile = current.profile
    owner, owner_provider = (profile.source, profile.source_provider) if profile else (Source.LOCAL, "")
    if actor.source in PROVIDER_SOURCES:
        if owner != actor.source or owner_provider != actor.provider:
            raise PolicyDenied(
                "not_owner",
                f"{current.user.username} is managed by {_owner_label(owner, owner_provider)}; "
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
                f"{current.user.username} is managed by {_owner_label(owner, owner_provider)}; "
                f"change it there, not in an upload.",
            )
        blocked = touched & PROVIDER_OWNED_FIELDS
        if blocked:
            raise PolicyDenied(
                "managed_by_provider",
                f"{', '.join(sorted(blocked))} of {current.user.username} "
                f"{'is' if len(blocked) == 1 else 'are'} managed by {_owner_label(owner, owner_provider)}.",
                field=sorted(blocked)[0],
            )


def _owner_label(source: str, provider: str) -> str:
    label = Source(source).label if source in Source.values else source
    return f"{label} ({provider})" if provider else label


def _touched(change: IdentityChange) -> set[str]:
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
    return touched


def _scope_check(batch: _Batch, perm: str, org_id: int, what: str) -> None:
    if batch.access is None:
        return
    org = batch.orgs.get(org_id)
    if org is None or not batch.access.can(perm, org):
        raise PolicyDenied("out_of_scope", f"You may not {what} in {org.name if org else 'this organization'}.")


def _plan_change(change: IdentityChange, batch: _Batch) -> _Plan:
    current = _match(change, batch)
    touched = _touched(change)
    if current is None:
        if change.mode == Mode.UPDATE or change.user_id:
            raise NotFound("user_not_found", "No such user.", field="username")
        return _plan_create(change, batch, touched)
    if change.mode == Mode.CREATE:
        raise ConflictError("username_taken", f"A user named {current.user.username!r} already exists.",
                            field="username")
    return _plan_update(change, batch, current, touched)


def _resolve_roles(slugs: Iterable[str], batch: _Batch) -> set[str]:
    return {batch.roles.resolve(s).slug for s in slugs}


def _check_roles_assignable(slugs: set[str], batch: _Batch, org_id: int) -> None:
    if batch.access is None or not slugs:
        return
    _scope_check(batch, "assign_roles", org_id, "assign roles")
    for slug in slugs:
        if not batch.access.can_assign_role(batch.roles.by_slug[slug]):
            raise PolicyDenied("role_not_assignable", f"You may not assign the role {batch.roles.by_slug[slug].name}.",
                               field="roles")


def _check_groups(group_ids: Iterable[int], batch: _Batch) -> set[int]:
    ids = set(group_ids)
    unknown = ids - set(batch.directory_groups)
    if unknown:
        raise NotFound("unknown_group", f"No directory group with id {sorted(unknown)[0]}.", field="groups")
    return ids


def _claim_username(name: str, batch: _Batch, ref: Any, own_id: int | None) -> None:
    lowered = name.lower()
    existing = batch.by_username.get(lowered)
    if existing is not None and existing != own_id:
        raise ConflictError("username_taken", f"The username {name!r} is taken (usernames ignore case).",
                            field="username")
    if lowered in batch.claimed_usernames and batch.claimed_usernames[lowered] is not ref:
        raise ConflictError("username_duplicate_in_batch", f"The username {name!r} appears more than once.",
                            field="username")


def _claim_link(link: ExternalLink, batch: _Batch, own_id: int | None) -> None:
    key = (link.source, link.provider, link.external_id)
    owner = batch.link_owner.get(key)
    if owner is not None and owner != own_id:
        raise ConflictError("external_id_taken", f"The external id {link.external_id!r} is linked to another user.",
                            field="external_id")
    if key in batch.claimed_links and batch.claimed_links[key] != own_id:
        raise ConflictError("external_id_duplicate_in_batch", f"The external id {link.external_id!r} appears twice.",
                            field="external_id")


def _state_fields(state: str, user: User, profile: UserProfile, now) -> None:
    profile.state = state
    user.is_active = state in (UserState.ACTIVE, UserState.INVITED)
    if state == UserState.BLOCKED:
        profile.blocked_at = now
    elif state == UserState.DEACTIVATED:
        profile.deactivated_at = now
    else:
        profile.blocked_at = None
        profile.deactivated_at = None


def _event(batch: _Batch, action: str, user: User, field_name: str = "", old: Any = None, new: Any = None,
           message: str = "") -> AuditEvent | None:
    if batch.dry_run:
        return None  # previews build no audit objects (they dominate the cost of a 100k-row dry run)
    return build_event(actor=batch.actor, action=action, target_type="user", target_id="",
                       target_label=user.username, field=field_name, old=old, new=new, message=message)


_INIT_PLANS: dict[type, list[tuple[str, Any, Callable[[], Any] | None]]] = {}


def _new(model: type, **values: Any) -> Any:
    """``model(**values)`` through Django's positional fast path: a third of the cost, which
    matters when a 100k-row import builds 200k unsaved instances."""
    plan = _INIT_PLANS.get(model)
    if plan is None:
        plan = _INIT_PLANS[model] = []
        for f in model._meta.concrete_fields:
            factory = f.default if f.has_default() and callable(f.default) else None
            plan.append((f.attname, None if factory else f.get_default(), factory))
    return model(*[
        values[attname] if attname in values else (factory() if factory is not None else default)
        for attname, default, factory in plan
    ])


def _plan_create(change: IdentityChange, batch: _Batch, touched: set[str]) -> _Plan:
    actor = batch.actor
    username = _validate_username(change.username)
    _claim_username(username, batch, change, None)
    if change.org_id is UNSET or change.org_id is None:
        raise ValidationFailed("org_required", "Choose an organization.", field="org")
    org = batch.orgs.get(change.org_id)
    if org is None:
        raise NotFound("org_not_found", "The organization does not exist.", field="org")
    if not org.is_active:
        raise ValidationFailed("org_inactive", f"{org.name} is deactivated.", field="org")
    _scope_check(batch, "manage_users", org.pk, "create users")

    user = _new(
        User,
        username=username,
        email=_validate_email(change.email) if change.email is not UNSET else "",
        first_name=_validate_name(change.first_name, "first_name") if change.first_name is not UNSET else "",
        last_name=_validate_name(change.last_name, "last_name") if change.last_name is not UNSET else "",
    )
    if change.password_hash is not UNSET and change.password_hash:
        user.password = change.password_hash
    elif change.password is not UNSET and change.password:
        user.password = _check_password(change.password, user)
    else:
        user.password = _unusable_password()
    has_password = user.has_usable_password()

    source = actor.source if actor.source in (*PROVIDER_SOURCES, Source.SAML) else Source.LOCAL
    if change.state is not UNSET:
        state = UserState(change.state)
    elif not has_password and source == Source.LOCAL:
        state = UserState.INVITED  # a local user with no password must be invited to set one
    else:
        state = UserState.ACTIVE
    profile = _new(
        UserProfile,
        org_id=org.pk,
        notes=change.notes if change.notes is not UNSET and change.notes else "",
        source=source,
        source_provider=actor.provider if source in PROVIDER_SOURCES else "",
    )
    _state_fields(state, user, profile, batch.now)
    if state not in (UserState.BLOCKED,):
        profile.blocked_at = None

    if change.roles is not UNSET:
        roles = _resolve_roles(change.roles, batch) | _resolve_roles(change.roles_add, batch)
    else:
        roles = _resolve_roles(change.roles_add, batch)
    roles -= _resolve_roles(change.roles_remove, batch)
    warnings = []
    if not roles:
        roles = set(batch.orgs.default_role_slugs(org.pk))
    else:
        _check_roles_assignable(roles, batch, org.pk)
    privilege.check_privilege(actor=batch.powers, target=None, grants_roles=roles)

    groups: set[int] = set()
    if change.groups is not UNSET:
        groups |= _check_groups(change.groups, batch)
    groups |= _check_groups(change.groups_add, batch)
    groups -= set(change.groups_remove)

    plan = _Plan(change=change, status="created", user=user, profile=profile, warnings=warnings)
    plan.add_groups = {batch.roles.by_slug[s].group_id for s in roles} | groups
    if change.link is not None:
        _claim_link(change.link, batch, None)
        plan.new_links.append(ExternalIdentity(
            source=change.link.source, provider=change.link.provider, external_id=change.link.external_id,
            raw=change.link.raw or {}, last_seen_at=batch.now,
        ))
        batch.claimed_links[(change.link.source, change.link.provider, change.link.external_id)] = None
    plan.password_changed = has_password
    batch.claimed_usernames[username.lower()] = change
    plan.events.append(_event(batch, "user.created", user, new={
        "username": user.username, "email": user.email, "first_name": user.first_name,
        "last_name": user.last_name, "org": org.name, "state": state.value,
        "roles": sorted(batch.roles.by_slug[s].name for s in roles),
        "groups": sorted(batch.directory_groups[g].display_name for g in groups),
        "source": source,
    }))
    if change.link is not None:
        plan.events.append(_event(batch, "user.linked", user, "external_id", None,
                                  f"{change.link.source}:{change.link.provider}:{change.link.external_id}"))
    if change.django_admin is not UNSET and change.django_admin:
        _check_django_admin_actor(actor)
        user.is_staff = user.is_superuser = True
        plan.events.append(_event(batch, "user.django_admin_granted", user, "django_admin", False, True))
    plan.changed = ["created"]
    return plan


def _plan_update(change: IdentityChange, batch: _Batch, current: _Current, touched: set[str]) -> _Plan:
    actor = batch.actor
    if current.profile is None:
        raise ValidationFailed("no_profile", f"{current.user.username} has no directory profile.")
    # Plan on copies: a change refused half-way must leave the batch's view of the user untouched.
    user, profile = copy.copy(current.user), copy.copy(current.profile)
    if actor.source in PROVIDER_SOURCES or actor.source == Source.SAML:
        _check_source_may_change(current, change, actor, touched)
    plan = _Plan(change=change, status="updated", user=user, profile=profile)
    is_self = actor.user is not None and actor.user.pk == user.pk

    # Scope: profile edits need modify_user_profile or manage_users; the rest manage_users.
    if batch.access is not None:
        org = batch.orgs.get(profile.org_id)
        field_only = touched <= {"email", "first_name", "last_name", "notes"}
        perm_ok = batch.access.can("manage_users", org) or (
            field_only and batch.access.can("modify_user_profile", org)
        ) or (touched <= {"password"} and batch.access.can("reset_passwords", org))  # Help Desk resets
        if touched - {"roles"} and not perm_ok and not (is_self and touched <= {"password"}):
            raise PolicyDenied("out_of_scope", f"You may not change users in {org.name}.")

    # Plain user fields.
    for name in USER_FIELDS:
        value = getattr(change, name)
        if value is UNSET:
            continue
        if name == "username":
            value = _validate_username(value)
            if value != user.username:
                _claim_username(value, batch, change, user.pk)
                batch.claimed_usernames[value.lower()] = change
        elif name == "email":
            value = _validate_email(value)
        else:
            value = _validate_name(value, name)
        if value != getattr(user, name):
            plan.events.append(_event(batch, "user.updated", user, name, getattr(user, name), value))
            setattr(user, name, value)
            plan.user_fields.add(name)
            plan.changed.append(name)

    if change.notes is not UNSET and (change.notes or "") != profile.notes:
        plan.events.append(_event(batch, "user.updated", user, "notes", profile.notes, change.notes or ""))
        profile.notes = change.notes or ""
        plan.profile_fields.add("notes")
        plan.changed.append("notes")

    if change.password_hash is not UNSET or change.password is not UNSET:
        new_hash = change.password_hash if change.password_hash is not UNSET else (
            _check_password(change.password, user) if change.password else _unusable_password()
        )
        user.password = new_hash
        plan.user_fields.add("password")
        plan.password_changed = bool(change.password or change.password_hash)
        plan.events.append(_event(batch, "user.password_changed", user, "password", None, "(changed)"))
        plan.changed.append("password")
        if profile.state == UserState.INVITED and user.has_usable_password() and change.state is UNSET:
            _state_fields(UserState.ACTIVE, user, profile, batch.now)
            plan.user_fields.add("is_active")
            plan.profile_fields |= {"state", "blocked_at", "deactivated_at"}
            plan.events.append(_event(batch, "user.activated", user, "state", UserState.INVITED, UserState.ACTIVE))

    if change.django_admin is not UNSET and bool(change.django_admin) != user.is_superuser:
        _check_django_admin_actor(actor)
        plan.events.append(_event(batch, "user.django_admin_granted" if change.django_admin else
                                  "user.django_admin_revoked", user, "django_admin", user.is_superuser,
                                  bool(change.django_admin)))
        user.is_staff = user.is_superuser = bool(change.django_admin)
        plan.user_fields |= {"is_staff", "is_superuser"}
        plan.changed.append("django_admin")

    # Lifecycle state.
    if change.state is not UNSET and change.state != profile.state:
        new_state = UserState(change.state)
        old_state = profile.state
        if is_self and new_state in (UserState.BLOCKED, UserState.DEACTIVATED):
            raise PolicyDenied("self_lockout", "You cannot block or deactivate your own account.", field="state")
        if new_state in (UserState.BLOCKED, UserState.DEACTIVATED) and user.pk in batch.active_admins:
            _guard_last_admin(batch, user)
        _state_fields(new_state, user, profile, batch.now)
        plan.user_fields.add("is_active")
        plan.profile_fields |= {"state", "blocked_at", "deactivated_at"}
        action = {
            UserState.BLOCKED: "user.blocked",
            UserState.DEACTIVATED: "user.deactivated",
            UserState.ACTIVE: "user.unblocked" if old_state == UserState.BLOCKED else "user.reactivated",
            UserState.INVITED: "user.invited",
        }[new_state]
        plan.events.append(_event(batch, action, user, "state", old_state, new_state.value))
        plan.changed.append("state")
        if new_state == UserState.ACTIVE and CUSTOMER_CLOUD_ADMIN in current.role_slugs:
            batch.active_admins.add(user.pk)

    # Organization.
    if change.org_id is not UNSET and change.org_id != profile.org_id:
        new_org = batch.orgs.get(change.org_id)
        if new_org is None:
            raise NotFound("org_not_found", "The organization does not exist.", field="org")
        if not new_org.is_active:
            raise ValidationFailed("org_inactive", f"{new_org.name} is deactivated.", field="org")
        _scope_check(batch, "manage_users", new_org.pk, "move users")
        old_org = batch.orgs.get(profile.org_id)
        plan.events.append(_event(batch, "user.moved", user, "org", old_org.name if old_org else None, new_org.name))
        profile.org_id = new_org.pk
        plan.profile_fields.add("org")
        plan.changed.append("org")

    # Roles.
    if change.roles is not UNSET or change.roles_add or change.roles_remove:
        target = _resolve_roles(change.roles, batch) if change.roles is not UNSET else set(current.role_slugs)
        target |= _resolve_roles(change.roles_add, batch)
        target -= _resolve_roles(change.roles_remove, batch)
        if change.roles is not UNSET and not target:
            target = set(batch.orgs.default_role_slugs(profile.org_id))
            plan.warnings.append("no roles given: the organization's default roles apply")
        added, removed = target - current.role_slugs, current.role_slugs - target
        if added or removed:
            if is_self and actor.source in (Source.LOCAL, Source.BULK):
                raise PolicyDenied("self_role_change", "You cannot change your own roles.", field="roles")
            _check_roles_assignable(added | removed, batch, profile.org_id)
            if CUSTOMER_CLOUD_ADMIN in removed and user.pk in batch.active_admins:
                _guard_last_admin(batch, user)
            for slug in sorted(added):
                plan.add_groups.add(batch.roles.by_slug[slug].group_id)
                plan.events.append(_event(batch, "user.role_added", user, "roles", None, batch.roles.by_slug[slug].name))
            for slug in sorted(removed):
                plan.remove_groups.add(batch.roles.by_slug[slug].group_id)
                plan.events.append(_event(batch, "user.role_removed", user, "roles", batch.roles.by_slug[slug].name, None))
            plan.changed.append("roles")
            if CUSTOMER_CLOUD_ADMIN in added and profile.state == UserState.ACTIVE:
                batch.active_admins.add(user.pk)

    # Directory groups.
    if change.groups is not UNSET or change.groups_add or change.groups_remove:
        target_g = _check_groups(change.groups, batch) if change.groups is not UNSET else set(current.group_ids)
        target_g |= _check_groups(change.groups_add, batch)
        target_g -= set(change.groups_remove)
        added_g, removed_g = target_g - current.group_ids, current.group_ids - target_g
        for gid in sorted(added_g):
            plan.add_groups.add(gid)
            plan.events.append(_event(batch, "user.group_added", user, "groups", None,
                                      batch.directory_groups[gid].display_name))
        for gid in sorted(removed_g):
            plan.remove_groups.add(gid)
            name = batch.directory_groups[gid].display_name if gid in batch.directory_groups else str(gid)
            plan.events.append(_event(batch, "user.group_removed", user, "groups", name, None))
        if added_g or removed_g:
            plan.changed.append("groups")

    # External identity link.
    if change.link is not None:
        link = change.link
        _claim_link(link, batch, user.pk)
        key = (link.source, link.provider)
        existing = current.links.get(key)
        value = f"{link.source}:{link.provider}:{link.external_id}"
        if existing is None:
            plan.new_links.append(ExternalIdentity(
                user=user, source=link.source, provider=link.provider, external_id=link.external_id,
                raw=link.raw or {}, last_seen_at=batch.now,
            ))
            plan.events.append(_event(batch, "user.linked", user, "external_id", None, value))
            plan.changed.append("link")
        elif existing.external_id != link.external_id:
            old = f"{existing.source}:{existing.provider}:{existing.external_id}"
            existing.external_id = link.external_id
            existing.raw = link.raw or existing.raw
            existing.last_seen_at = batch.now
            plan.updated_links.append(existing)
            plan.events.append(_event(batch, "user.linked", user, "external_id", old, value))
            plan.changed.append("link")
        batch.claimed_links[(link.source, link.provider, link.external_id)] = user.pk

    if not plan.changed:
        plan.status = "unchanged"
        return plan
    if not is_self:  # no one takes over a more privileged account (issue 7 §1)
        privilege.check_planned_update(
            actor=batch.powers, changed=plan.changed, target_label=current.user.username,
            superuser=current.user.is_superuser,
            target_roles=privilege.role_tuples(batch.roles.by_slug[s] for s in current.role_slugs),
            org_path=_org_path(batch, current.profile.org_id), new_org_path=_org_path(batch, profile.org_id),
            added_roles={batch.roles.by_group[g].slug for g in plan.add_groups if g in batch.roles.by_group},
            via_sign_in=actor.source == Source.SAML)
    if actor.source not in PROVIDER_SOURCES and actor.source != Source.SAML:
        # Console and uploads: judged on what really changes, so re-uploading an export that
        # includes provider-owned users leaves them "unchanged" instead of refusing them.
        _check_source_may_change(current, change, actor, set(plan.changed))
    current.user, current.profile = user, profile
    current.role_slugs = (current.role_slugs | {batch.roles.by_group[g].slug for g in plan.add_groups
                                                 if g in batch.roles.by_group}) - {
        batch.roles.by_group[g].slug for g in plan.remove_groups if g in batch.roles.by_group}
    current.group_ids = (current.group_ids | {g for g in plan.add_groups if g not in batch.roles.by_group}) - {
        g for g in plan.remove_groups if g not in batch.roles.by_group}
    return plan


def _org_path(batch: _Batch, org_id: int | None) -> str | None:
    org = batch.orgs.get(org_id) if org_id else None
    return org.path if org is not None else None


def _check_django_admin_actor(actor: Actor) -> None:
    if actor.type != "system":
        raise PolicyDenied("django_admin_system_only",
                           "Django admin access is granted only by setup commands (create_first_admin).",
                           field="django_admin")


def _guard_last_admin(batch: _Batch, user: User) -> None:
    """Refuse when ``user`` is the last active Customer Cloud Admin."""
    if batch.active_admins - {user.pk}:
        batch.active_admins.discard(user.pk)
        return
    raise PolicyDenied(
        "last_admin",
        f"{user.username} is the last active Customer Cloud Admin; give the role to someone else first.",
    )


# --------------------------------------------------------------------------------------------
# Writing a batch


def _apply_batch(
    changes: list[IdentityChange], actor: Actor, orgs: OrgIndex, roles: _RoleIndex, dry_run: bool
) -> list[ChangeResult]:
    try:
        return _apply_batch_once(changes, actor, orgs, roles, dry_run)
    except IntegrityError:
        if len(changes) == 1:
            return [_refused(changes[0], ConflictError(
                "conflict", "Another change to the same user or username happened at the same time; retry."))]
        logger.warning("bulk batch hit a concurrent write; retrying %d changes one by one", len(changes))
        out: list[ChangeResult] = []
        for change in changes:
            out.extend(_apply_batch([change], actor, orgs, roles, dry_run))
        return out


def _refused(change: IdentityChange, error: IdentityError) -> ChangeResult:
    return ChangeResult(ref=change.ref, status="refused", error=error)


def _apply_batch_once(
    changes: list[IdentityChange], actor: Actor, orgs: OrgIndex, roles: _RoleIndex, dry_run: bool
) -> list[ChangeResult]:
    with transaction.atomic():
        batch = _Batch(changes, actor, orgs, roles, dry_run)
        if batch.active_admins and not dry_run:
            # Serialise admin-removing writers so two sessions can't each remove "another" admin.
            list(User.objects.select_for_update().filter(pk__in=batch.active_admins).values_list("pk"))
        plans: list[_Plan | None] = []
        results: list[ChangeResult] = []
        for change in changes:
            try:
                plan = _plan_change(change, batch)
            except IdentityError as error:
                plans.append(None)
                results.append(_refused(change, error))
                continue
            plans.append(plan)
            results.append(ChangeResult(ref=change.ref, status=plan.status, user=plan.user,
                                        changed_fields=plan.changed, warnings=plan.warnings))
        if not dry_run:
            _write(batch, [p for p in plans if p is not None])
    return results


def _write(batch: _Batch, plans: list[_Plan]) -> None:
    creates = [p for p in plans if p.status == "created"]
    updates = [p for p in plans if p.status == "updated"]
    if creates:
        User.objects.bulk_create([p.user for p in creates], batch_size=1000)
        if any(p.user.pk is None for p in creates):  # backends without RETURNING
            by_name = dict(User.objects.filter(username__in=[p.user.username for p in creates])
                           .values_list("username", "pk"))
            for p in creates:
                p.user.pk = p.user.id = by_name[p.user.username]
        for p in creates:
            p.profile.user = p.user
        UserProfile.objects.bulk_create([p.profile for p in creates], batch_size=1000)

    # Users: group by the exact set of changed fields so each UPDATE writes only what changed.
    by_fields: dict[tuple[str, ...], list[User]] = defaultdict(list)
    for p in updates:
        if p.user_fields:
            by_fields[tuple(sorted(p.user_fields))].append(p.user)
    for fields, users in by_fields.items():
        User.objects.bulk_update(users, list(fields), batch_size=1000)
    by_pfields: dict[tuple[str, ...], list[UserProfile]] = defaultdict(list)
    for p in updates:
        if p.profile_fields:
            by_pfields[tuple(sorted(p.profile_fields | {"updated_at"}))].append(p.profile)
            p.profile.updated_at = batch.now
    for fields, profiles in by_pfields.items():
        UserProfile.objects.bulk_update(profiles, list(fields), batch_size=1000)

    memberships = [MembershipThrough(user_id=p.user.pk, group_id=g) for p in plans for g in p.add_groups]
    if memberships:
        MembershipThrough.objects.bulk_create(memberships, batch_size=2000, ignore_conflicts=True)
    removals: dict[int, list[int]] = defaultdict(list)
    for p in updates:
        for g in p.remove_groups:
            removals[g].append(p.user.pk)
    for gid, uids in removals.items():
        for chunk in _chunks(uids, 5000):
            MembershipThrough.objects.filter(group_id=gid, user_id__in=chunk).delete()

    links = []
    for p in plans:
        for link in p.new_links:
            link.user = p.user
            links.append(link)
    if links:
        ExternalIdentity.objects.bulk_create(links, batch_size=2000)
    updated_links = [link for p in updates for link in p.updated_links]
    if updated_links:
        ExternalIdentity.objects.bulk_update(updated_links, ["external_id", "raw", "last_seen_at"])
    history = [PasswordHistory(user_id=p.user.pk, password=p.user.password) for p in plans if p.password_changed]
    if history:
        PasswordHistory.objects.bulk_create(history, batch_size=2000)

    events = []
    for p in plans:
        for event in p.events:
            event.target_id = str(p.user.pk)
            events.append(event)
    save_events(events)
    # Blocked, deactivated, or a password someone else set: end the user's sessions once committed.
    end_sessions_on_commit(actor=batch.actor, changes=[(p.user.pk, p.profile.state, p.changed) for p in updates])
    # Users who lost roles and with them console access: their sessions end too (issue 12).
    lost_roles = [p.user.pk for p in updates if p.remove_groups]
    if lost_roles:
        from accounts.credentials.service import end_sessions_if_console_access_lost

        transaction.on_commit(lambda: end_sessions_if_console_access_lost(actor=batch.actor, user_ids=lost_roles))


# --------------------------------------------------------------------------------------------
# Directory groups (SCIM / LDAP): create, rename, delete. Memberships go through IdentityChange.


def group_create(*, actor: Actor, display_name: str, external_id: str = "") -> DirectoryGroup:
    """Create a directory group owned by the actor's source."""
    display_name = (display_name or "").strip()
    if not display_name:
        raise ValidationFailed("group_name_required", "Give the group a display name.", field="displayName")
    with transaction.atomic():
        if external_id and DirectoryGroup.objects.filter(
            source=actor.source, provider=actor.provider, external_id=external_id
        ).exists():
            raise ConflictError("group_exists", f"A group with external id {external_id!r} exists.",
                                field="externalId")
        group = Group.objects.create(name=f"dir:{actor.source}:{actor.provider}:{_unique_suffix(display_name)}")
        dgroup = DirectoryGroup.objects.create(group=group, display_name=display_name, source=actor.source,
                                               provider=actor.provider, external_id=external_id)
        save_events([build_event(actor=actor, action="group.created", target_type="group", target_id=dgroup.pk,
                                 target_label=display_name, new={"display_name": display_name,
                                                                  "external_id": external_id})])
    return dgroup


def _unique_suffix(name: str) -> str:
    import uuid

    return f"{name[:100]}:{uuid.uuid4().hex[:8]}"


def _check_group_owner(actor: Actor, dgroup: DirectoryGroup) -> None:
    if actor.source in PROVIDER_SOURCES and (dgroup.source, dgroup.provider) != (actor.source, actor.provider):
        raise PolicyDenied("not_owner", "This group belongs to another provider.")


def group_update(*, actor: Actor, dgroup: DirectoryGroup, display_name: Any = UNSET,
                 external_id: Any = UNSET) -> list[str]:
    """Rename a directory group or change its external id."""
    _check_group_owner(actor, dgroup)
    changed = []
    events = []
    with transaction.atomic():
        for name, value in (("display_name", display_name), ("external_id", external_id)):
            if value is UNSET or value == getattr(dgroup, name):
                continue
            if name == "display_name" and not (value or "").strip():
                raise ValidationFailed("group_name_required", "Give the group a display name.", field="displayName")
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
    _check_group_owner(actor, dgroup)
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
