"""The ACS view end to end: signed responses from a pysaml2 IdP, every validation case of issue 4."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import SESSION_KEY

from accounts.models import AuditEvent, ExternalIdentity
from tests.sso.idp import shift_times


def failure(resp, code: str):
    """Assert a friendly refusal: 4xx, our template, a reference id, no session, an audit event."""
    assert 400 <= resp.status_code < 500, resp.status_code
    body = resp.content.decode()
    assert f'data-sso-error="{code}"' in body, body[:2000]
    assert "Reference:" in body
    assert SESSION_KEY not in resp.wsgi_request.session
    event = AuditEvent.objects.filter(action="auth.sso_login_failed").first()
    assert event is not None and event.new_value["reason"] == code
    return event


def signed_in(resp, user):
    assert resp.status_code == 302, resp.content.decode()[:2000]
    assert str(resp.wsgi_request.session[SESSION_KEY]) == str(user.pk)


def test_valid_response_signs_in_links_and_audits(acs, sso_user, provider):
    resp = acs.login()
    signed_in(resp, sso_user)
    assert resp["Location"] == "/"
    link = ExternalIdentity.objects.get(user=sso_user)
    assert (link.source, link.provider, link.external_id) == ("saml", str(provider.pk), "alice")
    event = AuditEvent.objects.get(action="auth.sso_login_succeeded")
    assert event.new_value["provider"] == provider.name and event.target_label == "alice"


def test_return_path_is_kept_server_side(acs, sso_user):
    request_id = acs.start(next_path="/users/?q=x")
    resp = acs.post_xml(acs.xml(in_response_to=request_id), relay_state="https://evil.example/")
    signed_in(resp, sso_user)
    assert resp["Location"] == "/users/?q=x"


@pytest.mark.parametrize("next_path", ["https://evil.example/", "//evil.example/x", "/\\evil.example"])
def test_login_refuses_foreign_return_paths(acs, sso_user, next_path):
    request_id = acs.start(next_path=next_path)
    resp = acs.post_xml(acs.xml(in_response_to=request_id))
    signed_in(resp, sso_user)
    assert resp["Location"] == "/"


def test_unsigned_response_and_assertion_refused(acs, sso_user):
    failure(acs.login(sign=False), "unsigned_assertion")


def test_signed_response_with_unsigned_assertion_refused(acs, sso_user):
    failure(acs.login(sign=False, sign_response=True), "unsigned_assertion")


def test_sha1_refused_by_default(acs, sso_user):
    failure(acs.login(legacy_sha1=True), "weak_algorithm")


def test_sha1_accepted_with_legacy_opt_in(acs, sso_user, provider):
    provider.allow_legacy_algorithms = True
    provider.save()
    signed_in(acs.login(legacy_sha1=True), sso_user)


def test_md5_refused_even_with_legacy_opt_in(acs, sso_user, provider):
    provider.allow_legacy_algorithms = True
    provider.save()
    md5 = "http://www.w3.org/2001/04/xmldsig-more#md5"
    xml = acs.xml().replace("http://www.w3.org/2001/04/xmlenc#sha256", md5)
    failure(acs.post_xml(xml), "weak_algorithm")


def test_signature_by_key_not_in_metadata_refused(acs, sso_user, attacker_idp):
    failure(acs.login(idp=attacker_idp), "bad_signature")


def test_tampered_signed_assertion_refused(acs, sso_user, sso_user_factory):
    sso_user_factory("mallory")
    xml = acs.xml(name_id="mallory").replace(">mallory<", ">alice<")
    failure(acs.post_xml(xml), "bad_signature")


def _evil_copy(assertion: str, name_id: str) -> str:
    import re

    evil = re.sub(r"<ns2:Signature.*?</ns2:Signature>", "", assertion, flags=re.S)
    evil = re.sub(r'ID="[^"]+"', 'ID="id-evil"', evil, count=1)
    return re.sub(r">alice<", f">{name_id}<", evil)


def _assertion(xml: str) -> tuple[int, int]:
    start = xml.index("<ns1:Assertion")
    end = xml.index("</ns1:Assertion>") + len("</ns1:Assertion>")
    return start, end


def test_xsw_second_unsigned_assertion_refused(acs, sso_user, admin_user):
    xml = acs.xml()
    start, end = _assertion(xml)
    evil = _evil_copy(xml[start:end], "admin")
    for variant in (xml[:start] + evil + xml[start:], xml[:end] + evil + xml[end:]):
        failure(acs.post_xml(variant), "signature_wrapping")
        AuditEvent.objects.all()  # (events accumulate; failure() reads the newest)


def test_xsw_signed_assertion_moved_refused(acs, sso_user, admin_user):
    xml = acs.xml()
    start, end = _assertion(xml)
    signed = xml[start:end]
    evil = _evil_copy(signed, "admin")
    # The signed assertion hidden in an Extensions element; an unsigned one where the SP looks.
    moved = (xml[:start] + '<ns0:Extensions>' + signed + '</ns0:Extensions>' + evil + xml[end:])
    failure(acs.post_xml(moved), "signature_wrapping")
    # ...or nested inside the evil assertion (Advice-style wrapping).
    nested = xml[:start] + evil.replace("</ns1:Assertion>", signed + "</ns1:Assertion>") + xml[end:]
    failure(acs.post_xml(nested), "signature_wrapping")


def test_nameid_comment_injection_refused(acs, sso_user_factory):
    """The IdP signed ``admin@example.com.evil.com``; exclusive c14n ignores comments, so the signature
    still verifies with a comment inserted. We must neither truncate to admin@example.com nor accept."""
    admin = sso_user_factory("admin@example.com", email="admin@example.com")
    xml = acs.xml(name_id="admin@example.com.evil.com")
    injected = xml.replace(">admin@example.com.evil.com<", ">admin@example.com<!---->.evil.com<")
    assert injected != xml
    resp = acs.post_xml(injected)
    failure(resp, "comment_in_assertion")
    assert not ExternalIdentity.objects.filter(user=admin).exists()


def test_wrong_audience_refused(acs, sso_user):
    failure(acs.login(audience="https://other-sp.example/metadata"), "wrong_audience")


def test_wrong_recipient_refused(acs, sso_user):
    def tamper(xml: str) -> str:
        return xml.replace(f'Recipient="{acs.acs}"', 'Recipient="https://other-sp.example/acs"')

    failure(acs.login(tamper=tamper), "wrong_recipient")


def test_wrong_destination_refused(acs, sso_user):
    def tamper(xml: str) -> str:
        return xml.replace(f'Destination="{acs.acs}"', 'Destination="https://other-sp.example/acs"')

    failure(acs.login(tamper=tamper), "wrong_destination")


def test_expired_assertion_refused(acs, sso_user):
    failure(acs.login(tamper=lambda x: shift_times(x, -dt.timedelta(minutes=10))), "expired")


def test_not_yet_valid_assertion_refused(acs, sso_user):
    failure(acs.login(tamper=lambda x: shift_times(x, dt.timedelta(minutes=10))), "not_yet_valid")


def test_small_clock_skew_tolerated_and_configurable(acs, sso_user, provider):
    ahead = dt.timedelta(seconds=40)
    signed_in(acs.login(tamper=lambda x: shift_times(x, ahead)), sso_user)
    acs.client.logout()
    provider.clock_skew_seconds = 5
    provider.save()
    failure(acs.login(tamper=lambda x: shift_times(x, ahead)), "not_yet_valid")


def test_replayed_response_refused(acs, sso_user):
    xml = acs.xml()
    signed_in(acs.post_xml(xml), sso_user)
    acs.client.logout()
    failure(acs.post_xml(xml), "unknown_in_response_to")


def test_replayed_idp_initiated_response_refused(acs, sso_user, provider):
    provider.allow_idp_initiated = True
    provider.save()
    xml = acs.xml(in_response_to=None)
    signed_in(acs.post_xml(xml), sso_user)
    acs.client.logout()
    failure(acs.post_xml(xml), "replayed")


def test_replay_refused_with_a_fresh_request_id_reused_assertion(acs, sso_user):
    """A captured assertion re-wrapped in a new (unsigned) response to a new request is still a replay."""
    xml = acs.xml()
    signed_in(acs.post_xml(xml), sso_user)
    acs.client.logout()
    old_irt = xml.split('InResponseTo="', 1)[1].split('"', 1)[0]
    new_irt = acs.start()
    # Only the (unsigned) Response's InResponseTo can be changed; the signed confirmation still names
    # the old request, so the mismatch is refused before the replay check is even reached.
    failure(acs.post_xml(xml.replace(old_irt, new_irt, 1)), "in_response_to_mismatch")


def test_unknown_in_response_to_refused(acs, sso_user):
    failure(acs.login(in_response_to="id-never-sent"), "unknown_in_response_to")


def test_in_response_to_of_another_provider_refused(acs, sso_user, provider_factory, idp, client):
    other = provider_factory("Other IdP", metadata=idp.metadata().replace(idp.entity_id, "https://other.example/idp"))
    resp = client.get(f"/sso/{other.pk}/login/")
    from tests.sso.conftest import authn_request_id

    failure(acs.login(in_response_to=authn_request_id(resp["Location"])), "unknown_in_response_to")


def test_idp_initiated_off_by_default(acs, sso_user):
    failure(acs.login(in_response_to=None), "unsolicited")


def test_idp_initiated_opt_in_with_local_relay_state_only(acs, sso_user, provider):
    provider.allow_idp_initiated = True
    provider.save()
    resp = acs.login(in_response_to=None, relay_state="https://evil.example/")
    signed_in(resp, sso_user)
    assert resp["Location"] == "/"
    acs.client.logout()
    resp = acs.login(in_response_to=None, relay_state="/orgs/")
    signed_in(resp, sso_user)
    assert resp["Location"] == "/orgs/"


def test_idp_initiated_still_refuses_unknown_in_response_to(acs, sso_user, provider):
    provider.allow_idp_initiated = True
    provider.save()
    failure(acs.login(in_response_to="id-never-sent"), "unknown_in_response_to")


def test_disabled_provider_refused(acs, sso_user, provider):
    xml = acs.xml()
    provider.enabled = False
    provider.save()
    failure(acs.post_xml(xml), "provider_disabled")


def test_disabled_provider_login_refused(acs, provider):
    provider.enabled = False
    provider.save()
    resp = acs.client.get(f"/sso/{provider.pk}/login/")
    assert resp.status_code == 403 and b'data-sso-error="provider_disabled"' in resp.content


@pytest.mark.parametrize("payload", ["%%%not-base64%%%", "PHNhbWxwOlJlc3BvbnNl", "PD94bWwgdmVyc2lvbj0iMS4wIj8+PGE+",
                                     "PCFET0NUWVBFIGEgWzwhRU5USVRZIHggInkiPl0+PGE+Jng7PC9hPg=="])
def test_malformed_base64_or_xml_refused(acs, sso_user, payload):
    resp = acs.client.post(f"/sso/{acs.provider.pk}/acs/", {"SAMLResponse": payload})
    failure(resp, "malformed")


def test_missing_saml_response_refused(acs):
    resp = acs.client.post(f"/sso/{acs.provider.pk}/acs/", {})
    failure(resp, "missing_response")


def test_response_from_wrong_issuer_refused(acs, sso_user):
    xml = acs.xml().replace(acs.idp.entity_id, "https://evil.example/idp")
    failure(acs.post_xml(xml), "wrong_issuer")


def test_unknown_provider_is_404_page(db, client):
    resp = client.post("/sso/999999/acs/", {"SAMLResponse": "x"})
    assert resp.status_code == 404 and b"data-sso-error" in resp.content
