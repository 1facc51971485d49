"""``provisioning.policy``: a source's powers and who may administer it (review F1a, F1b, F2)."""

from __future__ import annotations

import pytest

from accounts.exceptions import PolicyDenied
from accounts.identity.types import Actor
from accounts.models import Role
from provisioning.models import MappingRule, Source
from provisioning.policy import check_may_administer_source, check_rule_grants, source_powers

pytestmark = pytest.mark.django_db


@pytest.fixture
def sales(org_factory):
    return org_factory("Sales")


@pytest.fixture
def sales_source(source_factory, sales):
    source = source_factory(org_mode=Source.OrgMode.FIXED, fixed_org=sales)
    rule = MappingRule.objects.create(source=source, kind=MappingRule.Kind.ROLE, condition="member_of_group",
                                      value="Sales Managers")
    rule.roles.set(Role.objects.filter(slug="org-manager"))
    return source


def test_source_powers_are_its_rule_roles_where_it_places_users_and_its_users_roles(
        sales_source, sales, org_factory, linked_user):
    """F1a: rule roles act where the source puts users and where its users are; held roles where held."""
    eng = org_factory("Engineering")
    linked_user(sales_source, "hana", org=eng, roles=["help-desk"])
    powers = source_powers(sales_source)
    assert powers.grants["manage_users"] == frozenset({sales.path, eng.path})
    assert powers.grants["reset_passwords"] is None  # Help Desk is global
    assert "console_access" not in powers.grants and powers.cloud_admin is False


def test_org_admin_of_the_placement_org_may_administer_until_a_user_holds_more(
        sales_source, sales, user_factory, linked_user):
    """F1a: an IMA who is also Org Admin of Sales holds the source's powers, until one of its users
    holds Help Desk (global resets) by hand."""
    actor = Actor.for_user(user_factory("ima.sales", org=sales,
                                        roles=["identity-management-administrator", "org-admin"]))
    check_may_administer_source(actor=actor, source=sales_source)
    linked_user(sales_source, "hana", org=sales, roles=["help-desk"])
    with pytest.raises(PolicyDenied) as info:
        check_may_administer_source(actor=actor, source=sales_source, action="rotate the token of")
    assert info.value.code == "source_more_privileged" and "Reset passwords" in info.value.message
    check_may_administer_source(actor=Actor.system("tests"), source=sales_source)


def test_rule_roles_checked_where_the_source_places_users(sales_source, sales, org_factory, user_factory):
    """F2: an Org Admin of Sales may map User Modify for a source placing users in Sales, not in another org."""
    actor = Actor.for_user(user_factory("ima.sales", org=sales,
                                        roles=["identity-management-administrator", "org-admin"]))
    check_rule_grants(actor=actor, source=sales_source, role_slugs={"user-modify"})
    Source.objects.filter(pk=sales_source.pk).update(fixed_org=org_factory("Engineering"))
    sales_source.refresh_from_db()
    with pytest.raises(PolicyDenied) as info:
        check_rule_grants(actor=actor, source=sales_source, role_slugs={"user-modify"})
    assert info.value.code == "role_beyond_your_powers"
