"""Role permissions and their org scope."""

from __future__ import annotations

import pytest

from accounts.access import Access
from accounts.models import Organization, Role
from accounts.roles import CUSTOMER_CLOUD_ADMIN

pytestmark = pytest.mark.django_db


def test_cloud_admin_can_everything_everywhere(admin_user, org_factory):
    access = Access(admin_user)
    org = org_factory("Anywhere")
    assert access.is_cloud_admin and access.can("manage_users", org) and access.can("view_audit_log", org)
    assert admin_user.has_perm("accounts.manage_identity")  # Django's permission machinery sees role perms


def test_org_scoped_role_applies_to_subtree_only(user_factory, org_factory):
    eng = org_factory("Engineering")
    sub = org_factory("Team", parent=eng)
    sales = org_factory("Sales")
    access = Access(user_factory("oa", org=eng, roles=["org-admin"]))
    assert access.can("manage_users", eng) and access.can("manage_users", sub)
    assert not access.can("manage_users", sales)
    assert not access.has("view_audit_log")
    visible = set(Organization.objects.filter(access.org_filter("view_directory")))
    assert visible == {eng, sub}


def test_console_user_only_signs_in(user_factory):
    access = Access(user_factory("plain"))
    assert access.has("console_access") and not access.has("view_directory")


def test_blocked_user_has_no_access(user_factory):
    from accounts.identity.service import apply_identity_change
    from accounts.identity.types import Actor, IdentityChange, UserState

    user = user_factory("admin2", roles=[CUSTOMER_CLOUD_ADMIN])
    user_factory("admin3", roles=[CUSTOMER_CLOUD_ADMIN])
    apply_identity_change(actor=Actor.system(), change=IdentityChange(user_id=user.pk, state=UserState.BLOCKED))
    user.refresh_from_db()
    assert Access(user).grants == {}


def test_catalogue_is_seeded_with_groups():
    slugs = set(Role.objects.values_list("slug", flat=True))
    assert {CUSTOMER_CLOUD_ADMIN, "identity-management-administrator", "cross-org-admin", "org-admin", "org-manager",
            "help-desk", "user-modify", "audit-log-viewer", "multi-factor-auth-admin", "console-user",
            "desktop-user"} <= slugs
    assert all(role.group.name == f"role:{role.slug}" for role in Role.objects.all())
