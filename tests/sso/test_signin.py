"""Two-step sign-in page, password refusal for SSO users, break-glass users, sign-out."""

from __future__ import annotations

from django.contrib.auth import SESSION_KEY, authenticate

from tests.conftest import TEST_PASSWORD
from tests.sso.conftest import authn_request_id


def test_username_step_redirects_sso_user_to_idp(client, sso_user, provider):
    resp = client.post("/sso/signin/", {"username": "Alice", "next": "/orgs/"})
    assert resp.status_code == 302
    assert resp["Location"] == f"/sso/{provider.pk}/login/?next=%2Forgs%2F"
    idp_resp = client.get(resp["Location"])
    assert idp_resp["Location"].startswith("https://idp.example.test/sso/redirect?SAMLRequest=")
    assert "SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256" in idp_resp["Location"]
    assert authn_request_id(idp_resp["Location"])


def test_authn_request_carries_requested_context_exact(client, sso_user, provider):
    import base64
    import zlib
    from urllib.parse import parse_qs, urlparse

    loc = client.get(f"/sso/{provider.pk}/login/")["Location"]
    xml = zlib.decompress(base64.b64decode(parse_qs(urlparse(loc).query)["SAMLRequest"][0]), -15).decode()
    assert 'Comparison="exact"' in xml
    assert "urn:oasis:names:tc:SAML:2.0:ac:classes:Password" in xml


def test_local_user_gets_password_step_and_signs_in(client, user_factory):
    user = user_factory("bob")
    resp = client.post("/sso/signin/", {"username": "bob"})
    assert resp.status_code == 200 and b'name="password"' in resp.content
    resp = client.post("/sso/signin/", {"username": "bob", "password": TEST_PASSWORD, "next": "/orgs/"})
    assert resp.status_code == 302 and resp["Location"] == "/orgs/"
    assert str(client.session[SESSION_KEY]) == str(user.pk)


def test_unknown_username_gets_password_step_too(client, db):
    resp = client.post("/sso/signin/", {"username": "ghost"})
    assert resp.status_code == 200 and b'name="password"' in resp.content


def test_wrong_password_refused(client, user_factory):
    user_factory("bob")
    resp = client.post("/sso/signin/", {"username": "bob", "password": "nope"})
    assert resp.status_code == 400 and SESSION_KEY not in client.session


def test_sso_user_cannot_sign_in_with_password(client, sso_user, rf, provider):
    resp = client.post("/sso/signin/", {"username": "alice", "password": TEST_PASSWORD})
    assert resp.status_code == 302 and SESSION_KEY not in client.session
    assert resp["Location"].startswith(f"/sso/{provider.pk}/login/")  # to the IdP, as from the username step
    assert authenticate(rf.get("/"), username="alice", password=TEST_PASSWORD) is None
    assert client.login(username="alice", password=TEST_PASSWORD) is False


def test_break_glass_user_keeps_password_sign_in(client, sso_user, make_break_glass):
    make_break_glass(sso_user)
    resp = client.post("/sso/signin/", {"username": "alice"})
    assert resp.status_code == 200 and b'name="password"' in resp.content
    resp = client.post("/sso/signin/", {"username": "alice", "password": TEST_PASSWORD})
    assert resp.status_code == 302 and str(client.session[SESSION_KEY]) == str(sso_user.pk)


def test_break_glass_user_of_sso_org_gets_the_two_factor_step(client, sso_user, sso_org, make_break_glass,
                                                              system_actor):
    from accounts.identity.orgs import org_update_settings

    org_update_settings(actor=system_actor, org=sso_org, two_factor_required=True)
    make_break_glass(sso_user)
    client.post("/sso/signin/", {"username": "alice"})
    resp = client.post("/sso/signin/", {"username": "alice", "password": TEST_PASSWORD})
    assert resp.status_code == 302 and resp["Location"] == "/sign-in/enrol/"
    assert SESSION_KEY not in client.session


def test_sso_user_of_two_factor_org_signs_in_through_the_idp_only(acs, sso_user, sso_org, system_actor):
    from accounts.identity.orgs import org_update_settings

    org_update_settings(actor=system_actor, org=sso_org, two_factor_required=True)
    resp = acs.login()
    assert resp.status_code == 302 and not resp["Location"].startswith("/sign-in/")
    assert str(acs.client.session[SESSION_KEY]) == str(sso_user.pk)


def test_open_redirect_refused_on_password_sign_in(client, user_factory):
    user_factory("bob")
    resp = client.post("/sso/signin/", {"username": "bob", "password": TEST_PASSWORD,
                                        "next": "https://evil.example/"})
    assert resp["Location"] == "/"


def test_signout_without_slo_is_local(acs, sso_user, provider):
    provider.metadata_summary = {**provider.metadata_summary, "slo": []}
    provider.save()
    acs.login()
    resp = acs.client.post("/sso/signout/")
    assert resp.status_code == 302 and SESSION_KEY not in acs.client.session


def test_sp_initiated_logout_is_signed_sha256(acs, sso_user, provider):
    acs.login()
    resp = acs.client.post("/sso/signout/")  # straight to the IdP: no GET-able hop in between
    assert resp.status_code == 302
    assert resp["Location"].startswith("https://idp.example.test/slo?SAMLRequest=")
    assert "SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256" in resp["Location"]
    assert "Signature=" in resp["Location"]
    assert SESSION_KEY not in acs.client.session



def test_nul_byte_username_is_just_unknown(client, db):
    resp = client.post("/sso/signin/", {"username": "ali\x00ce"})
    assert resp.status_code == 200 and b'name="password"' in resp.content
