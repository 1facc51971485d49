"""Issue 7 §5: the metadata URL fetch refuses non-public addresses and redirects to them (SSRF).

Loopback servers stand in for both the IdP and the internal service an attacker aims at; which one is
"allowed" is set by ``IDM_SSO_METADATA_ALLOW_PRIVATE`` / ``IDM_SSO_METADATA_ALLOWED_NETWORKS``.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from accounts.models import AuditEvent
from sso import metadata as md
from sso import outbound
from sso.models import IdentityProvider


@pytest.fixture
def private_only(settings):
    settings.IDM_SSO_METADATA_ALLOW_PRIVATE = False
    settings.IDM_SSO_METADATA_ALLOWED_NETWORKS = ()
    return settings


@pytest.fixture
def redirector():
    """http://127.0.0.1:<port>/go answers 302 to ``server.location``; records the Host header of each request."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.server.hits.append((self.path, self.headers.get("Host")))
            self.send_response(302)
            self.send_header("Location", self.server.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.hits, server.location = [], "/"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/go"
    yield server
    server.shutdown()
    server.server_close()


# --- pure classification ------------------------------------------------------------------------

@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.9.9.9", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "fe80::1%eth0",
    "100.64.0.1", "0.0.0.0", "::",  # noqa: S104 (addresses to classify, nothing binds) "224.0.0.1", "fc00::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
    "192.0.2.1", "198.18.0.1", "240.0.0.1", "255.255.255.255",
])
def test_non_public_addresses_refused_by_default(address):
    assert outbound.address_allowed(address) is False


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:8.8.8.8",
                                     "1.1.1.1"])
def test_public_addresses_allowed(address):
    assert outbound.address_allowed(address) is True


def test_switch_allows_private_but_never_unspecified_or_multicast():
    assert outbound.address_allowed("127.0.0.1", allow_private=True)
    assert outbound.address_allowed("10.0.0.5", allow_private=True)
    assert not outbound.address_allowed("0.0.0.0", allow_private=True)  # noqa: S104
    assert not outbound.address_allowed("224.0.0.1", allow_private=True)


def test_allowed_networks_exempt_only_their_addresses(caplog):
    nets = ("10.20.0.1/16", "not-a-network", "fd00::/8")  # host bits set: still the /16
    assert outbound.address_allowed("10.20.3.4", allowed_networks=nets)
    assert not outbound.address_allowed("10.21.3.4", allowed_networks=nets)
    assert outbound.address_allowed("fd00::5", allowed_networks=nets)
    assert not outbound.address_allowed("127.0.0.1", allowed_networks=nets)
    assert outbound.address_allowed("::ffff:10.20.3.4", allowed_networks=nets)  # IPv4-mapped: judged as IPv4
    assert "IDM_SSO_METADATA_ALLOWED_NETWORKS: 'not-a-network' is not a network, ignored" in caplog.text


def test_every_resolved_address_is_checked():
    # "localhost" resolves to loopback only; allowing 127.0.0.1 alone must not let ::1 (if listed) through.
    with pytest.raises(outbound.AddressRefused) as err:
        outbound.resolve_checked("localhost", 80)
    assert err.value.code == "metadata_address_refused"
    assert err.value.message.startswith("The metadata URL's host 'localhost' resolves to 127.0.0.1")
    assert err.value.message.endswith("(an operator can allow an internal IdP's network with "
                                      "IDM_SSO_METADATA_ALLOWED_NETWORKS).")
    assert outbound.resolve_checked("127.0.0.1", 80, allowed_networks=("127.0.0.1/32",)) == "127.0.0.1"
    assert outbound.resolve_checked("127.0.0.1", 80, allow_private=True) == "127.0.0.1"


def test_unresolvable_host_is_a_coded_error():
    with pytest.raises(outbound.AddressRefused) as err:
        outbound.resolve_checked("no-such-host.invalid", 443)
    assert err.value.code == "metadata_fetch"
    assert err.value.message == "Could not resolve the host name 'no-such-host.invalid': check the URL."


