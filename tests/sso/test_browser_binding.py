"""Issue 7 §4: a response signs in only the browser that started its AuthnRequest (login CSRF).

Each test client is one browser (its own cookie jar); responses are signed by the pysaml2 IdP and
posted to the real ACS view.
"""

from __future__ import annotations

import re

from django.contrib.auth import SESSION_KEY
from django.test import Client

from accounts.models import AuditEvent
from sso import binding
from tests.sso.conftest import AcsDriver, authn_request_id
from tests.sso.test_acs import failure, signed_in


def _other_browser(provider, idp) -> AcsDriver:
    return AcsDriver(Client(), provider, idp)


def test_login_start_sets_short_lived_cross_site_cookie(acs, settings):
    resp = acs.client.get(f"/sso/{acs.provider.pk}/login/")
    cookie = resp.cookies["idm_sso_browser"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", cookie.value)
    assert cookie["httponly"] is True and cookie["secure"] is True
    assert cookie["samesite"] == "None"
    assert cookie["path"] == "/"
    assert int(cookie["max-age"]) == 900
    settings.IDM_SSO_REQUEST_TTL = 120
    assert int(acs.client.get(f"/sso/{acs.provider.pk}/login/").cookies["idm_sso_browser"]["max-age"]) == 120


def test_https_base_url_uses_host_prefixed_cookie(acs, settings):
    settings.IDM_BASE_URL = "https://idm.example.test"
    resp = acs.client.get(f"/sso/{acs.provider.pk}/login/")
    assert "__Host-idm_sso_browser" in resp.cookies and "idm_sso_browser" not in resp.cookies


def test_response_posted_from_another_browser_is_refused(acs, sso_user, provider, idp):
    xml = acs.xml()  # browser A started the request
    victim = _other_browser(provider, idp)
    resp = victim.post_xml(xml)
    assert resp.status_code == 403
    event = failure(resp, "other_browser")
    assert "started in another browser" in resp.content.decode()
    assert event.target_label == "alice"
    assert "browser token" in event.message
    assert not AuditEvent.objects.filter(action="auth.sso_login_succeeded").exists()


def test_response_to_a_request_of_a_browser_with_its_own_token_is_refused(acs, sso_user, provider, idp):
    attacker_xml = acs.xml()
    victim = _other_browser(provider, idp)
    victim.start()  # the victim holds a token of its own, for its own request
    failure(victim.post_xml(attacker_xml), "other_browser")


def test_refused_request_cannot_be_retried_in_either_browser(acs, sso_user, provider, idp):
    xml = acs.xml()
    failure(_other_browser(provider, idp).post_xml(xml), "other_browser")
    failure(acs.post_xml(xml), "unknown_in_response_to")  # consumed by the refused attempt


def test_forged_or_missing_cookie_is_refused(acs, sso_user):
    xml = acs.xml()
    acs.client.cookies["idm_sso_browser"] = "A" * 43
    failure(acs.post_xml(xml), "other_browser")
    xml = acs.xml()
    del acs.client.cookies["idm_sso_browser"]
    failure(acs.post_xml(xml), "other_browser")


def test_same_browser_signs_in_and_parallel_tabs_keep_one_token(acs, sso_user):
    first = acs.client.get(f"/sso/{acs.provider.pk}/login/")
    second = acs.client.get(f"/sso/{acs.provider.pk}/login/")
    assert first.cookies["idm_sso_browser"].value == second.cookies["idm_sso_browser"].value
    signed_in(acs.post_xml(acs.xml(in_response_to=authn_request_id(first["Location"]))), sso_user)
    acs.client.logout()  # the test client's logout also forgets every cookie; a browser keeps this one
    acs.client.cookies["idm_sso_browser"] = first.cookies["idm_sso_browser"].value
    signed_in(acs.post_xml(acs.xml(in_response_to=authn_request_id(second["Location"]))), sso_user)


def test_malformed_cookie_is_replaced_not_reused(acs):
    acs.client.cookies["idm_sso_browser"] = "short;"
    resp = acs.client.get(f"/sso/{acs.provider.pk}/login/")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", resp.cookies["idm_sso_browser"].value)


def test_idp_initiated_response_without_in_response_to_is_accepted_from_any_browser(acs, sso_user, provider, idp):
    provider.allow_idp_initiated = True
    provider.save()
    other = _other_browser(provider, idp)
    signed_in(other.post_xml(acs.xml(in_response_to=None)), sso_user)


def test_idp_initiated_on_still_binds_solicited_responses(acs, sso_user, provider, idp):
    provider.allow_idp_initiated = True
    provider.save()
    failure(_other_browser(provider, idp).post_xml(acs.xml()), "other_browser")


def test_stripping_in_response_to_does_not_turn_a_solicited_response_into_an_unsolicited_one(
        acs, sso_user, provider, idp):
    """The Response's InResponseTo is outside the assertion signature: removing it must not bypass the binding."""
    provider.allow_idp_initiated = True
    provider.save()
    request_id = acs.start()

    def strip(xml: str) -> str:
        return xml.replace(f' InResponseTo="{request_id}"', "", 1)  # the Response's (first) one only

    xml = acs.xml(in_response_to=request_id, tamper=strip)
    assert f'InResponseTo="{request_id}"' in xml  # still in the signed SubjectConfirmationData
    resp = _other_browser(provider, idp).post_xml(xml)
    failure(resp, "in_response_to_mismatch")
    assert SESSION_KEY not in resp.wsgi_request.session


def test_token_hash_not_token_is_stored(acs):
    from sso import replay

    resp = acs.client.get(f"/sso/{acs.provider.pk}/login/")
    token = resp.cookies["idm_sso_browser"].value
    pending = replay.consume_request(provider_id=acs.provider.pk, request_id=authn_request_id(resp["Location"]))
    assert pending["browser"] == binding.token_hash(token) and token not in str(pending)
