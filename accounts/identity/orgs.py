"""Organization writes (create, rename, move, settings, deactivate, delete) with their audit records,
and the effective (inherited) settings and name lookup that SCIM and LDAP mapping use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Concat, Lower, Substr
from django.dispatch import Signal
from django.utils import timezone

from accounts.access import Access
from accounts.exceptions import ConflictError, NotFound, PolicyDenied, ValidationFailed
from accounts.identity.audit import record_event
from accounts.identity.locks import admin_lock
from accounts.identity.policy import last_admin_sso_denied
from accounts.identity.types import UNSET, Actor, AuthMethod, UserState
from accounts.models import Organization, Role

ORG_NAME_MIN, ORG_NAME_MAX = 3, 220


# Sent (inside the writing transaction) when the default roles new users of an org's subtree receive may
# have changed: its default roles, its inheritance flag, or its place in the tree. Receivers re-judge
# what depends on them (``provisioning`` revokes source credentials whose issuer may no longer
# administer a source placing users there). Arguments: ``actor``, ``org``.
default_roles_changed = Signal()


def validate_org_name(name: Any) -> str:
    """Return a valid org name or raise ``ValidationFailed`` (3–220 characters, no edge spaces)."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationFailed("org_name_required", "Enter an organization name.", field="name")
    if name != name.strip():
        raise ValidationFailed("org_name_spaces", "Remove leading or trailing spaces from the name.", field="name")
    if not ORG_NAME_MIN <= len(name) <= ORG_NAME_MAX:
        raise ValidationFailed(
            "org_name_length", f"Organization names are {ORG_NAME_MIN} to {ORG_NAME_MAX} characters long.",
            field="name",
        )
    if "/" in name:
        raise ValidationFailed("org_name_slash", "Organization names cannot contain '/'.", field="name")
    return name


def _check_scope(actor: Actor, org: Organization | None) -> None:
    if not actor.enforce_scope or actor.user is None:
        return
    access = Access.of(actor.user)
    if org is None:
        ok = access.is_global("manage_orgs")
    else:
        ok = access.can("manage_orgs", org)
    if not ok:
        raise PolicyDenied("out_of_scope", "You may not manage this organization.")


def _sibling_taken(name: str, parent: Organization | None, exclude_id: int | None = None) -> bool:
    qs = Organization.objects.annotate(lname=Lower("name")).filter(lname=name.lower(), parent=parent)
    if exclude_id:
        qs = qs.exclude(pk=exclude_id)
    return qs.exists()


def _audit(actor: Actor, action: str, org: Organization, field: str = "", old: Any = None, new: Any = None) -> None:
    record_event(actor=actor, action=action, target_type="org", target_id=org.pk, target_label=org.name,
                 field=field, old=old, new=new)


def create_root_org(*, name: str) -> Organization:
    """Create a top-level organization (used by the seeder)."""
    org = Organization.objects.create(name=validate_org_name(name), inherit_default_roles=False)
    org.path = f"/{org.pk}/"
    org.save(update_fields=["path"])
    return org


@transaction.atomic
def org_create(*, actor: Actor, name: str, parent: Organization, external_ref: str = "", notes: str = "") -> Organization:
    """Create a child organization under ``parent``."""
    name = validate_org_name(name)
    _check_scope(actor, parent)
    if not parent.is_active:
        raise ValidationFailed("org_inactive", "The parent organization is deactivated.", field="parent")
    if _sibling_taken(name, parent):
        raise ConflictError("org_name_taken", f"{parent.name} already has a sub-organization named {name!r}.",
                            field="name")
    try:
        with transaction.atomic():
            org = Organization.objects.create(
                name=name, parent=parent, external_ref=external_ref.strip(), notes=notes, depth=parent.depth + 1
            )
    except IntegrityError as exc:  # a concurrent create won the race
        raise ConflictError("org_name_taken", f"An organization named {name!r} already exists here.",
                            field="name") from exc
    org.path = f"{parent.path}{org.pk}/"
    org.save(update_fields=["path"])
    _audit(actor, "org.created", org, new={"name": name, "parent": parent.name})
    return org


