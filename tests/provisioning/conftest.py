"""Fixtures for provisioning tests: sources, and users linked to a source with stored source data."""

from __future__ import annotations

import itertools

import pytest

from accounts.identity.service import apply_identity_change
from accounts.identity.types import UNSET, Actor, ExternalLink, IdentityChange, Mode
from provisioning.models import RoleGrant, Source
from provisioning.resolve import link_raw
from provisioning.rules import SourceRecord

_counter = itertools.count(1)


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def source_factory(db):
    """``source_factory(name=None, kind="scim", **fields)`` creates a source row."""

    def make(name: str | None = None, *, kind: str = Source.Kind.SCIM, **fields) -> Source:
        n = next(_counter)
        fields.setdefault("org_mode", Source.OrgMode.UNMANAGED)
        return Source.objects.create(name=name or f"Source {n}", slug=fields.pop("slug", f"source-{n}"),
                                     kind=kind, **fields)

    return make


def provider_actor(source: Source) -> Actor:
    return Actor.provider_actor(source=source.kind, provider=source.slug, label=source.name)


@pytest.fixture
def linked_user(root_org):
    """``linked_user(source, username, record=None, org=None, roles=())``: a user the source created,
    linked through ``ExternalIdentity`` with ``record`` stored as its last-known source data."""

    def make(source: Source, username: str, *, record: SourceRecord | None = None, org=None, roles=()):
        record = record or SourceRecord.build(attributes={"userName": username})
        change = IdentityChange(
            username=username, email=f"{username}@example.com", org_id=(org or root_org).pk,
            roles=frozenset(roles) if roles else UNSET, mode=Mode.CREATE,
            link=ExternalLink(source=source.kind, provider=source.slug, external_id=f"ext-{username}",
                              raw=link_raw(record)),
        )
        user = apply_identity_change(change=change, actor=provider_actor(source)).user
        # The writer records the roles given here as granted by the source; the tests use ``roles``
        # for roles held before any rule ran (by hand), so they become manual grants.
        RoleGrant.objects.filter(user=user).update(source=None, granted_by_label="")
        return user

    return make
