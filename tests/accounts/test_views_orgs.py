"""Organization pages: tree, create, edit, move, deactivate/reactivate, delete, inherited settings."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.identity.types import AuthMethod
from accounts.models import AuditEvent, Organization, Role
from sso.models import IdentityProvider
from tests.accounts.console_support import error_codes, messages_of

pytestmark = pytest.mark.django_db


def test_tree_lists_orgs_in_path_order_with_counts(client, directory):
    client.force_login(directory.admin)
    response = client.get(reverse("accounts:org_list"))
    assert response.status_code == 200
    tree = response.context["tree"]
    names = [o.name for o in tree]
    assert names.index("Acme") < names.index("Engineering") < names.index("Platform")
    counts = {o.name: o.user_count for o in tree}
    assert counts["Engineering"] == 2 and counts["Platform"] == 1
    html = response.content.decode()
    assert "tree-node indent-3" in html  # Platform: depth 3 below the root (a class: the CSP forbids inline styles)


def test_org_admin_sees_own_subtree_only(client, directory):
    client.force_login(directory.eng_admin)
    response = client.get(reverse("accounts:org_list"))
    assert [o.name for o in response.context["tree"]] == ["Engineering", "Platform"]
    assert response.context["base_depth"] == directory.engineering.depth
    assert client.get(reverse("accounts:org_detail", args=[directory.sales.pk])).status_code == 404
    assert client.get(reverse("accounts:org_settings", args=[directory.sales.pk])).status_code == 404
    assert client.post(reverse("accounts:org_create", args=[directory.sales.pk]),
                       {"name": "Nope"}).status_code == 404


def test_deactivated_filter(client, directory, org_factory, system_actor):
    from accounts.identity.orgs import org_set_active

    old = org_factory("Old Team", parent=directory.acme)
    org_set_active(actor=system_actor, org=old, active=False)
    client.force_login(directory.admin)
    assert "Old Team" not in [o.name for o in client.get(reverse("accounts:org_list")).context["tree"]]
    response = client.get(reverse("accounts:org_list"), {"show": "deactivated"})
    assert [o.name for o in response.context["tree"]] == ["Old Team"]


def test_auditor_and_console_user_cannot_see_orgs(client, directory):
    for user in (directory.auditor, directory.member):
        client.force_login(user)
        assert client.get(reverse("accounts:org_list")).status_code == 403
        assert client.get(reverse("accounts:org_detail", args=[directory.acme.pk])).status_code == 403


def test_create_child_org(client, directory):
    client.force_login(directory.eng_admin)
    response = client.post(reverse("accounts:org_create", args=[directory.engineering.pk]),
                           {"name": "Data", "external_ref": "CC-120", "notes": ""})
    org = Organization.objects.get(name="Data")
    assert response["Location"] == reverse("accounts:org_detail", args=[org.pk])
    assert org.parent == directory.engineering and org.external_ref == "CC-120"
    assert AuditEvent.objects.filter(action="org.created", target_id=str(org.pk), actor_label="eng.admin").exists()


@pytest.mark.parametrize("name,code", [("ab", "org_name_length"), ("Platform", "org_name_taken"),
                                       ("PLATFORM", "org_name_taken"), ("a/b/c", "org_name_slash")])
def test_create_child_org_errors(client, directory, name, code):
    client.force_login(directory.admin)
    response = client.post(reverse("accounts:org_create", args=[directory.engineering.pk]),
                           {"name": name, "external_ref": "", "notes": ""})
    assert response.status_code == 200
    assert code in error_codes(response, "name")
    assert f'data-code="{code}"' in response.content.decode()


def test_org_manager_role_cannot_create_orgs(client, directory, user_factory):
    manager = user_factory("manager", org=directory.engineering, roles=["org-manager"])
    client.force_login(manager)
    assert client.get(reverse("accounts:org_detail", args=[directory.engineering.pk])).status_code == 200
    assert client.get(reverse("accounts:org_create", args=[directory.engineering.pk])).status_code == 403
    assert client.get(reverse("accounts:org_settings", args=[directory.engineering.pk])).status_code == 403


def test_rename_org(client, directory):
    client.force_login(directory.admin)
    client.post(reverse("accounts:org_edit", args=[directory.sales.pk]),
                {"name": "Sales EMEA", "external_ref": "S-1", "notes": "Hi"})
    directory.sales.refresh_from_db()
    assert (directory.sales.name, directory.sales.external_ref, directory.sales.notes) == ("Sales EMEA", "S-1", "Hi")
    assert AuditEvent.objects.filter(action="org.renamed", old_value="Sales", new_value="Sales EMEA").exists()


def test_rename_org_too_short(client, directory):
    client.force_login(directory.admin)
    response = client.post(reverse("accounts:org_edit", args=[directory.sales.pk]),
                           {"name": "S", "external_ref": "", "notes": ""})
    assert error_codes(response, "name") == {"org_name_length"}


def test_move_org_choices_exclude_own_subtree(client, directory):
    client.force_login(directory.admin)
    response = client.get(reverse("accounts:org_move", args=[directory.engineering.pk]))
    offered = {pk for pk, _label in response.context["form"].fields["parent"].widget.choices}
    assert directory.engineering.pk not in offered and directory.platform.pk not in offered
    assert directory.acme.pk not in offered  # the current parent
    assert directory.sales.pk in offered


def test_move_org_under_own_child_is_refused(client, directory):
    client.force_login(directory.admin)
    response = client.post(reverse("accounts:org_move", args=[directory.engineering.pk]),
                           {"parent": directory.platform.pk})
    assert response.status_code == 200
    assert error_codes(response, "parent") == {"org_cycle"}
    directory.engineering.refresh_from_db()
    assert directory.engineering.parent == directory.acme


def test_move_org(client, directory):
    client.force_login(directory.admin)
    client.post(reverse("accounts:org_move", args=[directory.platform.pk]), {"parent": directory.sales.pk})
    directory.platform.refresh_from_db()
    assert directory.platform.parent == directory.sales
    assert directory.platform.path.startswith(directory.sales.path)


def test_root_org_cannot_be_moved(client, directory, root_org):
    client.force_login(directory.admin)
    response = client.get(reverse("accounts:org_move", args=[root_org.pk]), follow=True)
    assert any("org_root_move" in m for m in messages_of(response))


def test_deactivate_org_with_users_is_refused(client, directory):
    client.force_login(directory.admin)
    url = reverse("accounts:org_action", args=[directory.sales.pk, "deactivate"])
    assert client.get(url).status_code == 200
    response = client.post(url, follow=True)
    assert any("org_has_active_users" in m for m in messages_of(response))
    directory.sales.refresh_from_db()
    assert directory.sales.is_active


def test_deactivate_and_reactivate_empty_org(client, directory, org_factory):
    empty = org_factory("Empty Team", parent=directory.engineering)
    client.force_login(directory.eng_admin)
    client.post(reverse("accounts:org_action", args=[empty.pk, "deactivate"]))
    empty.refresh_from_db()
    assert not empty.is_active
    client.post(reverse("accounts:org_action", args=[empty.pk, "reactivate"]))
    empty.refresh_from_db()
    assert empty.is_active


def test_delete_only_empty_orgs(client, directory, org_factory):
    client.force_login(directory.admin)
    response = client.post(reverse("accounts:org_action", args=[directory.engineering.pk, "delete"]), follow=True)
    assert any("org_has_children" in m for m in messages_of(response))
    response = client.post(reverse("accounts:org_action", args=[directory.sales.pk, "delete"]), follow=True)
    assert any("org_has_users" in m for m in messages_of(response))
    empty = org_factory("Empty", parent=directory.sales)
    response = client.post(reverse("accounts:org_action", args=[empty.pk, "delete"]))
    assert response["Location"] == reverse("accounts:org_detail", args=[directory.sales.pk])
    assert not Organization.objects.filter(pk=empty.pk).exists()


def test_unknown_org_action_is_404(client, directory):
    client.force_login(directory.admin)
    assert client.post(reverse("accounts:org_action", args=[directory.sales.pk, "explode"])).status_code == 404


# ---- settings -------------------------------------------------------------------------------


def _settings_data(**overrides):
    data = {"auth_inherit": "on", "auth_method": "local", "tfa_inherit": "on", "roles_inherit": "on"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_settings_show_inherited_values_and_source(client, directory, root_org):
    client.force_login(directory.admin)
    response = client.get(reverse("accounts:org_settings", args=[directory.platform.pk]))
    assert response.status_code == 200
    eff = response.context["eff"]
    assert eff.auth_method == AuthMethod.LOCAL and eff.auth_from == root_org
    html = response.content.decode()
    assert f"inherited from {root_org.name}" in html
    assert "Inherit from parent" in html


def test_override_two_factor_is_inherited_by_children(client, directory):
    client.force_login(directory.admin)
    response = client.post(reverse("accounts:org_settings", args=[directory.engineering.pk]),
                           _settings_data(tfa_inherit=None, two_factor_required="on"), follow=True)
    assert "Settings saved." in messages_of(response)
    assert "set here" in response.content.decode()
    child = client.get(reverse("accounts:org_settings", args=[directory.platform.pk]))
    assert child.context["eff"].two_factor_required is True
    assert child.context["eff"].two_factor_from == directory.engineering
    assert "inherited from Engineering" in child.content.decode()
    assert AuditEvent.objects.filter(action="org.settings_changed", field="two_factor_required").exists()


def test_override_default_roles(client, directory):
    client.force_login(directory.admin)
    console = Role.objects.get(slug="console-user")
    client.post(reverse("accounts:org_settings", args=[directory.sales.pk]),
                _settings_data(roles_inherit=None, default_roles=[console.pk]))
    directory.sales.refresh_from_db()
    assert not directory.sales.inherit_default_roles
    assert list(directory.sales.default_roles.all()) == [console]
    # Back to inheriting.
    client.post(reverse("accounts:org_settings", args=[directory.sales.pk]), _settings_data())
    directory.sales.refresh_from_db()
    assert directory.sales.inherit_default_roles


def test_sso_needs_a_provider(client, directory):
    client.force_login(directory.admin)
    response = client.post(reverse("accounts:org_settings", args=[directory.sales.pk]),
                           _settings_data(auth_inherit=None, auth_method="sso"))
    assert response.status_code == 200
    assert "sso_provider_required" in error_codes(response, "auth_provider")


def test_sso_with_enabled_provider(client, directory):
    idp = IdentityProvider.objects.create(name="Okta")
    IdentityProvider.objects.create(name="Disabled IdP", enabled=False)
    client.force_login(directory.admin)
    response = client.get(reverse("accounts:org_settings", args=[directory.sales.pk]))
    assert [p.name for p in response.context["form"].fields["auth_provider"].queryset] == ["Okta"]
    client.post(reverse("accounts:org_settings", args=[directory.sales.pk]),
                _settings_data(auth_inherit=None, auth_method="sso", auth_provider=idp.pk))
    directory.sales.refresh_from_db()
    assert directory.sales.auth_method == AuthMethod.SSO and directory.sales.auth_provider == idp
    response = client.get(reverse("accounts:org_detail", args=[directory.sales.pk]))
    assert "Single sign-on" in response.content.decode() and "Okta" in response.content.decode()


def test_root_settings_have_no_inherit_toggle(client, directory, root_org):
    client.force_login(directory.admin)
    response = client.get(reverse("accounts:org_settings", args=[root_org.pk]))
    assert "auth_inherit" not in response.context["form"].fields
    assert 'name="auth_inherit"' not in response.content.decode()
    response = client.post(reverse("accounts:org_settings", args=[root_org.pk]),
                           {"auth_method": "local", "two_factor_required": "on",
                            "default_roles": [r.pk for r in Role.objects.filter(slug="console-user")]})
    assert response.status_code == 302
    root_org.refresh_from_db()
    assert root_org.two_factor_required is True