@transaction.atomic
def org_update(
    *, actor: Actor, org: Organization, name: Any = UNSET, external_ref: Any = UNSET, notes: Any = UNSET
) -> list[str]:
    """Rename or edit an organization; returns the changed field names."""
    _check_scope(actor, org)
    org = Organization.objects.select_for_update().get(pk=org.pk)
    changed = []
    if name is not UNSET and name != org.name:
        name = validate_org_name(name)
        if _sibling_taken(name, org.parent, exclude_id=org.pk):
            raise ConflictError("org_name_taken", f"An organization named {name!r} already exists here.",
                                field="name")
        _audit(actor, "org.renamed", org, "name", org.name, name)
        org.name = name
        changed.append("name")
    for field, value in (("external_ref", external_ref), ("notes", notes)):
        if value is not UNSET and value != getattr(org, field):
            _audit(actor, "org.updated", org, field, getattr(org, field), value)
            setattr(org, field, value)
            changed.append(field)
    if changed:
        org.save(update_fields=[*changed, "updated_at"])
    return changed


@transaction.atomic
def org_move(*, actor: Actor, org: Organization, new_parent: Organization) -> None:
    """Move ``org`` (with its subtree) under ``new_parent``; refuses cycles."""
    org = Organization.objects.select_for_update().get(pk=org.pk)
    _check_scope(actor, org)
    _check_scope(actor, new_parent)
    if org.parent_id is None:
        raise PolicyDenied("org_root_move", "The top-level organization cannot be moved.")
    if new_parent.path.startswith(org.path):
        raise ValidationFailed("org_cycle", "An organization cannot be moved under itself or its own sub-organization.",
                               field="parent")
    if new_parent.pk == org.parent_id:
        return
    if _sibling_taken(org.name, new_parent, exclude_id=org.pk):
        raise ConflictError("org_name_taken", f"{new_parent.name} already has a sub-organization named {org.name!r}.",
                            field="parent")
    old_parent = org.parent
    password_admins_before = locked_password_sign_in_admins()  # (the admin lock: read sign-in after it)
    sign_in_before = effective_providers(under=org.path)
    old_path, new_path = org.path, f"{new_parent.path}{org.pk}/"
    depth_delta = new_parent.depth + 1 - org.depth
    # Rewrite the path prefix of the whole subtree in one statement.
    Organization.objects.filter(path__startswith=old_path).update(
        path=Concat(Value(new_path), Substr("path", len(old_path) + 1)),
        depth=F("depth") + depth_delta,
    )
    Organization.objects.filter(pk=org.pk).update(parent=new_parent)
    # Under an SSO parent the subtree may inherit SSO: refuse if that catches the last password admin.
    check_password_admins_kept(password_admins_before, provider=effective_settings(new_parent).auth_provider,
                               field="parent")
    # Under another parent the subtree may inherit another sign-in: a change to its users' credentials.
    check_may_change_sign_in(actor=actor, users=sign_in_changes(sign_in_before, effective_providers(under=new_path)),
                             where=org.name, field="parent")
    _audit(actor, "org.moved", org, "parent", old_parent.name if old_parent else None, new_parent.name)
    org.refresh_from_db(fields=["path", "depth", "parent"])
    default_roles_changed.send(sender=Organization, actor=actor, org=org)  # it may inherit others now


@transaction.atomic
def org_set_active(*, actor: Actor, org: Organization, active: bool) -> None:
    """Deactivate or reactivate an organization (a deactivated org takes no new users)."""
    _check_scope(actor, org)
    if org.parent_id is None and not active:
        raise PolicyDenied("org_root_deactivate", "The top-level organization cannot be deactivated.")
    if not active and Organization.objects.subtree(org).filter(
        profiles__state__in=[UserState.ACTIVE, UserState.INVITED, UserState.BLOCKED]
    ).exists():
        raise PolicyDenied(
            "org_has_active_users",
            "Deactivate or move the users of this organization and its sub-organizations first.",
        )
    if org.is_active == active:
        return
    org.is_active = active
    org.deactivated_at = None if active else timezone.now()
    org.save(update_fields=["is_active", "deactivated_at", "updated_at"])
    _audit(actor, "org.reactivated" if active else "org.deactivated", org, "is_active", not active, active)


@transaction.atomic
def org_delete(*, actor: Actor, org: Organization) -> None:
    """Delete an empty organization: refused while it has users or children."""
    _check_scope(actor, org)
    if org.parent_id is None:
        raise PolicyDenied("org_root_delete", "The top-level organization cannot be deleted.")
    if org.children.exists():
        raise PolicyDenied("org_has_children", "Move or delete the sub-organizations first.")
    if org.profiles.exists():
        raise PolicyDenied("org_has_users", "Move the users of this organization first.")
    _audit(actor, "org.deleted", org, new=None, old={"name": org.name})
    org.delete()


