"""Console pages for identity providers (Identity management -> Authentication)."""

from __future__ import annotations

import datetime as dt

from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import AuditEvent
from sso.models import IdentityProvider
from tests.sso.test_metadata import with_valid_until, without_supported_binding


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


# --- metadata that is accepted but unusable for sign-in: expired validUntil, no supported binding ------


def _upload(admin_client, xml: str, name: str = "Okta", pk: int | None = None):
    upload = {"metadata_file": SimpleUploadedFile("idp.xml", xml.encode(), content_type="text/xml")} if xml else {}
    url = f"/sso/providers/{pk}/edit/" if pk else "/sso/providers/add/"
    return admin_client.post(url, {
        **upload, "name": name, "enabled": "on", "use_default_mapping": "on",
        "authn_context_class": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password", "authn_context_comparison": "exact",
        "digest_algorithm": "http://www.w3.org/2001/04/xmlenc#sha256",
        "signature_algorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "sign_authn_requests": "on",
        "clock_skew_seconds": "60", "metadata_verify_tls": "on",
    }, follow=True)


def _messages(resp) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in resp.context["messages"]]


def test_upload_of_expired_metadata_is_accepted_with_a_warning(admin_client, idp, client):
    resp = _upload(admin_client, with_valid_until(idp.metadata(), "2001-01-01T00:00:00Z"))
    provider = IdentityProvider.objects.get(name="Okta")
    assert resp.redirect_chain == [(f"/sso/providers/{provider.pk}/", 302)]
    assert _messages(resp) == [("warning", "Saved Okta. This metadata expired on 2001-01-01 00:00 UTC; sign-in "
                                           "with this provider is refused until it is refreshed.")]
    body = resp.content.decode()
    assert 'data-metadata-warning="metadata_expired"' in body and "refresh or re-upload it" in body
    body = admin_client.get("/sso/providers/").content.decode()
    assert 'data-metadata-warning="metadata_expired"' in body and "Metadata expired" in body
    # What the warning promises: sign-in is refused.
    assert 'data-sso-error="provider_unusable"' in client.get(f"/sso/{provider.pk}/login/").content.decode()

    # A current document clears the warning.
    resp = _upload(admin_client, idp.metadata(), pk=provider.pk)
    assert _messages(resp) == [("success", "Saved Okta.")]
    assert "data-metadata-warning" not in resp.content.decode()
    assert "data-metadata-warning" not in admin_client.get("/sso/providers/").content.decode()


def test_upload_without_supported_binding_is_accepted_with_a_warning(admin_client, idp):
    resp = _upload(admin_client, without_supported_binding(idp.metadata()))
    [(level, message)] = _messages(resp)
    assert level == "warning" and "no supported sign-in binding" in message
    assert 'data-metadata-warning="metadata_no_binding"' in resp.content.decode()
    assert "No supported sign-in binding" in admin_client.get("/sso/providers/").content.decode()


def test_metadata_close_to_valid_until_warned_ahead(admin_client, idp):
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=3, hours=1)
    resp = _upload(admin_client, with_valid_until(idp.metadata(), soon))
    [(level, message)] = _messages(resp)
    assert level == "warning" and f"expires on {soon:%Y-%m-%d %H:%M} UTC (in 3 days)" in message
    assert 'data-metadata-warning="metadata_expiring"' in resp.content.decode()
    assert "Metadata expires in 3 days" in admin_client.get("/sso/providers/").content.decode()


def test_refresh_to_expired_metadata_warns(admin_client, metadata_server, provider, idp):
    provider.metadata_url = metadata_server.url
    provider.save()
    metadata_server.document = idp.metadata()
    resp = admin_client.post(f"/sso/providers/{provider.pk}/refresh/", follow=True)
    assert _messages(resp) == [("success", "Metadata refreshed.")]
    metadata_server.document = with_valid_until(idp.metadata(), "2001-01-01T00:00:00Z")
    resp = admin_client.post(f"/sso/providers/{provider.pk}/refresh/", follow=True)
    assert _messages(resp) == [("warning", "Metadata refreshed. This metadata expired on 2001-01-01 00:00 UTC; "
                                           "sign-in with this provider is refused until it is refreshed.")]
    assert 'data-metadata-warning="metadata_expired"' in resp.content.decode()


def test_plain_edit_does_not_repeat_the_warning_as_a_message(admin_client, idp):
    """Saving other settings of a provider with expired metadata: the banner says it, not a flash message."""
    _upload(admin_client, with_valid_until(idp.metadata(), "2001-01-01T00:00:00Z"))
    provider = IdentityProvider.objects.get(name="Okta")
    resp = _upload(admin_client, "", name="Okta 2", pk=provider.pk)
    assert _messages(resp) == [("success", "Saved Okta 2.")]
    assert 'data-metadata-warning="metadata_expired"' in resp.content.decode()
