"""A role an enabled provisioning source grants is not removed by hand (issue 8): the console and the
service refuse it with ``role_granted_by_source`` and leave role and grant rows as they were, so the
source's next run finds nothing to re-add. A role removed by hand loses every grant row, so no grant
outlives its role (and the data migration drops rows left from before)."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.urls import reverse

from accounts.exceptions import PolicyDenied
from accounts.identity.service import apply_identity_change
from accounts.identity.types import IdentityChange, Mode
from accounts.models import AuditEvent, Role
from provisioning.models import MappingRule, RoleGrant
from provisioning.reapply import reapply_rules
from provisioning.rules import SourceRecord

orphans_migration = importlib.import_module("provisioning.migrations.0009_rules8_drop_orphan_grants")


def roles_of(user) -> set[str]:
    return set(Group.objects.filter(user=user, role__isnull=False).values_list("role__slug", flat=True))


def grants(user) -> set[tuple[str, str | None]]:
    return set(RoleGrant.objects.filter(user=user).values_list("role__slug", "source__slug"))


@pytest.fixture
def granted(source_factory, linked_user):
    """Ann, linked to Okta, holds help-desk through Okta's role rule and console-user by hand."""
    source = source_factory("Okta")
    rule = MappingRule.objects.create(source=source, kind="role", condition="member_of_group", value="Engineering",
                                      saved_by_cloud_admin=True)
    rule.roles.set(Role.objects.filter(slug="help-desk"))
    ann = linked_user(source, "ann", record=SourceRecord.build(groups=["Engineering"]), roles=["console-user"])
    reapply_rules(source=source)
    assert grants(ann) == {("help-desk", source.slug), ("console-user", None)}
    return source, ann


def remove(user, role: str, actor):
    return apply_identity_change(change=IdentityChange(user_id=user.pk, mode=Mode.UPDATE,
                                                       roles_remove=frozenset({role})), actor=actor)


def test_service_refuses_removing_a_source_granted_role(granted, admin_actor):
    source, ann = granted
    with pytest.raises(PolicyDenied) as refused:
        remove(ann, "help-desk", admin_actor)
    assert refused.value.code == "role_granted_by_source"
    assert refused.value.field == "roles"
    assert "Okta" in refused.value.message
    assert roles_of(ann) == {"help-desk", "console-user"}
    assert grants(ann) == {("help-desk", source.slug), ("console-user", None)}
    assert not AuditEvent.objects.filter(action="user.role_removed", target_id=str(ann.pk)).exists()
    # Nothing for the source to re-add or count on its next run.
    assert reapply_rules(source=source).counts["updated"] == 0


def test_replacing_all_roles_without_it_is_refused_too(granted, admin_actor):
    _, ann = granted
    with pytest.raises(PolicyDenied, match="Help Desk"):
        apply_identity_change(change=IdentityChange(user_id=ann.pk, mode=Mode.UPDATE,
                                                    roles=frozenset({"console-user"})), actor=admin_actor)
    assert roles_of(ann) == {"help-desk", "console-user"}


def test_a_role_held_by_hand_is_removed_with_its_grant_row(granted, admin_actor):
    source, ann = granted
    remove(ann, "console-user", admin_actor)
    assert roles_of(ann) == {"help-desk"}
    assert grants(ann) == {("help-desk", source.slug)}


def test_also_granted_by_hand_is_still_refused(granted, admin_actor):
    """The manual row alone cannot be removed either: the role would stay (the source grants it),
    which is not what "remove" asks for."""
    source, ann = granted
    apply_identity_change(change=IdentityChange(user_id=ann.pk, mode=Mode.UPDATE,
                                                roles_add=frozenset({"help-desk"})), actor=admin_actor)
    assert grants(ann) == {("help-desk", source.slug), ("help-desk", None), ("console-user", None)}
    with pytest.raises(PolicyDenied):
        remove(ann, "help-desk", admin_actor)


def test_disabled_source_grant_can_be_removed_and_leaves_no_row(granted, admin_actor):
    source, ann = granted
    source.enabled = False
    source.save(update_fields=["enabled"])
    remove(ann, "help-desk", admin_actor)
    assert roles_of(ann) == {"console-user"}
    assert grants(ann) == {("console-user", None)}


def test_console_roles_page_refuses_and_shows_where_the_role_comes_from(admin_client, granted):
    source, ann = granted
    url = reverse("accounts:user_roles", args=[ann.pk])
    page = admin_client.get(url).content.decode()
    assert 'data-role-origin="help-desk">Granted by Okta<' in page
    response = admin_client.post(url, {"roles": [Role.objects.get(slug="console-user").pk]})
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-code="role_granted_by_source"' in body
    assert "Help Desk is granted by the provisioning source Okta" in body
    assert roles_of(ann) == {"help-desk", "console-user"}
    assert grants(ann) == {("help-desk", source.slug), ("console-user", None)}


def test_console_removal_of_a_manual_role_still_works(admin_client, granted):
    source, ann = granted
    response = admin_client.post(reverse("accounts:user_roles", args=[ann.pk]),
                                 {"roles": [Role.objects.get(slug="help-desk").pk]})
    assert response.status_code == 302
    assert roles_of(ann) == {"help-desk"}
    assert grants(ann) == {("help-desk", source.slug)}


def test_migration_drops_grant_rows_of_roles_not_held(granted):
    source, ann = granted
    # A row left behind by an older removal path: the role is gone, the source's row stayed.
    Group.objects.get(role__slug="help-desk").user_set.remove(ann)
    orphans_migration.drop_orphan_grants(apps, None)
    assert grants(ann) == {("console-user", None)}
