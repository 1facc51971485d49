"""Console pages: Identity management -> Provisioning."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import AuditEvent, Role
from provisioning.models import MappingRule, Source
from provisioning.rules import SourceRecord


@pytest.fixture
def ima_client(user_factory):
    """An Identity Management Administrator (manage_identity, not a Cloud Admin), own client."""
    other = Client()
    other.force_login(user_factory("ima", roles=["identity-management-administrator"]))
    return other


def test_pages_need_manage_identity(client, user_factory, source_factory):
    source = source_factory()
    client.force_login(user_factory("plain", roles=["console-user"]))
    for url in ("/provisioning/", f"/provisioning/sources/{source.pk}/", f"/provisioning/sources/{source.pk}/rules/",
                "/provisioning/sources/add/"):
        assert client.get(url).status_code == 403
    assert client.post(f"/provisioning/sources/{source.pk}/rules/", {"kind": "role"}).status_code == 403


def test_source_list_and_detail(admin_client, source_factory, linked_user):
    source = source_factory("Okta production")
    page = admin_client.get("/provisioning/")
    assert page.status_code == 200
    assert "Okta production" in page.content.decode()
    detail = admin_client.get(f"/provisioning/sources/{source.pk}/")
    assert detail.status_code == 200
    assert source.slug in detail.content.decode()
    assert admin_client.get("/provisioning/sources/999999/").status_code == 404


def test_add_source(admin_client, root_org):
    response = admin_client.post("/provisioning/sources/add/", {
        "name": "Corp AD", "slug": "corp-ad", "kind": "ldap", "enabled": "on", "adopt_by": "email",
        "org_mode": "fixed", "fixed_org": root_org.pk, "grace_minutes": "30",
    })
    source = Source.objects.get(slug="corp-ad")
    assert response.status_code == 302
    assert source.grace_period.total_seconds() == 1800
    assert AuditEvent.objects.filter(action="provisioning_source_created", target_id=str(source.pk)).exists()


def test_add_source_fixed_mode_without_org_shows_code(admin_client):
    response = admin_client.post("/provisioning/sources/add/", {
        "name": "X", "slug": "x", "kind": "scim", "adopt_by": "username", "org_mode": "fixed", "grace_minutes": "15",
    })
    assert response.status_code == 200
    assert 'data-code="fixed_org_required"' in response.content.decode()
    assert not Source.objects.exists()


def _rule_post(**fields):
    data = {"kind": "role", "position": "1", "condition": "member_of_group", "value": "Engineering"}
    data.update(fields)
    return data


def test_rules_editor_preview_then_save(admin_client, source_factory, linked_user):
    source = source_factory()
    linked_user(source, "ann", record=SourceRecord.build(groups=["Engineering"]))
    linked_user(source, "bob", record=SourceRecord.build(groups=["Sales"]))
    url = f"/provisioning/sources/{source.pk}/rules/"
    assert admin_client.get(url).status_code == 200
    preview = admin_client.post(url, _rule_post(roles=["help-desk"], preview="1"))
    body = preview.content.decode()
    assert preview.status_code == 200
    assert '<dd data-count="gain">1</dd>' in body
    assert 'data-sample="gain"' in body
    assert not MappingRule.objects.exists()
    saved = admin_client.post(url, _rule_post(roles=["help-desk"], save="1"))
    assert saved.status_code == 302
    rule = MappingRule.objects.get()
    assert list(rule.roles.values_list("slug", flat=True)) == ["help-desk"]
    current = admin_client.get(url + "?preview=current").content.decode()
    assert '<dd data-count="gain">1</dd>' in current


def test_admin_role_rule_refused_for_non_cloud_admin(ima_client, source_factory):
    source = source_factory()
    response = ima_client.post(f"/provisioning/sources/{source.pk}/rules/", _rule_post(roles=["org-admin"], save="1"))
    assert response.status_code == 200
    assert 'data-code="role_admin_needs_cloud_admin"' in response.content.decode()
    assert not MappingRule.objects.exists()


def test_regex_error_shown_on_value_field(admin_client, source_factory):
    source = source_factory()
    response = admin_client.post(f"/provisioning/sources/{source.pk}/rules/", _rule_post(
        kind="active", condition="attribute_matches", attribute="title", value=r"(a)\1", save="1"))
    assert 'data-code="regex_unsupported"' in response.content.decode()


def test_edit_and_delete_rule(admin_client, source_factory):
    source = source_factory()
    admin_client.post(f"/provisioning/sources/{source.pk}/rules/", _rule_post(roles=["help-desk"], save="1"))
    rule = MappingRule.objects.get()
    edit_url = f"/provisioning/sources/{source.pk}/rules/{rule.pk}/"
    assert 'value="Engineering"' in admin_client.get(edit_url).content.decode()
    admin_client.post(edit_url, _rule_post(value="Ops", roles=["desktop-user"], save="1"))
    rule.refresh_from_db()
    assert rule.value == "Ops"
    assert admin_client.get(f"/provisioning/sources/{source.pk}/rules/{rule.pk}/delete/").status_code == 405
    assert admin_client.post(f"/provisioning/sources/{source.pk}/rules/{rule.pk}/delete/").status_code == 302
    assert not MappingRule.objects.exists()
    assert AuditEvent.objects.filter(action="provisioning_rule_deleted").count() == 1


def test_non_cloud_admin_cannot_delete_admin_rule(ima_client, admin_client, source_factory):
    source = source_factory()
    admin_client.post(f"/provisioning/sources/{source.pk}/rules/", _rule_post(roles=["org-admin"], save="1"))
    rule = MappingRule.objects.get()
    response = ima_client.post(f"/provisioning/sources/{source.pk}/rules/{rule.pk}/delete/", follow=True)
    assert "rule_needs_cloud_admin" in response.content.decode()
    assert MappingRule.objects.filter(pk=rule.pk).exists()
    assert Role.objects.get(slug="org-admin") in rule.roles.all()


def test_nav_shows_provisioning(admin_client):
    assert 'href="/provisioning/"' in admin_client.get("/provisioning/").content.decode()
