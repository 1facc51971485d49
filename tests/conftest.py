"""Shared fixtures: factories with keyword switches (allauth style). No shared mutable state."""

from __future__ import annotations

import itertools

import pytest

from accounts.identity.service import apply_identity_change
from accounts.identity.types import UNSET, Actor, IdentityChange, Mode
from accounts.models import Organization
from accounts.roles import CUSTOMER_CLOUD_ADMIN

pytest_plugins = ["tests.celery_helpers", "tests.accounts.console_support"]

TEST_PASSWORD = "Correct-Horse-42"
_counter = itertools.count(1)


@pytest.fixture
def system_actor() -> Actor:
    return Actor.system("tests")


@pytest.fixture
def root_org(db) -> Organization:
    """The seeded top-level organization."""
    return Organization.objects.get(parent__isnull=True)


@pytest.fixture
def org_factory(db, root_org, system_actor):
    """``org_factory(name=None, parent=None)`` creates a child org through the org service."""
    from accounts.identity.orgs import org_create

    def make(name: str | None = None, parent: Organization | None = None, **kwargs) -> Organization:
        return org_create(actor=system_actor, name=name or f"Org {next(_counter)}", parent=parent or root_org,
                          **kwargs)

    return make


@pytest.fixture
def user_factory(db, root_org, system_actor):
    """``user_factory(username=None, org=None, roles=(), password=TEST_PASSWORD, state=None, actor=None, **fields)``.

    Creates users through the identity service, like every other front door.
    """

    def make(username: str | None = None, *, org: Organization | None = None, roles=(), password=TEST_PASSWORD,
             state=None, actor: Actor | None = None, **fields):
        change = IdentityChange(
            username=username or f"user{next(_counter)}",
            email=fields.pop("email", f"{username or 'user'}{next(_counter)}@example.com"),
            first_name=fields.pop("first_name", "Test"), last_name=fields.pop("last_name", "User"),
            password=password if password else UNSET,
            org_id=(org or root_org).pk, roles=frozenset(roles) if roles else UNSET,
            state=state if state else UNSET, mode=Mode.CREATE, **fields,
        )
        return apply_identity_change(change=change, actor=actor or system_actor).user

    return make


@pytest.fixture
def admin_user(user_factory):
    """An active Customer Cloud Admin."""
    return user_factory("admin", roles=[CUSTOMER_CLOUD_ADMIN])


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def admin_actor(admin_user) -> Actor:
    return Actor.for_user(admin_user)
