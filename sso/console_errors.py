"""Metadata problems as plain sentences for the console (no Python exception text).

``sso.metadata`` raises ``MetadataError(code, message)`` chained to the library error; some messages
embed that error's text ("HTTPSConnectionPool(host=…): Max retries exceeded…"). The console shows
this sentence instead, chosen by the code and the kind of underlying error; the code stays on the
page as ``data-code`` for support.
"""

from __future__ import annotations

from urllib.parse import urlparse

import requests


def _root_cause(exc: BaseException) -> BaseException | None:
    """The first ``requests`` error in ``exc``'s ``raise … from`` chain, else the deepest cause (≤ 10 links)."""
    cause, last = exc.__cause__, None
    for _ in range(10):
        if cause is None or isinstance(cause, requests.RequestException):
            break
        last, cause = cause, cause.__cause__
    return cause if cause is not None else last


def plain_metadata_error(exc: BaseException, *, url: str = "") -> str:
    """The sentence an admin reads for a metadata error ``exc`` (an ``IdentityError`` or ``MetadataError``)."""
    code = getattr(exc, "code", "")
    host = urlparse(url).hostname or "the identity provider"
    cause = _root_cause(exc)
    if code == "metadata_tls":
        return (f"idm could not verify the TLS certificate of {host}. The identity provider's certificate must "
                "chain to a trusted certificate authority; for a test IdP you can turn off \"verify TLS\".")
    if code == "metadata_fetch":
        if isinstance(cause, requests.HTTPError) and cause.response is not None:
            status = cause.response.status_code
            return (f"{host} answered HTTP {status} for the metadata URL. Check the URL (copy it from the "
                    "identity provider's admin console) and that the metadata is published.")
        if isinstance(cause, requests.Timeout):
            return f"{host} did not answer in time. Check the URL and that idm can reach the identity provider."
        if isinstance(cause, requests.ConnectionError):
            return (f"idm could not connect to {host}. Check the host name in the URL and that idm's server "
                    "can reach it (firewall, proxy, DNS).")
        return "idm could not download the metadata. Check the URL and that idm can reach the identity provider."
    if code == "metadata_malformed":
        return ("The metadata is not well-formed XML. Download it again from the identity provider, or paste "
                "its metadata URL instead.")
    message = str(getattr(exc, "message", "") or exc)
    # Every other metadata message is already a plain sentence written for admins.
    return message.replace(f"{cause}", "").strip() if cause is not None and str(cause) in message else message
