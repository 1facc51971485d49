"""IdP-initiated single logout without the browser's session cookie (cross-site), through both bindings.

The IdP is pysaml2 (``tests/sso/idp.py``); LogoutRequests are sent by a client with no cookies, as a
browser does on a cross-site POST with ``SameSite=Lax``, and the user's session must be gone afterwards.
"""

from __future__ import annotations

import base64
import re
import zlib
from importlib import import_module
from urllib.parse import parse_qs, unquote_plus, urlparse

import pytest
import saml2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.test import Client
from saml2.xmldsig import DIGEST_SHA1, SIG_RSA_SHA1

from accounts.models import AuditEvent
from sso.config import slo_url
from sso.models import SsoSession
from sso.sp_metadata import sp_metadata_xml
from tests.sso.idp import TestIdP

REDIRECT, POST = saml2.BINDING_HTTP_REDIRECT, saml2.BINDING_HTTP_POST
BINDINGS = pytest.mark.parametrize("binding", [REDIRECT, POST], ids=["redirect", "post"])


@pytest.fixture(scope="module")
def idp(saml_keys) -> TestIdP:
    """The test IdP, with SLO endpoints for both bindings (so the answer can follow the request's binding)."""
    key, cert = saml_keys["idp"]
    return TestIdP(key_file=key, cert_file=cert, slo_bindings=(REDIRECT, POST))


def _session_exists(key: str) -> bool:
    return import_module(settings.SESSION_ENGINE).SessionStore().exists(key)


def _sign_in(acs) -> str:
    resp = acs.login()
    assert resp.status_code == 302, resp.content[:500]
    return acs.client.session.session_key


def _send(client: Client, message: dict):
    if message["data"] is None:
        return client.get(message["url"])  # the test client keeps the raw query string (signature input)
    return client.post(urlparse(message["url"]).path, message["data"])


def _logout_request(idp, provider, binding, **kwargs) -> dict:
    kwargs.setdefault("name_id", "alice")
    kwargs.setdefault("destination", slo_url(provider))
    return idp.logout_request(binding=binding, **kwargs)


