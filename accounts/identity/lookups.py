"""The org index and role table, shared by the steps of one request instead of loaded by each.

A one-user SCIM write is one provisioning run whose identity step, rules step and lifecycle each
called the identity service, and each service call loaded every org and role again (issue 9: ~4
loads, about half of a POST's queries). Inside ``shared_lookups()`` the first load is kept and
handed to the next step. Outside it every call loads afresh, as before.

What is shared is dropped as soon as an org, a role, an org's default roles or a role's
permissions are saved or deleted (model signals, so an org the rules create in the middle of a run
is seen by the steps after it). Bulk ``QuerySet.update()`` calls send no signal; nothing inside a
run changes orgs or roles that way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from django.contrib.auth.models import Group
from django.db.models.signals import m2m_changed, post_delete, post_save

from accounts.models import Organization, Role

if TYPE_CHECKING:
    from accounts.identity.loading import RoleIndex
    from accounts.identity.orgs import OrgIndex

T = TypeVar("T")

# None: no scope open. A dict: the loads kept by the innermost open scope, by name.
_shared: ContextVar[dict[str, Any] | None] = ContextVar("idm_shared_lookups", default=None)


@contextmanager
def shared_lookups() -> Iterator[None]:
    """Share org and role loads between the steps run inside this block (nested blocks join the
    outer one)."""
    if _shared.get() is not None:
        yield
        return
    token = _shared.set({})
    try:
        yield
    finally:
        _shared.reset(token)


def shared(name: str, load: Callable[[], T]) -> T:
    """``load()``'s result, kept under ``name`` for the rest of the open scope (no scope: loaded each call)."""
    kept = _shared.get()
    if kept is None:
        return load()
    if name not in kept:
        kept[name] = load()
    return kept[name]


def forget() -> None:
    """Drop what the open scope kept (an org or role changed)."""
    kept = _shared.get()
    if kept:
        kept.clear()


def org_index() -> OrgIndex:
    """Every org in memory (``OrgIndex``), shared inside ``shared_lookups()``."""
    from accounts.identity.orgs import OrgIndex

    return shared("orgs", OrgIndex)


def role_index() -> RoleIndex:
    """Every role with its group and permissions (``RoleIndex``), shared inside ``shared_lookups()``."""
    from accounts.identity.loading import RoleIndex

    return shared("roles", RoleIndex)


def _changed(**_: Any) -> None:
    forget()


for _model in (Organization, Role):
    post_save.connect(_changed, sender=_model, dispatch_uid=f"idm-lookups-save-{_model.__name__}")
    post_delete.connect(_changed, sender=_model, dispatch_uid=f"idm-lookups-delete-{_model.__name__}")
m2m_changed.connect(_changed, sender=Organization.default_roles.through, dispatch_uid="idm-lookups-defaults")
m2m_changed.connect(_changed, sender=Group.permissions.through, dispatch_uid="idm-lookups-permissions")
