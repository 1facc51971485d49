"""Issue 7 §5, identity-service items: default roles pass the "never more than you hold" check;
a provider's directory group is its own (members included); group names are bounded and unique."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from accounts.exceptions import PolicyDenied, ValidationFailed
from accounts.identity.groups import GROUP_NAME_MAX, group_create, group_delete, group_update
from accounts.identity.orgs import org_update_settings
from accounts.identity.service import apply_identity_change, apply_identity_changes
from accounts.identity.types import Actor, IdentityChange, Mode, Source
from accounts.models import AuditEvent, Role
from accounts.roles import CONSOLE_USER

pytestmark = pytest.mark.django_db


def roles_of(user) -> set[str]:
    return set(user.groups.filter(role__isnull=False).values_list("role__slug", flat=True))


@pytest.fixture
def help_desk_org(org_factory, system_actor):
    """An org whose default roles include the global Help Desk role."""
    org = org_factory("Support")
    org_update_settings(actor=system_actor, org=org, inherit_default_roles=False,
                        default_roles=list(Role.objects.filter(slug__in=["help-desk", CONSOLE_USER])))
    return org


def test_org_manager_cannot_mint_a_global_help_desk_through_default_roles(help_desk_org, user_factory):
    manager = user_factory("manager", org=help_desk_org, roles=["org-manager"])
    result = apply_identity_change(actor=Actor.for_user(manager), change=IdentityChange(
        username="newbie", org_id=help_desk_org.pk, mode=Mode.CREATE))
    assert roles_of(result.user) == {CONSOLE_USER}  # Help Desk skipped, the sign-in role given
    assert result.warnings and "Help Desk" in result.warnings[0]
    created = AuditEvent.objects.get(action="user.created", target_id=str(result.user.pk))
    assert created.new_value["roles"] == ["Console User"]


def test_cloud_admin_gives_every_default_role(help_desk_org, admin_user):
    result = apply_identity_change(actor=Actor.for_user(admin_user), change=IdentityChange(
        username="newbie", org_id=help_desk_org.pk, mode=Mode.CREATE))
    assert roles_of(result.user) == {CONSOLE_USER, "help-desk"}
    assert result.warnings == []


def test_org_admin_gets_only_the_org_scoped_defaults_they_hold(org_factory, system_actor, user_factory):
    org = org_factory("Ops")
    org_update_settings(actor=system_actor, org=org, inherit_default_roles=False,
                        default_roles=list(Role.objects.filter(slug__in=["user-modify", "help-desk"])))
    org_admin = user_factory("oa", org=org, roles=["org-admin"])
    result = apply_identity_change(actor=Actor.for_user(org_admin), change=IdentityChange(
        username="ops1", org_id=org.pk, mode=Mode.CREATE))
    assert roles_of(result.user) == {"user-modify"}  # org-scoped and held; global Help Desk is not


def provider(name: str) -> Actor:
    return Actor.provider_actor(source=Source.SCIM, provider=name, label=name)


def test_another_source_cannot_change_a_provider_groups_members(root_org, system_actor, admin_user):
    okta, azure = provider("okta"), provider("azure")
    group = group_create(actor=okta, display_name="Engineers")
    member = apply_identity_change(actor=okta, change=IdentityChange(
        username="gina", org_id=root_org.pk, groups_add=frozenset({group.group_id}))).user
    outsider = apply_identity_change(actor=azure, change=IdentityChange(username="az1", org_id=root_org.pk)).user
    for actor, change in (
        (azure, IdentityChange(user_id=outsider.pk, groups_add=frozenset({group.group_id}))),
        (azure, IdentityChange(username="az2", org_id=root_org.pk, groups=frozenset({group.group_id}))),
        (system_actor, IdentityChange(user_id=member.pk, groups_remove=frozenset({group.group_id}))),
        (Actor.for_user(admin_user), IdentityChange(user_id=outsider.pk, groups_add=frozenset({group.group_id}))),
    ):
        result = apply_identity_changes(actor=actor, changes=[change]).results[0]
        assert (result.status, result.error.code) == ("refused", "group_not_owner"), change
    # A full replacement by another source replaces only its own groups: Okta's stays.
    replaced = apply_identity_changes(actor=system_actor, changes=[
        IdentityChange(user_id=member.pk, groups=frozenset())]).results[0]
    assert replaced.status == "unchanged"
    assert list(group.group.user_set.values_list("username", flat=True)) == ["gina"]
    with pytest.raises(PolicyDenied) as err:
        group_update(actor=azure, dgroup=group, display_name="Mine now")
    assert err.value.code == "not_owner"
    with pytest.raises(PolicyDenied):
        group_delete(actor=system_actor, dgroup=group)


def test_group_names_are_bounded_and_unique_whatever_the_input(system_actor):
    long_provider = Actor.provider_actor(source=Source.SCIM, provider="p" * 100, label="long")
    first = group_create(actor=long_provider, display_name="G" * 255)
    second = group_create(actor=long_provider, display_name="G" * 255)
    names = [first.group.name, second.group.name]
    assert all(len(n) <= GROUP_NAME_MAX for n in names) and names[0] != names[1]
    assert Group.objects.filter(name__in=names).count() == 2
    with pytest.raises(ValidationFailed) as err:
        group_create(actor=long_provider, display_name="G" * 256)
    assert (err.value.code, err.value.field) == ("group_name_too_long", "displayName")
    with pytest.raises(ValidationFailed) as err:
        group_update(actor=long_provider, dgroup=first, display_name="H" * 256)
    assert err.value.code == "group_name_too_long"
    with pytest.raises(ValidationFailed) as err:
        group_create(actor=long_provider, display_name="ok", external_id="x" * 256)
    assert err.value.code == "external_id_invalid"