@transaction.atomic
def org_update_settings(
    *,
    actor: Actor,
    org: Organization,
    auth_method: Any = UNSET,
    auth_provider: Any = UNSET,
    two_factor_required: Any = UNSET,
    inherit_default_roles: Any = UNSET,
    default_roles: Any = UNSET,
) -> list[str]:
    """Change inheritable settings. ``None`` for a setting means "inherit from parent".

    Refused (``IdentityError``): nothing is written and ``org`` keeps its values in memory too.
    """
    saved = {name: getattr(org, name) for name in _SETTING_FIELDS}
    try:
        return _update_settings(actor=actor, org=org, auth_method=auth_method, auth_provider=auth_provider,
                                two_factor_required=two_factor_required,
                                inherit_default_roles=inherit_default_roles, default_roles=default_roles)
    except Exception:
        for name, value in saved.items():
            setattr(org, name, value)
        raise


_SETTING_FIELDS = ("auth_method", "auth_provider", "two_factor_required", "inherit_default_roles")


def _update_settings(*, actor: Actor, org: Organization, auth_method: Any, auth_provider: Any,
                     two_factor_required: Any, inherit_default_roles: Any, default_roles: Any) -> list[str]:
    _check_scope(actor, org)
    changed: list[str] = []
    is_root = org.parent_id is None

    def put(field: str, value: Any) -> None:
        if value is UNSET or value == getattr(org, field):
            return
        _audit(actor, "org.settings_changed", org, field, _plain(getattr(org, field)), _plain(value))
        setattr(org, field, value)
        changed.append(field)

    if auth_method is not UNSET and auth_method not in (None, *AuthMethod.values):
        raise ValidationFailed("invalid_auth_method", "Choose Local or Single sign-on.", field="auth_method")
    if is_root and auth_method is None:
        auth_method = AuthMethod.LOCAL
    put("auth_method", auth_method)
    if auth_method == AuthMethod.LOCAL or auth_method is None:
        auth_provider = None
    put("auth_provider", auth_provider)
    if org.auth_method == AuthMethod.SSO and org.auth_provider is None:
        raise ValidationFailed("sso_provider_required", "Choose the identity provider for single sign-on.",
                               field="auth_provider")
    put("two_factor_required", two_factor_required)
    floor = _inherited_floor(actor, org)
    if floor is not None:
        _check_not_weaker(org, floor, auth_changed=bool({"auth_method", "auth_provider"} & set(changed)),
                          tfa_changed="two_factor_required" in changed)
    if {"auth_method", "auth_provider"} & set(changed):
        _check_password_admin_remains(org)  # takes the admin lock: what follows reads after it
        check_may_change_sign_in(
            actor=actor, users=sign_in_changes(effective_providers(under=org.path),
                                               effective_providers(under=org.path, override=org)),
            where=org.name, field="auth_method")
    if is_root and inherit_default_roles is True:
        raise ValidationFailed("root_cannot_inherit", "The top-level organization has no parent to inherit from.",
                               field="inherit_default_roles")
    put("inherit_default_roles", inherit_default_roles)
    if changed:
        org.save(update_fields=[*changed, "updated_at"])
    if default_roles is not UNSET:
        new = set(default_roles)
        old = set(org.default_roles.all())
        if actor.enforce_scope and actor.user is not None:
            # Default roles go to every new user of the org: setting one is granting it.
            access = Access.of(actor.user)
            for role in new - old:
                if not access.can_assign_role(role):
                    raise PolicyDenied("role_not_assignable", f"You may not make {role.name} a default role.",
                                       field="default_roles")
        if new != old:
            org.default_roles.set(new)
            _audit(actor, "org.settings_changed", org, "default_roles",
                   sorted(r.name for r in old), sorted(r.name for r in new))
            changed.append("default_roles")
    if {"default_roles", "inherit_default_roles"} & set(changed):
        default_roles_changed.send(sender=Organization, actor=actor, org=org)
    return changed