# --- through the fetch ----------------------------------------------------------------------------

def test_loopback_metadata_refused_without_the_switch(private_only, metadata_server, idp):
    metadata_server.document = idp.metadata()
    with pytest.raises(md.MetadataError) as err:
        md.fetch(metadata_server.url)
    assert err.value.code == "metadata_address_refused"
    assert "IDM_SSO_METADATA_ALLOWED_NETWORKS" in err.value.message


def test_loopback_metadata_fetched_with_the_switch(settings, metadata_server, idp):
    settings.IDM_SSO_METADATA_ALLOW_PRIVATE = True
    metadata_server.document = idp.metadata()
    assert idp.entity_id in md.fetch(metadata_server.url)


def test_allowed_network_fetches_and_keeps_host_header(private_only, redirector, metadata_server, idp):
    private_only.IDM_SSO_METADATA_ALLOWED_NETWORKS = ("127.0.0.1/32",)
    metadata_server.document = idp.metadata()
    redirector.location = metadata_server.url  # a redirect to another allowed address is followed
    assert idp.entity_id in md.fetch(redirector.url)
    assert redirector.hits == [("/go", redirector.url.split("/")[2])]


@pytest.mark.parametrize("target", ["http://127.0.0.2:{port}/metadata", "http://169.254.169.254/latest/meta-data/",
                                    "http://[::1]:{port}/", "http://10.0.0.1/", "file:///etc/passwd",
                                    "gopher://127.0.0.1:{port}/"])
def test_redirect_to_a_private_address_is_refused(private_only, redirector, target):
    private_only.IDM_SSO_METADATA_ALLOWED_NETWORKS = ("127.0.0.1/32",)
    redirector.location = target.format(port=redirector.server_address[1])
    with pytest.raises(md.MetadataError) as err:
        md.fetch(redirector.url)
    assert err.value.code == "metadata_redirect_refused"
    assert len(redirector.hits) == 1  # the first hop only; the refused one was never contacted


def test_redirect_loop_is_bounded(settings, redirector):
    settings.IDM_SSO_METADATA_ALLOW_PRIVATE = True
    redirector.location = redirector.url
    with pytest.raises(md.MetadataError) as err:
        md.fetch(redirector.url)
    assert err.value.code == "metadata_too_many_redirects"
    assert len(redirector.hits) == outbound.MAX_REDIRECTS + 1


def test_console_shows_the_coded_error_and_saves_nothing(private_only, admin_client, metadata_server, idp):
    metadata_server.document = idp.metadata()
    resp = admin_client.post("/sso/providers/add/", {
        "name": "Internal", "metadata_url": metadata_server.url, "enabled": "on", "metadata_verify_tls": "on",
        "use_default_mapping": "on", "mapping_preset": "default", "authn_context_comparison": "exact",
        "digest_algorithm": "http://www.w3.org/2001/04/xmlenc#sha256",
        "signature_algorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "clock_skew_seconds": "180",
    })
    body = resp.content.decode()
    assert resp.status_code in (200, 400) and "(metadata_address_refused)" in body, body[:3000]
    assert not IdentityProvider.objects.filter(name="Internal").exists()
    assert not AuditEvent.objects.filter(action="sso.provider_created").exists()


def test_scheduled_refresh_records_the_refusal(db, private_only, metadata_server, idp, system_actor):
    from sso.services import metadata_refresh, provider_save

    metadata_server.document = idp.metadata()
    provider = provider_save(actor=system_actor, metadata_xml=idp.metadata(),
                             provider=IdentityProvider(name="By URL", metadata_url=metadata_server.url))
    assert metadata_refresh(provider=provider) is False
    event = AuditEvent.objects.filter(action="sso.metadata_refresh_failed").first()
    assert event.new_value["code"] == "metadata_address_refused"
