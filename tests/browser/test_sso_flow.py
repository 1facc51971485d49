"""The whole SSO round trip in Chromium: idm sign-in page -> IdP login form -> back to idm, signed in.

idm runs on ``localhost`` (pytest-django's live server), the IdP on ``127.0.0.1``: different sites, so
the IdP's POST back to the ACS is cross-site and the browser withholds idm's SameSite=Lax cookies on
it, exactly as in production. The IdP is pysaml2 in a thread behind a tiny WSGI app.
"""

from __future__ import annotations

import html
import threading
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import saml2
from saml2.saml import NAMEID_FORMAT_UNSPECIFIED, NameID
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from accounts.identity.orgs import org_update_settings
from accounts.identity.types import Actor, AuthMethod
from accounts.models import AuditEvent
from sso.models import IdentityProvider
from sso.services import provider_save
from sso.sp_metadata import sp_metadata_xml
from tests.sso.idp import AUTHN, TestIdP, make_keys

IDP_PASSWORD = "idp-secret"


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class LoopbackIdP:
    """A pysaml2 IdP web app: GET /sso/redirect shows a login form, POST /login answers the SP."""

    def __init__(self, keys_dir):
        self.httpd = make_server("127.0.0.1", 0, self.app, handler_class=_Quiet)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.key_file, self.cert_file = make_keys(keys_dir, "browser-idp")
        self.idp = TestIdP(key_file=self.key_file, cert_file=self.cert_file, base_url=self.base_url,
                           entity_id=f"{self.base_url}/metadata", slo=False)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def trust_sp(self, sp_metadata: str) -> None:
        self.idp = TestIdP(key_file=self.key_file, cert_file=self.cert_file, base_url=self.base_url,
                           entity_id=self.idp.entity_id, slo=False, sp_metadata=sp_metadata)

    def app(self, environ, start_response):
        path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
        if path == "/sso/redirect" and method == "GET":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            req = self.idp.server.parse_authn_request(query["SAMLRequest"][0], saml2.BINDING_HTTP_REDIRECT)
            fields = {"request_id": req.message.id, "acs": req.message.assertion_consumer_service_url,
                      "sp": req.message.issuer.text, "relay_state": query.get("RelayState", [""])[0]}
            hidden = "".join(f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in fields.items())
            body = ("<!doctype html><title>Test IdP sign-in</title><h1>Test IdP</h1>"
                    f'<form method="post" action="/login">{hidden}'
                    '<label>IdP username <input name="username" id="idp-username"></label>'
                    '<label>IdP password <input name="password" type="password" id="idp-password"></label>'
                    '<button type="submit" id="idp-submit">Sign in at IdP</button></form>')
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [body.encode()]
        if path == "/login" and method == "POST":
            size = int(environ.get("CONTENT_LENGTH") or 0)
            form = {k: v[0] for k, v in parse_qs(environ["wsgi.input"].read(size).decode()).items()}
            if form.get("password") != IDP_PASSWORD:
                start_response("401 Unauthorized", [("Content-Type", "text/plain")])
                return [b"wrong IdP password"]
            resp = self.idp.server.create_authn_response(
                identity={"mail": [f"{form['username']}@example.com"]}, in_response_to=form["request_id"],
                destination=form["acs"], sp_entity_id=form["sp"],
                name_id=NameID(format=NAMEID_FORMAT_UNSPECIFIED, text=form["username"]), authn=AUTHN,
                sign_assertion=True, sign_response=False, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256,
            )
            body = ("<!doctype html><title>Returning to idm</title>"
                    f'<form method="post" action="{html.escape(form["acs"])}">'
                    f'<input type="hidden" name="SAMLResponse" value="{TestIdP.encode(str(resp))}">'
                    f'<input type="hidden" name="RelayState" value="{html.escape(form.get("relay_state", ""))}">'
                    '</form><script>document.forms[0].submit()</script>')
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [body.encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def sso_site(live_server, settings, tmp_path, user_factory, org_factory):
    """idm on ``localhost`` with a provider, an SSO org and alice; yields the running loopback IdP."""
    assert "localhost" in live_server.url  # idm on localhost, the IdP on 127.0.0.1: two sites
    settings.IDM_BASE_URL = live_server.url
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
    settings.IDM_SSO_KEY_DIR = str(tmp_path / "sp-keys")
    sp_key, sp_cert = make_keys(tmp_path / "sp", "sp")
    settings.IDM_SSO_SP_KEY_FILE, settings.IDM_SSO_SP_CERT_FILE = sp_key, sp_cert

    with LoopbackIdP(tmp_path / "idp") as idp:
        actor = Actor.system("browser test")
        provider = provider_save(actor=actor, provider=IdentityProvider(name="Loopback IdP"),
                                 metadata_xml=idp.idp.metadata())
        idp.trust_sp(sp_metadata_xml(provider))
        org = org_factory("Browser SSO org")
        org_update_settings(actor=actor, org=org, auth_method=AuthMethod.SSO, auth_provider=provider)
        user_factory("alice", org=org, email="alice@example.com", password=None, state="active")  # SSO: no password
        yield idp


def _sign_in_at_idp(page, username: str = "alice") -> None:
    page.fill("#idp-username", username)
    page.fill("#idp-password", IDP_PASSWORD)
    page.click("#idp-submit")


@pytest.mark.browser
def test_sso_round_trip_signs_in(page, live_server, sso_site):
    idp = sso_site
    page.goto(f"{live_server.url}/sso/signin/?next=/account/")
    page.fill("#id_username", "alice")
    page.click("button[type=submit]")
    page.wait_for_url(f"{idp.base_url}/sso/redirect*")
    assert "Test IdP" in page.content()
    _sign_in_at_idp(page)
    page.wait_for_url(f"{live_server.url}/account/")
    assert "alice" in page.content()
    cookies = {c["name"]: c for c in page.context.cookies(live_server.url)}
    assert cookies["sessionid"]["sameSite"] == "Lax"
    # The browser binding cookie survived the IdP's cross-site POST (SameSite=None; Secure on localhost).
    bound = cookies["idm_sso_browser"]
    assert (bound["sameSite"], bound["secure"], bound["httpOnly"]) == ("None", True, True)


@pytest.mark.browser
def test_response_to_another_browsers_request_is_refused(browser, live_server, sso_site):
    """Login CSRF: the attacker's browser starts a sign-in; the IdP's answer is posted by the victim's browser."""
    idp = sso_site
    attacker = browser.new_context()
    victim = browser.new_context()
    try:
        a_page = attacker.new_page()
        a_page.goto(f"{live_server.url}/sso/signin/?next=/account/")
        a_page.fill("#id_username", "alice")
        a_page.click("button[type=submit]")
        a_page.wait_for_url(f"{idp.base_url}/sso/redirect*")
        idp_url = a_page.url  # carries the AuthnRequest the attacker's browser started

        v_page = victim.new_page()
        v_page.goto(idp_url)  # the victim's browser is made to continue the attacker's sign-in
        _sign_in_at_idp(v_page)
        v_page.wait_for_selector("[data-sso-error]")
        assert v_page.get_attribute("[data-sso-error]", "data-sso-error") == "other_browser"
        assert "started in another browser" in v_page.content()
        assert "sessionid" not in {c["name"] for c in victim.cookies(live_server.url)}
        event = AuditEvent.objects.filter(action="auth.sso_login_failed").first()
        assert event.new_value["reason"] == "other_browser"

        # The normal flow in the attacker's own browser still works (a fresh request).
        a_page.goto(f"{live_server.url}/sso/signin/?next=/account/")
        a_page.fill("#id_username", "alice")
        a_page.click("button[type=submit]")
        a_page.wait_for_url(f"{idp.base_url}/sso/redirect*")
        _sign_in_at_idp(a_page)
        a_page.wait_for_url(f"{live_server.url}/account/")
        assert AuditEvent.objects.filter(action="auth.sso_login_succeeded").count() == 1
    finally:
        attacker.close()
        victim.close()
