"""Organization service: tree rules, inherited settings, deterministic name lookup."""

from __future__ import annotations

import pytest

from accounts.exceptions import ConflictError, NotFound, PolicyDenied, ValidationFailed
from accounts.identity.orgs import (
    OrgIndex,
    effective_settings,
    org_create,
    org_delete,
    org_lookup,
    org_move,
    org_set_active,
    org_update,
    org_update_settings,
)
from accounts.identity.types import Actor, AuthMethod, UserState
from accounts.models import AuditEvent, Organization, Role
from accounts.roles import CONSOLE_USER, DESKTOP_USER

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("name", "code"), [("ab", "org_name_length"), ("x" * 221, "org_name_length"),
                                            (" Padded", "org_name_spaces"), ("", "org_name_required"),
                                            ("a/b", "org_name_slash")])
def test_bad_org_names_refused(root_org, system_actor, name, code):
    with pytest.raises(ValidationFailed) as err:
        org_create(actor=system_actor, name=name, parent=root_org)
    assert err.value.code == code
    assert Organization.objects.count() == 1


def test_create_sets_path_depth_and_audits(org_factory, root_org):
    eng = org_factory("Engineering")
    platform = org_factory("Platform", parent=eng)
    assert platform.path == f"/{root_org.pk}/{eng.pk}/{platform.pk}/" and platform.depth == 2
    assert platform.full_name() == "Default Organization / Engineering / Platform"
    assert AuditEvent.objects.filter(action="org.created", target_id=str(platform.pk)).exists()


def test_sibling_names_unique_case_insensitively(org_factory, root_org, system_actor):
    eng = org_factory("Engineering")
    with pytest.raises(ConflictError):
        org_create(actor=system_actor, name="ENGINEERING", parent=root_org)
    org_factory("Engineering", parent=eng)  # same name elsewhere in the tree is fine


def test_move_rewrites_subtree_paths_and_refuses_cycles(org_factory, system_actor):
    a = org_factory("Alpha")
    b = org_factory("Beta", parent=a)
    c = org_factory("Gamma", parent=b)
    other = org_factory("Other")
    for target in (a, b, c):
        with pytest.raises(ValidationFailed) as err:
            org_move(actor=system_actor, org=a, new_parent=target)
        assert err.value.code == "org_cycle"
    org_move(actor=system_actor, org=b, new_parent=other)
    b.refresh_from_db()
    c.refresh_from_db()
    assert b.parent == other and b.path == f"{other.path}{b.pk}/" and c.path == f"{b.path}{c.pk}/"
    assert c.depth == other.depth + 2
    assert AuditEvent.objects.filter(action="org.moved", target_id=str(b.pk)).exists()


def test_delete_refused_with_children_or_users(org_factory, user_factory, system_actor):
    parent = org_factory("Parent")
    child = org_factory("Child", parent=parent)
    with pytest.raises(PolicyDenied) as err:
        org_delete(actor=system_actor, org=parent)
    assert err.value.code == "org_has_children"
    user_factory("u1", org=child)
    with pytest.raises(PolicyDenied) as err:
        org_delete(actor=system_actor, org=child)
    assert err.value.code == "org_has_users"
    empty = org_factory("Empty")
    org_delete(actor=system_actor, org=empty)
    assert not Organization.objects.filter(pk=empty.pk).exists()


def test_deactivate_refused_while_users_active(org_factory, user_factory, system_actor):
    from accounts.identity.service import apply_identity_change
    from accounts.identity.types import IdentityChange

    org = org_factory("Leaving")
    user = user_factory("u2", org=org)
    with pytest.raises(PolicyDenied):
        org_set_active(actor=system_actor, org=org, active=False)
    apply_identity_change(actor=system_actor, change=IdentityChange(user_id=user.pk, state=UserState.DEACTIVATED))
    org_set_active(actor=system_actor, org=org, active=False)
    org.refresh_from_db()
    assert not org.is_active and org.deactivated_at


def test_rename_audits_old_and_new(org_factory, system_actor):
    org = org_factory("Old Name")
    assert org_update(actor=system_actor, org=org, name="New Name") == ["name"]
    event = AuditEvent.objects.get(action="org.renamed")
    assert (event.old_value, event.new_value) == ("Old Name", "New Name")