def _inherited_floor(actor: Actor, org: Organization) -> EffectiveSettings | None:
    """The settings ``org`` inherits from the nearest ancestor outside the actor's ``manage_orgs`` scope.

    An Org Admin of a sub-org may tighten what such an ancestor set for it, never weaken it (issue 7
    §5): ``None`` when the actor manages every ancestor (or is a system actor) and may change anything.
    """
    if not actor.enforce_scope or actor.user is None or org.parent_id is None:
        return None
    access = Access.of(actor.user)
    for ancestor in reversed(org.ancestors()):  # nearest first
        if not access.can("manage_orgs", ancestor):
            return effective_settings(ancestor)
    return None


def _check_not_weaker(org: Organization, floor: EffectiveSettings, *, auth_changed: bool, tfa_changed: bool) -> None:
    """Refuse a change that leaves ``org`` weaker than ``floor``: two-factor off where it is required,
    or another sign-in than the single sign-on provider required there (local -> SSO tightens)."""
    parent = effective_settings(org.parent) if (org.two_factor_required is None or org.auth_method is None) else None
    if tfa_changed and floor.two_factor_required:
        required = org.two_factor_required if org.two_factor_required is not None else parent.two_factor_required
        if not required:
            source = floor.two_factor_from.name
            raise PolicyDenied(
                "weakens_inherited_policy",
                f"{source} requires two-factor authentication for its sub-organizations. You may not turn it off "
                f"here; an admin who manages {source} can.", field="two_factor_required")
    if auth_changed and floor.auth_method == AuthMethod.SSO:
        if org.auth_method is None:
            method, provider = parent.auth_method, parent.auth_provider
        else:
            method, provider = org.auth_method, org.auth_provider
        if method != AuthMethod.SSO or getattr(provider, "pk", None) != getattr(floor.auth_provider, "pk", None):
            source = floor.auth_from.name
            raise PolicyDenied(
                "weakens_inherited_policy",
                f"{source} requires single sign-on through {floor.auth_provider} for its sub-organizations. You may "
                f"not change the authentication method here; an admin who manages {source} can.",
                field="auth_method")


def password_sign_in_admins(*, override: Organization | None = None) -> set[int]:
    """Ids of active Customer Cloud Admins who can still sign in with a password.

    That is: no profile (``createsuperuser``), an org whose effective method is local, or a break-glass
    user of their org's provider. ``override`` is an org with unsaved auth settings to judge instead.
    """
    from accounts.roles import CUSTOMER_CLOUD_ADMIN

    rows = _auth_rows(override=override)

    def provider_of(org_id: int) -> int | None:
        return _provider_of(rows, org_id)

    IdentityProvider = Organization._meta.get_field("auth_provider").related_model  # noqa: N806 - no sso import
    break_glass = set(IdentityProvider.break_glass_users.through.objects.values_list("identityprovider_id",
                                                                                     "user_id"))
    admins = (User.objects.filter(is_active=True)
              .filter(Q(is_superuser=True) | Q(groups__role__slug=CUSTOMER_CLOUD_ADMIN))
              .values_list("pk", "profile__org_id", "profile__state").distinct())
    keep = set()
    for pk, org_id, state in admins:
        if org_id is None:
            keep.add(pk)
        elif state == UserState.ACTIVE and org_id in rows:
            provider = provider_of(org_id)
            if provider is None or (provider, pk) in break_glass:
                keep.add(pk)
    return keep


def _auth_rows(*, override: Organization | None = None) -> dict[int, tuple[str, str | None, int | None]]:
    """``{org id: (path, auth_method, auth_provider_id)}`` of every org (one query); ``override`` is an
    org with unsaved auth settings to use instead of its stored ones."""
    rows = {pk: (path, method, provider) for pk, path, method, provider in
            Organization.objects.values_list("pk", "path", "auth_method", "auth_provider_id")}
    if override is not None:
        rows[override.pk] = (override.path, override.auth_method, override.auth_provider_id)
    return rows


def _provider_of(rows: dict[int, tuple[str, str | None, int | None]], org_id: int) -> int | None:
    """The id of the provider ``org_id`` signs in with after inheritance (``None``: local)."""
    for pk in reversed([int(p) for p in rows[org_id][0].strip("/").split("/") if p]):
        _, method, provider = rows.get(pk, ("", None, None))
        if method is not None:
            return provider if method == AuthMethod.SSO else None
    return None


