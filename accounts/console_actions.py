"""Console-level services: thin, keyword-only wrappers that build an ``IdentityChange`` and apply it.

Views and commands call these; the rules live in ``accounts.identity`` (entry point ``service.py``).
Named "console actions" so they are not mistaken for the identity service itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from accounts.identity.service import apply_identity_change, apply_identity_changes
from accounts.identity.types import UNSET, Actor, BulkResult, ChangeResult, IdentityChange, Mode, UserState


def user_create(
    *, actor: Actor, username: str, org_id: int, email: str = "", first_name: str = "", last_name: str = "",
    password: str | None = None, roles: Iterable[str] | None = None, notes: str = "",
) -> ChangeResult:
    """Create a local user; without a password the user is invited."""
    return apply_identity_change(actor=actor, change=_create_change(
        username=username, org_id=org_id, email=email, first_name=first_name, last_name=last_name,
        password=password, roles=roles, notes=notes))


def _create_change(*, username: str, org_id: int, email: str, first_name: str, last_name: str,
                   password: str | None, roles: Iterable[str] | None, notes: str) -> IdentityChange:
    return IdentityChange(
        username=username, email=email, first_name=first_name, last_name=last_name,
        password=password or UNSET, org_id=org_id, roles=frozenset(roles) if roles else UNSET,
        notes=notes, mode=Mode.CREATE,
    )


def user_create_problems(
    *, actor: Actor, username: str, org_id: int, email: str = "", first_name: str = "", last_name: str = "",
    password: str | None = None, roles: Iterable[str] | None = None, notes: str = "",
) -> list:
    """All the errors ``user_create`` with these values would raise, one per field (nothing written)."""
    return change_problems(actor=actor, change=_create_change(
        username=username, org_id=org_id, email=email, first_name=first_name, last_name=last_name,
        password=password, roles=roles, notes=notes))


def user_update(*, actor: Actor, user: User, **fields: Any) -> ChangeResult:
    """Update profile fields (username, email, first_name, last_name, notes)."""
    allowed = {"username", "email", "first_name", "last_name", "notes"}
    unknown = set(fields) - allowed
    if unknown:
        raise TypeError(f"unknown fields: {sorted(unknown)}")
    return apply_identity_change(actor=actor, change=IdentityChange(user_id=user.pk, mode=Mode.UPDATE, **fields))


def user_update_problems(*, actor: Actor, user: User, **fields: Any) -> list:
    """All the errors ``user_update`` with these fields would raise, one per field (nothing written)."""
    return change_problems(actor=actor, change=IdentityChange(user_id=user.pk, mode=Mode.UPDATE, **fields))


def user_set_password(*, actor: Actor, user: User, password: str) -> ChangeResult:
    """Set a user's password (validated against the password rules and history)."""
    return apply_identity_change(actor=actor, change=IdentityChange(user_id=user.pk, password=password,
                                                                     mode=Mode.UPDATE))


def _state(actor: Actor, user: User, state: UserState) -> ChangeResult:
    with transaction.atomic():
        result = apply_identity_change(actor=actor, change=IdentityChange(user_id=user.pk, state=state,
                                                                          mode=Mode.UPDATE))
        _remember_admin_state(actor, [result], state)
    return result


def _remember_admin_state(actor: Actor, results: Iterable[ChangeResult], state: UserState) -> None:
    """Record an admin's block / deactivation (``provisioning.UserBlock`` without source) so a source
    saying "active" does not undo it (issue 8); an admin's unblock / reactivation lifts the record."""
    from provisioning.lifecycle import forget_blocks, record_admin_block

    ids = [r.user_id for r in results if r.status != "refused" and r.user_id]
    if state in (UserState.BLOCKED, UserState.DEACTIVATED):
        record_admin_block(user_ids=ids, actor=actor, reason=f"{UserState(state).label} in the console")
    elif state == UserState.ACTIVE:
        forget_blocks(user_ids=ids)


def user_block(*, actor: Actor, user: User) -> ChangeResult:
    """Block: the user is signed out and cannot sign in; nothing else changes."""
    return _state(actor, user, UserState.BLOCKED)


def user_unblock(*, actor: Actor, user: User) -> ChangeResult:
    return _state(actor, user, UserState.ACTIVE)


def user_deactivate(*, actor: Actor, user: User) -> ChangeResult:
    return _state(actor, user, UserState.DEACTIVATED)


def user_reactivate(*, actor: Actor, user: User) -> ChangeResult:
    return _state(actor, user, UserState.ACTIVE)


def user_move(*, actor: Actor, user: User, org_id: int) -> ChangeResult:
    """Move a user to another organization."""
    return apply_identity_change(actor=actor, change=IdentityChange(user_id=user.pk, org_id=org_id, mode=Mode.UPDATE))


def user_set_roles(*, actor: Actor, user: User, roles: Iterable[str]) -> ChangeResult:
    """Replace a user's roles with ``roles`` (slugs)."""
    return apply_identity_change(actor=actor, change=IdentityChange(user_id=user.pk, roles=frozenset(roles),
                                                                     mode=Mode.UPDATE))


def role_assign(*, actor: Actor, user: User, role: str) -> ChangeResult:
    return apply_identity_change(actor=actor, change=IdentityChange(user_id=user.pk, roles_add=frozenset({role}),
                                                                     mode=Mode.UPDATE))


def role_remove(*, actor: Actor, user: User, role: str) -> ChangeResult:
    return apply_identity_change(actor=actor, change=IdentityChange(user_id=user.pk,
                                                                     roles_remove=frozenset({role}),
                                                                     mode=Mode.UPDATE))


def users_set_state(*, actor: Actor, user_ids: Iterable[int], state: UserState) -> BulkResult:
    """Bulk block/unblock from the users list: one result per user, refused ones keep their state."""
    with transaction.atomic():
        result = apply_identity_changes(actor=actor, changes=[
            IdentityChange(user_id=uid, state=state, mode=Mode.UPDATE, ref=uid) for uid in user_ids
        ])
        _remember_admin_state(actor, result.results, state)
    return result


PROBED_FIELDS = ("username", "email", "first_name", "last_name", "password", "roles", "notes")


def change_problems(*, actor: Actor, change: IdentityChange) -> list:
    """Every field error of a change at once (``IdentityError`` list, empty when it would be accepted).

    The service stops at the first error, which made the console report one error per submit. This
    asks the same service, in dry runs (nothing is written), about the whole change and then about
    each field on its own, so forms show all their errors together under the one set of rules.
    """
    import uuid
    from dataclasses import replace

    first = apply_identity_changes(changes=[change], actor=actor, dry_run=True).results[0].error
    if first is None:
        return []
    found = {(first.field or ""): first}
    probes = []
    for name in PROBED_FIELDS:
        if getattr(change, name) is UNSET or name in found:
            continue
        others = {other: UNSET for other in PROBED_FIELDS if other != name}
        if change.mode == Mode.CREATE and name != "username":
            # A unique valid stand-in, so a bad or taken username does not hide this field's error.
            others["username"] = f"idm-probe-{uuid.uuid4().hex[:16]}"
        probes.append(replace(change, **others, ref=name))
    if probes:
        for result in apply_identity_changes(changes=probes, actor=actor, dry_run=True).results:
            error = result.error
            if error is not None and error.field == result.ref and error.field not in found:
                found[error.field] = error
    return list(found.values())
