"""SSO fixtures: a pysaml2 IdP with run-time keys, a configured provider, an SSO org and its user."""

from __future__ import annotations

import base64
import re
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from accounts.identity.orgs import org_update_settings
from accounts.identity.types import AuthMethod
from sso.config import acs_url, sp_entity_id
from sso.models import IdentityProvider
from sso.services import provider_save
from tests.sso.idp import TestIdP, make_keys


@pytest.fixture(scope="session")
def saml_keys(tmp_path_factory):
    """Key pairs: the IdP's, an attacker's, a rotated IdP key and idm's SP key (RSA-2048, made now)."""
    base = tmp_path_factory.mktemp("saml-keys")
    return {name: make_keys(base, name) for name in ("idp", "attacker", "idp-rotated", "sp")}


@pytest.fixture(autouse=True)
def sso_settings(settings, saml_keys, tmp_path):
    settings.IDM_BASE_URL = "http://testserver"
    settings.IDM_SSO_SP_KEY_FILE, settings.IDM_SSO_SP_CERT_FILE = saml_keys["sp"]
    settings.IDM_SSO_KEY_DIR = str(tmp_path / "sp-keys")
    settings.IDM_SSO_METADATA_ALLOW_PRIVATE = True  # the test metadata server is on loopback
    return settings


@pytest.fixture(scope="session")
def idp(saml_keys) -> TestIdP:
    key, cert = saml_keys["idp"]
    return TestIdP(key_file=key, cert_file=cert)


@pytest.fixture(scope="session")
def attacker_idp(saml_keys) -> TestIdP:
    """Same entity id as ``idp`` but a key that is not in the metadata."""
    key, cert = saml_keys["attacker"]
    return TestIdP(key_file=key, cert_file=cert)


@pytest.fixture
def provider_factory(db, system_actor, idp):
    def make(name: str = "Test IdP", *, metadata: str | None = None, **fields) -> IdentityProvider:
        provider = IdentityProvider(name=name, **fields)
        return provider_save(actor=system_actor, provider=provider, metadata_xml=metadata or idp.metadata())

    return make


@pytest.fixture
def provider(provider_factory) -> IdentityProvider:
    return provider_factory()


@pytest.fixture
def sso_org(org_factory, provider, system_actor):
    org = org_factory("SSO Org")
    org_update_settings(actor=system_actor, org=org, auth_method=AuthMethod.SSO, auth_provider=provider)
    return org


@pytest.fixture
def sso_user_factory(user_factory, sso_org):
    """``sso_user_factory(username, org=sso_org, **fields)``: an active user of an SSO org, created without
    a password (the identity service refuses one there: SSO users have none unless break-glass)."""

    def make(username: str, *, org=None, **fields):
        return user_factory(username, org=org or sso_org, password=None, state=fields.pop("state", "active"),
                            **fields)

    return make


@pytest.fixture
def sso_user(sso_user_factory):
    return sso_user_factory("alice", email="alice@example.com")


@pytest.fixture
def make_break_glass(system_actor, provider):
    """``make_break_glass(user)``: a break-glass user of ``provider`` who then gets ``TEST_PASSWORD``
    (break-glass membership alone gives no password: the user sets one, e.g. from a reset link)."""
    from accounts.console_actions import user_set_password
    from sso.services import break_glass_set
    from tests.conftest import TEST_PASSWORD

    def make(user, *, password: str = TEST_PASSWORD):
        break_glass_set(actor=system_actor, provider=provider, users=[*provider.break_glass_users.all(), user])
        user_set_password(actor=system_actor, user=user, password=password)
        user.refresh_from_db()
        return user

    return make


def authn_request_id(location: str) -> str:
    """The ID of the AuthnRequest carried by an HTTP-Redirect binding URL."""
    query = parse_qs(urlparse(location).query)
    xml = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15).decode()
    return re.search(r'\sID="([^"]+)"', xml).group(1)


class AcsDriver:
    """Start SP-initiated sign-ins and post IdP responses to the real ACS view."""

    def __init__(self, client, provider: IdentityProvider, idp: TestIdP):
        self.client, self.provider, self.idp = client, provider, idp

    @property
    def acs(self) -> str:
        return acs_url(self.provider)

    def start(self, next_path: str = "") -> str:
        url = f"/sso/{self.provider.pk}/login/" + (f"?next={next_path}" if next_path else "")
        resp = self.client.get(url)
        assert resp.status_code == 302, resp.content[:500]
        return authn_request_id(resp["Location"])

    def xml(self, *, name_id: str = "alice", in_response_to: str | None = "", idp: TestIdP | None = None,
            **kwargs) -> str:
        if in_response_to == "":
            in_response_to = self.start()
        return (idp or self.idp).response_xml(sp_entity_id=sp_entity_id(self.provider), acs_url=self.acs,
                                              name_id=name_id, in_response_to=in_response_to, **kwargs)

    def post_xml(self, xml: str, relay_state: str | None = None):
        data = {"SAMLResponse": TestIdP.encode(xml)}
        if relay_state is not None:
            data["RelayState"] = relay_state
        return self.client.post(f"/sso/{self.provider.pk}/acs/", data)

    def login(self, **kwargs):
        relay_state = kwargs.pop("relay_state", None)
        return self.post_xml(self.xml(**kwargs), relay_state=relay_state)


@pytest.fixture
def acs(client, provider, idp) -> AcsDriver:
    return AcsDriver(client, provider, idp)


@pytest.fixture
def metadata_server():
    """Serves ``server.document`` at http://127.0.0.1:<port>/metadata (loopback only)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = self.server.document.encode()
            self.send_response(200 if self.path == "/metadata" else 404)
            self.send_header("Content-Type", "application/samlmetadata+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.document = ""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/metadata"
    yield server
    server.shutdown()
    server.server_close()