def test_settings_inherit_until_overridden(org_factory, root_org, system_actor):
    from sso.models import IdentityProvider

    idp = IdentityProvider.objects.create(name="Okta")
    eng = org_factory("Engineering")
    platform = org_factory("Platform", parent=eng)
    eff = effective_settings(platform)
    assert eff.auth_method == AuthMethod.LOCAL and eff.auth_from == root_org
    assert {r.slug for r in eff.default_roles} == {CONSOLE_USER, DESKTOP_USER}

    org_update_settings(actor=system_actor, org=eng, auth_method=AuthMethod.SSO, auth_provider=idp,
                        two_factor_required=True, inherit_default_roles=False,
                        default_roles=[Role.objects.get(slug=CONSOLE_USER)])
    eff = effective_settings(platform)
    assert (eff.auth_method, eff.auth_provider, eff.auth_from) == (AuthMethod.SSO, idp, eng)
    assert eff.two_factor_required and eff.two_factor_from == eng
    assert [r.slug for r in eff.default_roles] == [CONSOLE_USER]
    assert OrgIndex().default_role_slugs(platform.pk) == {CONSOLE_USER}

    org_update_settings(actor=system_actor, org=platform, auth_method=AuthMethod.LOCAL)
    assert effective_settings(platform).auth_method == AuthMethod.LOCAL
    with pytest.raises(ValidationFailed) as err:
        org_update_settings(actor=system_actor, org=platform, auth_method=AuthMethod.SSO)
    assert err.value.code == "sso_provider_required"
    assert AuditEvent.objects.filter(action="org.settings_changed", target_id=str(eng.pk)).count() >= 4


def test_new_users_get_inherited_default_roles(org_factory, user_factory, system_actor):
    eng = org_factory("Engineering")
    org_update_settings(actor=system_actor, org=eng, inherit_default_roles=False,
                        default_roles=[Role.objects.get(slug=DESKTOP_USER)])
    sub = org_factory("Sub", parent=eng)
    user = user_factory("newbie", org=sub)
    assert set(user.groups.values_list("role__slug", flat=True)) == {DESKTOP_USER}


def test_lookup_by_path_name_and_external_ref(org_factory):
    eng = org_factory("Engineering", external_ref="CC-100")
    org_factory("Platform", parent=eng)
    sales = org_factory("Sales")
    org_factory("Platform", parent=sales)
    assert org_lookup("engineering") == eng
    assert org_lookup("CC-100") == eng
    assert org_lookup("Default Organization/Sales/Platform").parent == sales
    with pytest.raises(ValidationFailed) as err:
        org_lookup("Platform")
    assert err.value.code == "org_ambiguous" and "Default Organization/" in err.value.message
    with pytest.raises(NotFound):
        org_lookup("Nowhere")


def test_org_admin_manages_only_own_subtree(org_factory, user_factory):
    eng = org_factory("Engineering")
    sales = org_factory("Sales")
    actor = Actor.for_user(user_factory("oa", org=eng, roles=["org-admin"]))
    child = org_create(actor=actor, name="Team", parent=eng)
    assert child.parent == eng
    with pytest.raises(PolicyDenied):
        org_create(actor=actor, name="Team", parent=sales)
    with pytest.raises(PolicyDenied):
        org_move(actor=actor, org=child, new_parent=sales)


def test_org_admin_cannot_make_a_role_they_cannot_grant_a_default(org_factory, user_factory):
    eng = org_factory("Engineering")
    actor = Actor.for_user(user_factory("oa", org=eng, roles=["org-admin"]))
    with pytest.raises(PolicyDenied) as err:
        org_update_settings(actor=actor, org=eng, inherit_default_roles=False,
                            default_roles=[Role.objects.get(slug="customer-cloud-admin")])
    assert err.value.code == "role_not_assignable"
    eng.refresh_from_db()
    assert eng.inherit_default_roles  # nothing half-applied
    org_update_settings(actor=actor, org=eng, inherit_default_roles=False,
                        default_roles=[Role.objects.get(slug=CONSOLE_USER), Role.objects.get(slug=DESKTOP_USER)])
    assert {r.slug for r in eng.default_roles.all()} == {CONSOLE_USER, DESKTOP_USER}
