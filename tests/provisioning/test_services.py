"""Rule editing through provisioning.services: validation, the admin-role restriction, audit rows."""

from __future__ import annotations

import pytest

from accounts.exceptions import MappingError, NotFound, PolicyDenied
from accounts.identity.types import Actor
from accounts.models import AuditEvent
from provisioning.models import MappingRule
from provisioning.resolve import role_catalogue
from provisioning.services import RuleInput, rule_delete, rule_save, source_save


@pytest.fixture
def org_admin_actor(user_factory):
    # Identity Management Administrator: manage_identity, not a Cloud Admin.
    return Actor.for_user(user_factory("ima", roles=["identity-management-administrator"]))


def role_input(*slugs: str, value: str = "Engineering") -> RuleInput:
    return RuleInput(kind="role", condition="member_of_group", value=value, role_slugs=frozenset(slugs))


def test_catalogue_marks_admin_and_cloud_admin_roles(db):
    roles = role_catalogue()
    assert roles["customer-cloud-admin"].grants_cloud_admin is True
    assert roles["org-admin"].is_admin is True
    assert roles["org-admin"].grants_cloud_admin is False
    assert roles["help-desk"].is_admin is False


def test_rule_save_creates_and_audits(admin_actor, source_factory):
    source = source_factory("Okta")
    rule = rule_save(actor=admin_actor, source=source, data=role_input("help-desk"))
    assert list(rule.roles.values_list("slug", flat=True)) == ["help-desk"]
    assert rule.saved_by_cloud_admin is True
    assert rule.saved_by_label == "admin"
    event = AuditEvent.objects.get(action="provisioning_rule_created")
    assert (event.target_type, event.target_id, event.field) == ("source", str(source.pk), f"rule:{rule.pk}")
    assert event.old_value is None
    assert event.new_value["roles"] == ["help-desk"]
    assert event.new_value["value"] == "Engineering"


def test_rule_update_audits_old_and_new(admin_actor, source_factory):
    source = source_factory()
    rule = rule_save(actor=admin_actor, source=source, data=role_input("help-desk"))
    rule_save(actor=admin_actor, source=source, data=role_input("help-desk", "desktop-user", value="Ops"), rule=rule)
    event = AuditEvent.objects.get(action="provisioning_rule_updated")
    assert event.old_value["value"] == "Engineering"
    assert event.new_value["value"] == "Ops"
    assert event.new_value["roles"] == ["desktop-user", "help-desk"]


def test_admin_role_rule_needs_cloud_admin(org_admin_actor, admin_actor, source_factory):
    source = source_factory()
    with pytest.raises(MappingError) as info:
        rule_save(actor=org_admin_actor, source=source, data=role_input("org-admin"))
    assert info.value.code == "role_admin_needs_cloud_admin"
    assert not MappingRule.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="provisioning_rule").exists()
    rule = rule_save(actor=admin_actor, source=source, data=role_input("org-admin"))
    # ... and once saved, a non-Cloud-Admin may neither change nor delete it.
    with pytest.raises(PolicyDenied) as info:
        rule_save(actor=org_admin_actor, source=source, data=role_input("help-desk"), rule=rule)
    assert info.value.code == "rule_needs_cloud_admin"
    with pytest.raises(PolicyDenied):
        rule_delete(actor=org_admin_actor, rule=rule)
    assert MappingRule.objects.filter(pk=rule.pk).exists()


def test_non_admin_rule_saved_by_non_cloud_admin(org_admin_actor, source_factory):
    rule = rule_save(actor=org_admin_actor, source=source_factory(), data=role_input("desktop-user"))
    assert rule.saved_by_cloud_admin is False


def test_rule_granting_powers_the_saver_lacks_is_refused(org_admin_actor, source_factory):
    """Review F2: "never more than you hold" applies to saving a rule (help-desk resets passwords)."""
    with pytest.raises(PolicyDenied) as info:
        rule_save(actor=org_admin_actor, source=source_factory(), data=role_input("help-desk"))
    assert (info.value.code, info.value.field) == ("role_beyond_your_powers", "roles")
    assert not MappingRule.objects.exists()


def test_cloud_admin_role_never_mappable(admin_actor, source_factory):
    with pytest.raises(MappingError) as info:
        rule_save(actor=admin_actor, source=source_factory(), data=role_input("customer-cloud-admin"))
    assert info.value.code == "role_cloud_admin_not_mappable"


def test_bad_regex_is_refused_with_code(admin_actor, source_factory):
    data = RuleInput(kind="active", condition="attribute_matches", attribute="title", value=r"(a)\1")
    with pytest.raises(MappingError) as info:
        rule_save(actor=admin_actor, source=source_factory(), data=data)
    assert (info.value.code, info.value.field) == ("regex_unsupported", "value")


def test_unknown_kind_and_missing_org(admin_actor, source_factory):
    source = source_factory()
    with pytest.raises(MappingError) as info:
        rule_save(actor=admin_actor, source=source, data=RuleInput(kind="x", condition="dn_under", value="dc=x"))
    assert info.value.code == "rule_kind_unknown"
    with pytest.raises(NotFound) as info:
        rule_save(actor=admin_actor, source=source,
                  data=RuleInput(kind="org", condition="dn_under", value="dc=x", target_org_id=999999))
    assert info.value.code == "org_not_found"


def test_rule_of_another_source_is_not_found(admin_actor, source_factory):
    rule = rule_save(actor=admin_actor, source=source_factory(), data=role_input("help-desk"))
    with pytest.raises(NotFound):
        rule_save(actor=admin_actor, source=source_factory(), data=role_input("help-desk"), rule=rule)


def test_rule_delete_audits_old_value(admin_actor, source_factory):
    rule = rule_save(actor=admin_actor, source=source_factory(), data=role_input("help-desk"))
    rule_id = rule.pk
    rule_delete(actor=admin_actor, rule=rule)
    event = AuditEvent.objects.get(action="provisioning_rule_deleted")
    assert event.field == f"rule:{rule_id}"
    assert event.old_value["roles"] == ["help-desk"]
    assert event.new_value is None


def test_source_save_audits_each_changed_setting(admin_actor, source_factory, root_org):
    source = source_factory("Entra", org_mode="unmanaged")
    source.org_mode = "fixed"
    source.fixed_org = root_org
    source_save(actor=admin_actor, source=source)
    changed = dict(AuditEvent.objects.filter(action="provisioning_source_updated").values_list("field", "new_value"))
    assert changed == {"org_mode": "fixed", "fixed_org_id": root_org.pk}


def test_source_save_refuses_fixed_mode_without_org(admin_actor, source_factory):
    source = source_factory()
    source.org_mode = "fixed"
    with pytest.raises(MappingError) as info:
        source_save(actor=admin_actor, source=source)
    assert info.value.code == "fixed_org_required"
