"""Renaming a directory group through the identity service: owner only, bounded and unique backing
names, audited, refusals coded and nothing half-applied."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from accounts.exceptions import ConflictError, PolicyDenied, ValidationFailed
from accounts.identity.groups import GROUP_NAME_MAX, group_create, group_rename, group_update
from accounts.identity.service import apply_identity_change
from accounts.identity.types import IdentityChange
from accounts.models import AuditEvent, DirectoryGroup
from tests.provisioning.conftest import provider_actor


@pytest.fixture
def okta(source_factory):
    return source_factory("Okta", slug="okta")


def test_the_owning_source_renames_its_group(okta, root_org):
    actor = provider_actor(okta)
    group = group_create(actor=actor, display_name="Engineers", external_id="g1")
    assert group.owner_source == okta
    member = apply_identity_change(actor=actor, change=IdentityChange(
        username="gina", org_id=root_org.pk, groups_add=frozenset({group.group_id}))).user
    assert group_rename(actor=actor, dgroup=group, display_name="  Platform Engineers ") is True
    group.refresh_from_db()
    assert group.display_name == "Platform Engineers"
    backing = Group.objects.get(pk=group.group_id)
    assert backing.name.startswith("dir:scim:okta:Platform Engineers:")
    assert list(backing.user_set.values_list("pk", flat=True)) == [member.pk]  # members stay
    event = AuditEvent.objects.get(action="group.updated", target_id=str(group.pk))
    assert (event.field, event.old_value, event.new_value, event.actor_label) == (
        "display_name", "Engineers", "Platform Engineers", "Okta")
    # The same name again changes nothing and writes no event.
    assert group_rename(actor=actor, dgroup=group, display_name="Platform Engineers") is False
    assert AuditEvent.objects.filter(action="group.updated").count() == 1


def test_nobody_else_renames_it(okta, source_factory, admin_actor, system_actor):
    group = group_create(actor=provider_actor(okta), display_name="Engineers")
    for actor in (provider_actor(source_factory("Other", slug="other")), admin_actor, system_actor):
        with pytest.raises(PolicyDenied) as err:
            group_rename(actor=actor, dgroup=group, display_name="Mine now")
        assert (err.value.code, err.value.message) == ("not_owner", "The group Engineers belongs to "
                                                                    "SCIM provisioning (okta).")
    assert DirectoryGroup.objects.get(pk=group.pk).display_name == "Engineers"
    assert not AuditEvent.objects.filter(action="group.updated").exists()


def test_bad_names_are_refused_with_their_code(okta):
    actor = provider_actor(okta)
    group = group_create(actor=actor, display_name="Engineers")
    backing = Group.objects.get(pk=group.group_id).name
    for name, code in (("", "group_name_required"), ("   ", "group_name_required"), (None, "group_name_required"),
                       ("x" * 256, "group_name_too_long")):
        with pytest.raises(ValidationFailed) as err:
            group_rename(actor=actor, dgroup=group, display_name=name)
        assert (err.value.code, err.value.field) == (code, "displayName")
    assert Group.objects.get(pk=group.group_id).name == backing
    assert DirectoryGroup.objects.get(pk=group.pk).display_name == "Engineers"


def test_backing_names_stay_bounded_and_unique(source_factory):
    long_source = source_factory("Long", slug="p" * 60)
    actor = provider_actor(long_source)
    first = group_create(actor=actor, display_name="A")
    second = group_create(actor=actor, display_name="B")
    for group in (first, second):
        group_rename(actor=actor, dgroup=group, display_name="N" * 255)
    names = list(Group.objects.filter(pk__in=[first.group_id, second.group_id]).values_list("name", flat=True))
    assert len(set(names)) == 2
    assert all(len(name) <= GROUP_NAME_MAX for name in names)


def test_external_id_taken_is_a_conflict_not_a_crash(okta):
    actor = provider_actor(okta)
    group_create(actor=actor, display_name="One", external_id="g1")
    two = group_create(actor=actor, display_name="Two", external_id="g2")
    with pytest.raises(ConflictError) as err:
        group_update(actor=actor, dgroup=two, display_name="Renamed", external_id="g1")
    assert (err.value.code, err.value.field) == ("group_exists", "externalId")
    two.refresh_from_db()
    assert (two.display_name, two.external_id) == ("Two", "g2")  # nothing half-applied
    assert Group.objects.get(pk=two.group_id).name.startswith("dir:scim:okta:Two:")