def effective_providers(*, under: str = "/", override: Organization | None = None) -> dict[int, int | None]:
    """``{org id: id of the provider it signs in with, or None}`` for the orgs whose path starts with
    ``under`` (all by default), as stored or with ``override``'s unsaved auth settings."""
    rows = _auth_rows(override=override)
    return {pk: _provider_of(rows, pk) for pk, (path, _, _) in rows.items() if path.startswith(under)}


def _break_glass_of(provider_id: int) -> Q:
    through = Organization._meta.get_field("auth_provider").related_model.break_glass_users.through
    return Q(pk__in=through.objects.filter(identityprovider_id=provider_id).values("user_id"))


def users_signing_in_through(provider_id: int):
    """The users an identity provider signs in (``sso.signin``): those of the orgs whose effective
    method is single sign-on through it, except its break-glass users. Active or not."""
    orgs = [pk for pk, provider in effective_providers().items() if provider == provider_id]
    return User.objects.filter(profile__org_id__in=orgs).exclude(_break_glass_of(provider_id))


def sign_in_changes(before: dict[int, int | None], after: dict[int, int | None]):
    """The users whose way of signing in differs between two ``effective_providers`` maps (keyed by
    the same orgs, ids only): those of an org whose provider changes, except a user who signs in with
    a password on both sides (local, or a break-glass user of that side's provider)."""
    pairs: dict[tuple[int | None, int | None], list[int]] = {}
    for org_id, old in before.items():
        new = after.get(org_id)
        if old != new:
            pairs.setdefault((old, new), []).append(org_id)
    changed = Q(pk__in=[])
    for (old, new), org_ids in pairs.items():
        keeps_password = Q()
        for provider_id in (old, new):
            if provider_id is not None:
                keeps_password &= _break_glass_of(provider_id)
        changed |= Q(profile__org_id__in=org_ids) & ~keeps_password
    return User.objects.filter(changed)


def check_may_change_sign_in(*, actor: Actor, users, where: str, field: str = "") -> None:
    """Pointing users at another identity provider (or at a password) changes their credentials: whoever
    controls that provider signs in as them (third review, H1). The privilege rule applies to all of
    ``users`` at once (``privilege.combined_powers``); raise ``target_more_privileged`` otherwise.
    Call with the admin lock held, so a role granted meanwhile is seen."""
    from accounts.identity import privilege

    actor_powers = privilege.powers_of_actor(actor)
    if actor_powers.kind == privilege.SYSTEM:
        return
    try:
        privilege.check_privilege(actor=actor_powers, target=privilege.combined_powers(users),
                                  target_label=f"the users of {where}")
    except PolicyDenied as exc:
        raise PolicyDenied(exc.code, f"{exc.message} This changes how they sign in, which is a change to their "
                           f"credentials.", field=field or None) from exc


def locked_password_sign_in_admins() -> set[int]:
    """``password_sign_in_admins()`` read under the admin lock (``locks``), for a change that may take
    one of them away: a concurrent user block, move or break-glass removal waits for this transaction."""
    admin_lock()
    return password_sign_in_admins()


def _check_password_admin_remains(org: Organization) -> None:
    """Refuse an SSO switch that leaves no Customer Cloud Admin with password sign-in (lockout when the
    IdP fails): a break-glass Cloud Admin must exist first (issue 7 §2/§5)."""
    if locked_password_sign_in_admins() and not password_sign_in_admins(override=org):
        provider = org.auth_provider or (effective_settings(org.parent).auth_provider if org.parent_id else None)
        raise last_admin_sso_denied(provider, field="auth_method")


def check_password_admins_kept(before: set[int], *, provider: Any, field: str = "") -> None:
    """Call after a change, inside its transaction: raise ``last_admin_sso`` (so the change rolls back)
    when Customer Cloud Admins could sign in with a password ``before`` it and none can now."""
    if before and not password_sign_in_admins():
        raise last_admin_sso_denied(provider, field=field)


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, (Organization, Role)) or hasattr(value, "_meta") else value


@dataclass(frozen=True)
class EffectiveSettings:
    """An org's settings after inheritance, with the org each value came from."""

    auth_method: str
    auth_provider: Any
    auth_from: Organization
    two_factor_required: bool
    two_factor_from: Organization
    default_roles: tuple[Role, ...]
    default_roles_from: Organization


