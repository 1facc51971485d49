"""Guided identity provider setup: name -> idm's SP values -> the IdP's metadata -> test sign-in.

The test sign-in goes through the real ACS view with a signed response from the test IdP; it shows
what the IdP asserted and how it maps, and signs nobody in.
"""

from __future__ import annotations

import requests
from django.contrib.auth import SESSION_KEY
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import AuditEvent
from sso.config import acs_url, sp_entity_id
from sso.console_errors import plain_metadata_error
from sso.metadata import MetadataError
from sso.models import IdentityProvider
from tests.sso.conftest import TestIdP, authn_request_id


def _start(admin_client) -> IdentityProvider:
    response = admin_client.post(reverse("sso:provider_setup_start"), {"name": "Okta"})
    provider = IdentityProvider.objects.get(name="Okta")
    assert response.status_code == 302 and response["Location"] == reverse("sso:provider_setup", args=[provider.pk])
    return provider


def test_step_1_creates_a_provider_that_is_off_and_shows_idms_values(admin_client):
    provider = _start(admin_client)
    assert not provider.enabled and not provider.metadata_xml
    assert AuditEvent.objects.filter(action="sso.provider_created", target_label="Okta").exists()
    html = admin_client.get(reverse("sso:provider_setup", args=[provider.pk])).content.decode()
    for value in (sp_entity_id(provider), acs_url(provider)):
        assert value in html
    assert 'data-copy="sp-entity-id"' in html and 'data-copy="sp-acs-url"' in html
    # Its SP metadata is already published, before the IdP's metadata exists.
    metadata = admin_client.get(reverse("sso:metadata", args=[provider.pk]))
    assert metadata.status_code == 200 and acs_url(provider).encode() in metadata.content
    # Not offered to organizations while it is off.
    from accounts.models import Organization
    root = Organization.objects.get(parent__isnull=True)
    assert 'value="sso"' not in admin_client.get(reverse("accounts:org_settings", args=[root.pk])).content.decode()


def test_step_1_name_errors_are_shown(admin_client, provider):
    response = admin_client.post(reverse("sso:provider_setup_start"), {"name": provider.name})
    assert response.status_code == 200 and 'data-code="unique"' in response.content.decode()
    assert admin_client.post(reverse("sso:provider_setup_start"), {"name": ""}).status_code == 200


def test_step_3_loads_metadata_turns_on_and_goes_to_the_test(admin_client, idp):
    provider = _start(admin_client)
    upload = SimpleUploadedFile("idp.xml", idp.metadata().encode(), content_type="text/xml")
    response = admin_client.post(reverse("sso:provider_setup", args=[provider.pk]),
                                 {"metadata_file": upload, "metadata_verify_tls": "on"})
    assert response.status_code == 302 and response["Location"] == reverse("sso:provider_test", args=[provider.pk])
    provider.refresh_from_db()
    assert provider.enabled and provider.entity_id == idp.entity_id


def test_step_3_bad_metadata_is_a_plain_sentence(admin_client):
    provider = _start(admin_client)
    response = admin_client.post(reverse("sso:provider_setup", args=[provider.pk]),
                                 {"metadata_file": SimpleUploadedFile("m.xml", b"<a><b></a>")})
    html = response.content.decode()
    assert response.status_code == 200 and 'data-code="metadata_malformed"' in html
    assert "The metadata is not well-formed XML." in html and "mismatched tag" not in html
    provider.refresh_from_db()
    assert not provider.enabled


