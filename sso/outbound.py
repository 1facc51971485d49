"""Server-side HTTP fetches an admin points at a URL (IdP metadata), safe from SSRF (issue 7 §5).

An admin types the metadata URL and the server fetches it, so without a check that URL could read
the cloud metadata service (169.254.169.254), an internal admin page or a loopback port, and the
console's error message would tell what answered. So:

* every address the host name resolves to must be global (not loopback, link-local, private, shared,
  reserved, multicast or unspecified; IPv4-mapped IPv6 is judged as its IPv4 address), unless
  ``IDM_SSO_METADATA_ALLOW_PRIVATE`` is on (test IdPs) or the address is in
  ``IDM_SSO_METADATA_ALLOWED_NETWORKS`` (an IdP on the internal network, e.g. AD FS);
* the connection goes to the address that was checked (no second DNS lookup an attacker's DNS could
  answer differently: DNS rebinding), with the URL's host name kept for ``Host``, TLS SNI and the
  certificate check;
* redirects are followed by hand, each hop checked the same way, at most ``MAX_REDIRECTS``;
* proxies from the environment are ignored (they would connect on our behalf, unchecked).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

logger = logging.getLogger(__name__)
MAX_REDIRECTS = 5
DEFAULT_PORTS = {"http": 80, "https": 443}


class AddressRefused(Exception):
    """The URL's host resolves to an address idm does not fetch from (``code`` + admin-facing ``message``)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _networks(values: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:  # a typo in the setting allows nothing (fails closed) and is logged
            logger.warning("IDM_SSO_METADATA_ALLOWED_NETWORKS: %r is not a network, ignored", value)
    return networks


def address_allowed(address: str, *, allow_private: bool = False, allowed_networks: Iterable[str] = ()) -> bool:
    """Whether idm may connect to ``address`` (an IP literal) for an admin-supplied URL."""
    ip = ipaddress.ip_address(address)  # Python 3.9+ reads an IPv6 zone id ("fe80::1%eth0") too
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if allow_private:
        return not ip.is_unspecified and not ip.is_multicast
    if any(ip in net for net in _networks(allowed_networks) if net.version == ip.version):
        return True
    return ip.is_global and not ip.is_multicast


def resolve_checked(host: str, port: int, *, allow_private: bool = False,
                    allowed_networks: Iterable[str] = ()) -> str:
    """Resolve ``host`` and check every address; return the one to connect to, or raise ``AddressRefused``."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise AddressRefused("metadata_fetch", f"Could not resolve the host name {host!r}: check the URL.") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    allowed_networks = tuple(allowed_networks)
    refused = [a for a in addresses if not address_allowed(a, allow_private=allow_private,
                                                           allowed_networks=allowed_networks)]
    if refused or not addresses:
        raise AddressRefused(
            "metadata_address_refused",
            f"The metadata URL's host {host!r} resolves to {', '.join(refused) or 'no address'}, a loopback, "
            "link-local, private or otherwise non-public address, which idm does not fetch from. Use the "
            "IdP's public metadata URL or upload the metadata file (an operator can allow an internal IdP's "
            "network with IDM_SSO_METADATA_ALLOWED_NETWORKS).")
    return addresses[0]


class _PinnedAdapter(HTTPAdapter):
    """Connect to ``address`` while TLS (SNI, certificate check) uses the URL's host name."""

    def __init__(self, *, address: str, hostname: str):
        self.address, self.hostname = address, hostname
        super().__init__(max_retries=0)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        host_params["host"] = self.address
        if host_params.get("scheme") == "https":
            pool_kwargs["server_hostname"] = self.hostname
            pool_kwargs["assert_hostname"] = self.hostname if verify else False
        return host_params, pool_kwargs


def open_checked(url: str, *, timeout: float, verify_tls: bool, headers: dict[str, str], allow_private: bool,
                 allowed_networks: Iterable[str] = ()) -> requests.Response:
    """GET ``url`` (streamed) after checking each hop's addresses; the caller closes the response.

    Raises ``AddressRefused`` for a refused address, bad URL or too many redirects, and
    ``requests.RequestException`` for network and HTTP errors.
    """
    allowed_networks = tuple(allowed_networks)
    for hop in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        try:
            port = parts.port or DEFAULT_PORTS.get(scheme)
        except ValueError as exc:
            raise AddressRefused("metadata_url_invalid", "The metadata URL has an invalid port.") from exc
        if scheme not in DEFAULT_PORTS or not parts.hostname:
            code = "metadata_redirect_refused" if hop else "metadata_url_scheme"
            raise AddressRefused(code, "The metadata URL (or a redirect) must be an http(s) URL with a host name.")
        try:
            address = resolve_checked(parts.hostname, port, allow_private=allow_private,
                                      allowed_networks=allowed_networks)
        except AddressRefused as exc:
            if hop and exc.code == "metadata_address_refused":
                raise AddressRefused("metadata_redirect_refused",
                                     f"The metadata URL redirects to {url[:200]!r}: {exc.message}") from exc
            raise
        session = requests.Session()
        session.trust_env = False  # no proxy from the environment: it would connect to anything
        session.mount(f"{scheme}://", _PinnedAdapter(address=address, hostname=parts.hostname))
        host_header = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if parts.port:
            host_header += f":{parts.port}"
        try:
            resp = session.get(url, timeout=timeout, verify=verify_tls, stream=True, allow_redirects=False,
                               headers={**headers, "Host": host_header})
        except BaseException:
            session.close()
            raise
        if not resp.is_redirect:
            return resp
        location = resp.headers.get("Location", "")
        resp.close()
        session.close()
        url = urljoin(url, location)
    raise AddressRefused("metadata_too_many_redirects",
                         f"The metadata URL redirects more than {MAX_REDIRECTS} times; use the final URL.")