def effective_settings(org: Organization) -> EffectiveSettings:
    """Resolve inherited settings by walking from ``org`` up to the root."""
    chain = [org, *reversed(org.ancestors())]
    auth_src = next((o for o in chain if o.auth_method is not None), chain[-1])
    tfa_src = next((o for o in chain if o.two_factor_required is not None), chain[-1])
    roles_src = next((o for o in chain if not o.inherit_default_roles), chain[-1])
    return EffectiveSettings(
        auth_method=auth_src.auth_method or AuthMethod.LOCAL,
        auth_provider=auth_src.auth_provider if auth_src.auth_method == AuthMethod.SSO else None,
        auth_from=auth_src,
        two_factor_required=bool(tfa_src.two_factor_required),
        two_factor_from=tfa_src,
        default_roles=tuple(roles_src.default_roles.all()),
        default_roles_from=roles_src,
    )


class OrgIndex:
    """All orgs in memory for a bulk run: id lookup, name/path/external-reference lookup, default roles.

    Name lookup is deterministic: a full path ("Acme/Engineering") is exact; a bare name must be
    unique across the tree (case-insensitive), otherwise it is refused as ambiguous.
    """

    def __init__(self) -> None:
        self.by_id: dict[int, Organization] = {o.pk: o for o in Organization.objects.all()}
        self._defaults: dict[int, frozenset[str]] = {}
        through = Organization.default_roles.through
        own: dict[int, set[str]] = {}
        for org_id, slug in through.objects.values_list("organization_id", "role__slug"):
            own.setdefault(org_id, set()).add(slug)
        self._own_defaults = own

    def get(self, org_id: int) -> Organization | None:
        return self.by_id.get(org_id)

    def default_role_slugs(self, org_id: int) -> frozenset[str]:
        """Default roles of an org after inheritance."""
        if org_id in self._defaults:
            return self._defaults[org_id]
        org = self.by_id[org_id]
        if org.inherit_default_roles and org.parent_id:
            result = self.default_role_slugs(org.parent_id)
        else:
            result = frozenset(self._own_defaults.get(org_id, ()))
        self._defaults[org_id] = result
        return result

    def sso_source(self, org_id: int) -> Organization | None:
        """The org whose "single sign-on" setting ``org_id`` inherits (nearest first), or None if its
        effective method is local."""
        org = self.by_id[org_id]
        for pk in reversed([int(p) for p in org.path.strip("/").split("/") if p]):
            source = self.by_id.get(pk)
            if source is not None and source.auth_method is not None:
                return source if source.auth_method == AuthMethod.SSO else None
        return None

    def full_name(self, org: Organization) -> str:
        ids = [int(p) for p in org.path.strip("/").split("/") if p]
        return "/".join(self.by_id[i].name for i in ids if i in self.by_id)

    def lookup(self, ref: str, *, visible: Callable[[Organization], bool] | None = None) -> Organization:
        """Find an org by path, name or external reference; raise ``NotFound`` / ``ValidationFailed``.

        With ``visible``, orgs it rejects are treated as absent (same message as a name that does not
        exist, and never counted for ambiguity), so a lookup reveals nothing outside the caller's scope.
        """
        ref = (ref or "").strip()
        if not ref:
            raise NotFound("org_not_found", "No organization given.", field="org")
        lowered = ref.lower()
        candidates = [o for o in self.by_id.values() if visible is None or visible(o)]
        if "/" in ref:
            matches = [o for o in candidates if self.full_name(o).lower() == lowered.strip("/")]
        else:
            matches = [o for o in candidates if o.name.lower() == lowered]
            if not matches:
                matches = [o for o in candidates if o.external_ref and o.external_ref.lower() == lowered]
        if not matches:
            raise NotFound("org_not_found", f"No organization named {ref!r}.", field="org")
        if len(matches) > 1:
            raise ValidationFailed(
                "org_ambiguous",
                f"Several organizations are named {ref!r}; give the full path, e.g. "
                f"{self.full_name(matches[0])!r}.",
                field="org",
            )
        return matches[0]


def org_lookup(ref: str) -> Organization:
    """Find one org by full path ("Acme/Engineering"), unique name, or external reference."""
    return OrgIndex().lookup(ref)


def validation_error_from(exc: ValidationError, field: str) -> ValidationFailed:
    """Translate Django's ``ValidationError`` into our coded error."""
    messages = " ".join(exc.messages)
    code = getattr(exc, "code", None) or (exc.error_list[0].code if getattr(exc, "error_list", None) else None)
    return ValidationFailed(code or "invalid", messages, field=field)