def test_fetch_errors_read_as_sentences_without_exception_text():
    def chained(code: str, cause: Exception) -> MetadataError:
        try:
            try:
                raise cause
            except Exception as inner:
                raise MetadataError(code, f"Could not download the metadata: {inner}.") from inner
        except MetadataError as exc:
            return exc

    refused = chained("metadata_fetch", requests.ConnectionError(
        "HTTPSConnectionPool(host='idp.example', port=443): Max retries exceeded (Caused by NewConnectionError)"))
    text = plain_metadata_error(refused, url="https://idp.example/metadata")
    assert text.startswith("idm could not connect to idp.example.") and "Pool" not in text
    not_found = requests.HTTPError("404 Client Error")
    not_found.response = requests.Response()
    not_found.response.status_code = 404
    assert plain_metadata_error(chained("metadata_fetch", not_found), url="https://idp.example/m").startswith(
        "idp.example answered HTTP 404")
    assert "did not answer in time" in plain_metadata_error(chained("metadata_fetch", requests.ReadTimeout("x")))
    assert "TLS certificate of idp.example" in plain_metadata_error(
        chained("metadata_tls", requests.exceptions.SSLError("CERTIFICATE_VERIFY_FAILED")), url="https://idp.example/")
    plain = MetadataError("metadata_no_sso", "The IdP metadata lists no SingleSignOnService endpoint.")
    assert plain_metadata_error(plain) == "The IdP metadata lists no SingleSignOnService endpoint."


def _test_sign_in(admin_client, provider, idp, **response_kwargs):
    start = admin_client.post(reverse("sso:provider_test", args=[provider.pk]))
    assert start.status_code == 302, start.content[:300]
    request_id = authn_request_id(start["Location"])
    xml = idp.response_xml(sp_entity_id=sp_entity_id(provider), acs_url=acs_url(provider),
                           in_response_to=request_id, **response_kwargs)
    return admin_client.post(reverse("sso:acs", args=[provider.pk]), {"SAMLResponse": TestIdP.encode(xml)})


def test_test_sign_in_shows_assertion_and_mapping_and_signs_nobody_in(admin_client, admin_user, provider, idp,
                                                                     sso_user):
    response = _test_sign_in(admin_client, provider, idp, name_id="alice",
                             attributes={"mail": ["alice@corp.example"], "givenName": ["Alice"], "sn": ["Liddell"],
                                         "department": ["R&D"]})
    result_url = reverse("sso:provider_test_result", args=[provider.pk])
    assert response.status_code == 200 and f'content="0;url={result_url}"' in response.content.decode()
    assert str(admin_client.session[SESSION_KEY]) == str(admin_user.pk)  # still the admin
    html = admin_client.get(result_url).content.decode()
    assert 'data-test-result="ok"' in html
    assert "alice would be signed in (found by username and would be linked)." in html
    assert "<code>department</code></td><td>R&amp;D</td>" in html
    assert "<td>Email</td><td><code>mail</code></td><td>alice@corp.example</td>" in html
    assert not sso_user.external_identities.exists()  # a test links nobody
    event = AuditEvent.objects.get(action="sso.test_sign_in")
    assert event.new_value["name_id"] == "alice" and event.new_value["ok"] is True
    assert not AuditEvent.objects.filter(action="auth.sso_login_succeeded").exists()


def test_test_sign_in_explains_a_refusal(admin_client, provider, idp):
    _test_sign_in(admin_client, provider, idp, name_id="nobody")
    html = admin_client.get(reverse("sso:provider_test_result", args=[provider.pk])).content.decode()
    assert 'data-test-result="refused"' in html and 'data-code="unknown_user"' in html
    assert "No idm user is named nobody" in html


def test_test_sign_in_response_is_validated_like_a_real_one(admin_client, provider, idp, attacker_idp):
    response = _test_sign_in(admin_client, provider, attacker_idp, name_id="alice")
    assert response.status_code >= 400
    assert not AuditEvent.objects.filter(action="sso.test_sign_in").exists()


def test_test_result_needs_manage_identity_and_the_admins_own_test(client, admin_client, provider, idp,
                                                                  user_factory):
    _test_sign_in(admin_client, provider, idp, name_id="alice")
    other_admin = user_factory("other.admin", roles=["customer-cloud-admin"])
    client.force_login(other_admin)
    response = client.get(reverse("sso:provider_test_result", args=[provider.pk]))
    assert response.status_code == 302  # no test of theirs: back to the test page
    member = user_factory("plain.member")
    client.force_login(member)
    assert client.get(reverse("sso:provider_test_result", args=[provider.pk])).status_code == 403
    assert client.post(reverse("sso:provider_test", args=[provider.pk])).status_code == 403