def _redirect_signature_ok(location: str, cert_pem: str) -> bool:
    raw = dict(part.split("=", 1) for part in urlparse(location).query.split("&"))
    signed = "&".join(f"{k}={raw[k]}" for k in ("SAMLResponse", "RelayState", "SigAlg") if k in raw).encode()
    key = x509.load_pem_x509_certificate(cert_pem.encode()).public_key()
    try:
        key.verify(base64.b64decode(unquote_plus(raw["Signature"])), signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


@BINDINGS
def test_logout_request_without_cookie_ends_session_and_answers_signed(acs, sso_user, provider, idp, binding,
                                                                       saml_keys):
    key = _sign_in(acs)
    assert _session_exists(key) and SsoSession.objects.filter(session_key=key, user=sso_user).exists()

    resp = _send(Client(), _logout_request(idp, provider, binding, relay_state="idp-state"))

    assert not _session_exists(key)
    assert not SsoSession.objects.filter(session_key=key).exists()
    console = acs.client.get("/users/")  # the browser's old cookie no longer signs anyone in
    assert console.status_code == 302 and SESSION_KEY not in acs.client.session

    event = AuditEvent.objects.get(action="auth.sso_logout")
    assert event.target_id == str(sso_user.pk) and event.new_value["sessions_ended"] == 1
    assert event.new_value["provider"] == provider.name and event.source == "saml"

    sp_cert = open(saml_keys["sp"][1]).read()
    if binding == REDIRECT:
        assert resp.status_code == 302
        location = resp["Location"]
        assert location.startswith("https://idp.example.test/slo?SAMLResponse=")
        query = parse_qs(urlparse(location).query)
        assert query["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"]
        assert query["RelayState"] == ["idp-state"]
        assert _redirect_signature_ok(location, sp_cert)
        xml = zlib.decompress(base64.b64decode(query["SAMLResponse"][0]), -15).decode()
    else:
        assert resp.status_code == 200
        body = resp.content.decode()
        assert 'action="https://idp.example.test/slo"' in body
        xml = base64.b64decode(re.search(r'name="SAMLResponse" value="([^"]+)"', body).group(1)).decode()
        # The IdP, knowing our metadata, verifies the enveloped signature (sha256).
        trusting = TestIdP(key_file=idp.key_file, cert_file=idp.cert_file, sp_metadata=sp_metadata_xml(provider))
        assert trusting.server.sec.correctly_signed_logout_response(xml, must=True)
        assert "xmldsig-more#rsa-sha256" in xml
    assert "urn:oasis:names:tc:SAML:2.0:status:Success" in xml and "LogoutResponse" in xml


def test_logout_ends_every_session_of_the_subject_only(provider, idp, sso_user, user_factory, sso_org):
    from tests.sso.conftest import AcsDriver

    first, second = AcsDriver(Client(), provider, idp), AcsDriver(Client(), provider, idp)
    keys = [_sign_in(first), _sign_in(second)]
    user_factory("bob", org=sso_org, password=None, state="active")
    bob = AcsDriver(Client(), provider, idp)
    assert bob.login(name_id="bob").status_code == 302
    bob_key = bob.client.session.session_key

    _send(Client(), _logout_request(idp, provider, REDIRECT))
    assert not any(_session_exists(k) for k in keys)
    assert _session_exists(bob_key)
    assert AuditEvent.objects.get(action="auth.sso_logout").new_value["sessions_ended"] == 2


def test_session_index_limits_what_is_ended(acs, sso_user, provider, idp):
    key = _sign_in(acs)
    index = SsoSession.objects.get(session_key=key).session_index
    assert index  # pysaml2 IdPs send a SessionIndex in the AuthnStatement
    _send(Client(), _logout_request(idp, provider, POST, session_indexes=["some-other-session"]))
    assert _session_exists(key)
    _send(Client(), _logout_request(idp, provider, POST, session_indexes=[index]))
    assert not _session_exists(key)


def test_same_site_logout_also_clears_the_browser_session(acs, sso_user, provider, idp):
    key = _sign_in(acs)
    resp = _send(acs.client, _logout_request(idp, provider, REDIRECT))
    assert resp.status_code == 302 and not _session_exists(key)
    assert SESSION_KEY not in acs.client.session


def test_unknown_subject_still_answers_success(client, provider, idp, sso_user):
    resp = _send(Client(), _logout_request(idp, provider, REDIRECT, name_id="nobody"))
    assert resp.status_code == 302 and "SAMLResponse=" in resp["Location"]
    event = AuditEvent.objects.get(action="auth.sso_logout")
    assert event.new_value["sessions_ended"] == 0 and event.target_label == "nobody"


# --- refusals: 4xx page, audit, the session stays -----------------------------------------------------


def _refused(resp, code: str, key: str, *, earlier_logouts: int = 0):
    assert 400 <= resp.status_code < 500, resp.status_code
    body = resp.content.decode()
    assert f'data-sso-error="{code}"' in body, body[:1500]
    assert "Sign-out failed" in body and "Reference:" in body
    assert _session_exists(key)
    event = AuditEvent.objects.filter(action="auth.sso_logout_failed").first()
    assert event is not None and event.new_value["reason"] == code
    assert AuditEvent.objects.filter(action="auth.sso_logout").count() == earlier_logouts


@BINDINGS
def test_unsigned_logout_request_refused(acs, sso_user, provider, idp, binding):
    key = _sign_in(acs)
    _refused(_send(Client(), _logout_request(idp, provider, binding, sign=False)), "unsigned_logout_request", key)


@BINDINGS
def test_logout_request_signed_by_foreign_key_refused(acs, sso_user, provider, attacker_idp, binding):
    key = _sign_in(acs)
    _refused(_send(Client(), _logout_request(attacker_idp, provider, binding)), "bad_signature", key)


@BINDINGS
def test_logout_request_from_another_issuer_refused(acs, sso_user, provider, idp, binding):
    key = _sign_in(acs)
    other = TestIdP(key_file=idp.key_file, cert_file=idp.cert_file, entity_id="https://other.example/idp")
    _refused(_send(Client(), _logout_request(other, provider, binding)), "wrong_issuer", key)


@BINDINGS
def test_logout_request_for_another_destination_refused(acs, sso_user, provider, idp, binding):
    key = _sign_in(acs)
    message = _logout_request(idp, provider, binding, destination="https://elsewhere.example/slo")
    message["url"] = slo_url(provider) + (("?" + urlparse(message["url"]).query) if binding == REDIRECT else "")
    _refused(_send(Client(), message), "wrong_destination", key)


@BINDINGS
def test_sha1_logout_request_refused(acs, sso_user, provider, idp, binding):
    key = _sign_in(acs)
    message = _logout_request(idp, provider, binding, sign_alg=SIG_RSA_SHA1, digest_alg=DIGEST_SHA1)
    _refused(_send(Client(), message), "weak_algorithm", key)


def test_tampered_post_logout_request_refused(acs, sso_user, provider, idp, user_factory, sso_org):
    key = _sign_in(acs)
    message = _logout_request(idp, provider, POST, name_id="bob")
    xml = base64.b64decode(message["data"]["SAMLRequest"]).decode().replace(">bob<", ">alice<")
    message["data"]["SAMLRequest"] = base64.b64encode(xml.encode()).decode()
    _refused(_send(Client(), message), "bad_signature", key)


def test_tampered_redirect_query_refused(acs, sso_user, provider, idp):
    key = _sign_in(acs)
    message = _logout_request(idp, provider, REDIRECT, relay_state="a")
    message["url"] = message["url"].replace("RelayState=a", "RelayState=b")
    _refused(_send(Client(), message), "bad_signature", key)


def test_replayed_logout_request_refused(acs, sso_user, provider, idp):
    message = _logout_request(idp, provider, POST)
    assert _send(Client(), message).status_code == 200
    key = _sign_in(acs)
    _refused(_send(Client(), message), "replayed", key, earlier_logouts=1)


def test_garbage_logout_request_refused(acs, sso_user, provider):
    key = _sign_in(acs)
    resp = Client().post(f"/sso/{provider.pk}/slo/", {"SAMLRequest": "%%%not-base64"})
    _refused(resp, "malformed", key)


def test_logout_request_for_disabled_provider_refused(acs, sso_user, provider, idp):
    key = _sign_in(acs)
    provider.enabled = False
    provider.save()
    _refused(_send(Client(), _logout_request(idp, provider, REDIRECT)), "provider_disabled", key)
