"""Console pages for identity providers (Identity management -> Authentication)."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import AuditEvent
from sso.models import IdentityProvider


def test_pages_need_manage_identity(client, user_factory, provider):
    user = user_factory("plain")
    client.force_login(user)
    assert client.get("/sso/providers/").status_code == 403
    assert client.get(f"/sso/providers/{provider.pk}/").status_code == 403


def test_list_and_detail_show_metadata_facts(admin_client, provider, sso_org):
    body = admin_client.get("/sso/providers/").content.decode()
    assert provider.name in body and provider.entity_id in body
    body = admin_client.get(f"/sso/providers/{provider.pk}/").content.decode()
    assert "https://idp.example.test/sso/redirect" in body
    assert "CN=test idp" in body and "SSO Org" in body
    assert f"/sso/{provider.pk}/metadata/" in body


def test_add_provider_by_upload(admin_client, idp):
    upload = SimpleUploadedFile("idp.xml", idp.metadata().encode(), content_type="text/xml")
    resp = admin_client.post("/sso/providers/add/", {
        "name": "Okta", "enabled": "on", "metadata_file": upload, "use_default_mapping": "on",
        "authn_context_class": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password", "authn_context_comparison": "exact",
        "digest_algorithm": "http://www.w3.org/2001/04/xmlenc#sha256",
        "signature_algorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "sign_authn_requests": "on",
        "clock_skew_seconds": "60", "metadata_verify_tls": "on",
    })
    assert resp.status_code == 302, resp.content.decode()[:3000]
    provider = IdentityProvider.objects.get(name="Okta")
    assert provider.entity_id == idp.entity_id
    assert AuditEvent.objects.filter(action="sso.provider_created", target_label="Okta").exists()


def test_bad_metadata_shows_fix(admin_client):
    upload = SimpleUploadedFile("idp.xml", b"<nope/>", content_type="text/xml")
    resp = admin_client.post("/sso/providers/add/", {"name": "Bad", "metadata_file": upload, "clock_skew_seconds": "60",
                                                      "authn_context_comparison": "exact",
                                                      "digest_algorithm": "http://www.w3.org/2001/04/xmlenc#sha256",
                                                      "signature_algorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"})
    assert resp.status_code == 200 and b"metadata_not_saml" in resp.content


def test_delete_refused_while_orgs_use_it(admin_client, provider, sso_org):
    resp = admin_client.post(f"/sso/providers/{provider.pk}/delete/")
    assert resp.status_code == 302 and IdentityProvider.objects.filter(pk=provider.pk).exists()


def test_break_glass_edit(admin_client, provider, sso_user):
    resp = admin_client.post(f"/sso/providers/{provider.pk}/break-glass/", {"usernames": "alice\n"})
    assert resp.status_code == 302
    assert list(provider.break_glass_users.all()) == [sso_user]
