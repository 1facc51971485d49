"""Metadata by URL (loopback HTTP server), refresh with a rotated certificate, SP metadata, SP keys."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from sso import keys, metadata
from sso.models import IdentityProvider
from sso.services import metadata_refresh, provider_save
from sso.tasks import refresh_all_metadata
from tests.sso.idp import TestIdP
from tests.sso.test_acs import failure, signed_in


def test_parse_shows_entity_endpoints_and_certs(idp):
    parsed = metadata.parse(idp.metadata())
    assert parsed.entity_id == idp.entity_id
    assert {s["location"] for s in parsed.sso} == {"https://idp.example.test/sso/redirect",
                                                   "https://idp.example.test/sso/post"}
    assert parsed.slo and len(parsed.certs) == 1
    assert parsed.certs[0].not_after > dt.datetime.now(dt.UTC)


def test_federation_metadata_needs_entity_id(idp):
    fed = ('<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">'
           + idp.metadata().split("?>")[-1]
           + idp.metadata().split("?>")[-1].replace(idp.entity_id, "https://two.example/idp")
           + "</md:EntitiesDescriptor>")
    with pytest.raises(metadata.MetadataError) as exc:
        metadata.parse(fed)
    assert exc.value.code == "metadata_ambiguous"
    assert metadata.parse(fed, entity_id="https://two.example/idp").entity_id == "https://two.example/idp"


@pytest.mark.parametrize("xml,code", [("<x", "metadata_malformed"), ("<a/>", "metadata_not_saml")])
def test_bad_metadata_refused_with_fix(xml, code):
    with pytest.raises(metadata.MetadataError) as exc:
        metadata.parse(xml)
    assert exc.value.code == code


def test_provider_by_url_fetches_now(db, metadata_server, idp, system_actor):
    metadata_server.document = idp.metadata()
    provider = provider_save(actor=system_actor, provider=IdentityProvider(name="By URL", metadata_url=metadata_server.url),
                             fetch=True)
    assert provider.entity_id == idp.entity_id and provider.metadata_fetched_at


def test_rotated_certificate_picked_up_without_restart(metadata_server, idp, saml_keys, system_actor, client,
                                                       sso_user, provider):
    """Refresh from the URL after the IdP rotated its key: old signatures fail, new ones pass, same process."""
    from tests.sso.conftest import AcsDriver

    metadata_server.document = idp.metadata()
    provider.metadata_url = metadata_server.url
    provider.save()
    acs = AcsDriver(client, provider, idp)
    signed_in(acs.login(), sso_user)
    client.logout()

    rotated = TestIdP(key_file=saml_keys["idp-rotated"][0], cert_file=saml_keys["idp-rotated"][1])
    failure(acs.login(idp=rotated), "bad_signature")
    metadata_server.document = rotated.metadata()
    assert refresh_all_metadata() == {"ok": 1, "failed": 0}
    provider.refresh_from_db()
    acs.provider = provider
    signed_in(acs.login(idp=rotated), sso_user)
    client.logout()
    failure(acs.login(), "bad_signature")


def test_refresh_failure_keeps_old_metadata(metadata_server, provider):
    provider.metadata_url = metadata_server.url
    provider.save()
    metadata_server.document = "<not-metadata/>"
    old = provider.metadata_xml
    assert metadata_refresh(provider=provider) is False
    provider.refresh_from_db()
    assert provider.metadata_xml == old and "not SAML" in provider.metadata_error


def test_tls_verification_is_on_by_default():
    assert IdentityProvider._meta.get_field("metadata_verify_tls").default is True


def test_sp_metadata_at_stable_url(client, provider):
    resp = client.get(f"/sso/{provider.pk}/metadata/")
    body = resp.content.decode()
    assert resp.status_code == 200
    assert f'entityID="http://testserver/sso/{provider.pk}/metadata/"' in body
    assert f"http://testserver/sso/{provider.pk}/acs/" in body
    assert 'AuthnRequestsSigned="true"' in body and 'WantAssertionsSigned="true"' in body


def test_sp_key_generated_once_and_next_key_published(settings, client, provider, tmp_path):
    settings.IDM_SSO_SP_KEY_FILE = settings.IDM_SSO_SP_CERT_FILE = ""
    first = keys.current_key()
    assert keys.current_key().pk == first.pk
    files = keys.signing_key_files()
    assert oct(__import__("os").stat(files.key_file).st_mode)[-3:] == "600"
    nxt = keys.add_next_key()
    body = client.get(f"/sso/{provider.pk}/metadata/").content.decode()
    assert body.count("X509Certificate>") >= 4  # two certificates (open + close tags)
    assert keys.promote_next_key().pk == nxt.pk and keys.current_key().pk == nxt.pk


def test_cert_expiry_warning(idp):
    summary = metadata.parse(idp.metadata()).summary()
    assert metadata.expiring_certs(summary, days=30) == []
    assert len(metadata.expiring_certs(summary, days=400)) == 1


# --- validUntil and supported sign-in bindings (accepted, but sign-in refuses the provider) ------------


def with_valid_until(xml: str, when: dt.datetime | str) -> str:
    stamp = when if isinstance(when, str) else when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return re.sub(r"(<\w*:?EntityDescriptor)", rf'\1 validUntil="{stamp}"', xml, count=1)


def without_supported_binding(xml: str) -> str:
    return re.sub(r'(SingleSignOnService Binding=)"[^"]+"', r'\1"urn:oasis:names:tc:SAML:2.0:bindings:SOAP"', xml)


def codes(summary: dict, xml: str = "", **kwargs) -> list[str]:
    return [w["code"] for w in metadata.metadata_warnings(summary, xml, **kwargs)]


def test_valid_until_recorded_and_warned_like_certificates(idp):
    now = dt.datetime.now(dt.UTC)
    assert metadata.parse(idp.metadata()).valid_until is None
    assert codes(metadata.parse(idp.metadata()).summary()) == []

    expired = metadata.parse(with_valid_until(idp.metadata(), "2001-01-01T00:00:00Z")).summary()
    assert expired["valid_until"] == "2001-01-01T00:00:00+00:00"
    [warning] = metadata.metadata_warnings(expired)
    assert warning["code"] == "metadata_expired" and warning["badge"] == "Metadata expired"
    assert warning["summary"] == ("This metadata expired on 2001-01-01 00:00 UTC; sign-in with this provider is "
                                  "refused until it is refreshed.")

    soon = metadata.parse(with_valid_until(idp.metadata(), now + dt.timedelta(days=10, hours=1))).summary()
    [warning] = metadata.metadata_warnings(soon)
    assert warning["code"] == "metadata_expiring" and warning["badge"] == "Metadata expires in 10 days"
    assert codes(soon, days=5) == []  # the window is IDM_SSO_CERT_EXPIRY_WARNING_DAYS unless given

    later = metadata.parse(with_valid_until(idp.metadata(), now + dt.timedelta(days=400))).summary()
    assert codes(later) == [] and codes(later, days=500) == ["metadata_expiring"]


def test_expiry_window_is_the_certificate_setting(settings, idp):
    summary = metadata.parse(with_valid_until(idp.metadata(),
                                              dt.datetime.now(dt.UTC) + dt.timedelta(days=45))).summary()
    assert codes(summary) == []
    settings.IDM_SSO_CERT_EXPIRY_WARNING_DAYS = 60
    assert codes(summary) == ["metadata_expiring"]


def test_valid_until_pysaml2_cannot_read_is_ignored_as_pysaml2_does(idp):
    """pysaml2 only reads UTC stamps (``Z``, optional fraction); it ignores others, so sign-in works."""
    assert metadata.parse(with_valid_until(idp.metadata(), "2001-01-01T00:00:00.5Z")).valid_until is not None
    assert metadata.parse(with_valid_until(idp.metadata(), "2001-01-01T00:00:00+01:00")).valid_until is None


def test_no_supported_sign_in_binding_warned(idp):
    summary = metadata.parse(without_supported_binding(idp.metadata())).summary()
    [warning] = metadata.metadata_warnings(summary)
    assert warning["code"] == "metadata_no_binding" and "no supported sign-in binding" in warning["summary"]
    # One usable binding is enough (idm falls back to HTTP-POST).
    post_only = re.sub(r'<\w*:?SingleSignOnService Binding="[^"]+HTTP-Redirect"[^>]*/>', "", idp.metadata())
    assert codes(metadata.parse(post_only).summary()) == []


def test_no_warnings_without_metadata():
    assert metadata.metadata_warnings({}, "") == []


def test_summary_stored_before_valid_until_reads_the_stored_xml(idp):
    xml = with_valid_until(idp.metadata(), "2001-01-01T00:00:00Z")
    legacy = metadata.parse(xml).summary()
    del legacy["valid_until"]
    assert codes(legacy, xml) == ["metadata_expired"]


def test_expired_metadata_is_stored_and_warned_on_refresh(metadata_server, provider, idp):
    provider.metadata_url = metadata_server.url
    provider.save()
    metadata_server.document = with_valid_until(idp.metadata(), "2001-01-01T00:00:00Z")
    assert metadata_refresh(provider=provider) is True
    provider.refresh_from_db()
    assert provider.metadata_error == "" and 'validUntil="2001-01-01T00:00:00Z"' in provider.metadata_xml
    assert codes(provider.metadata_summary, provider.metadata_xml) == ["metadata_expired"]
