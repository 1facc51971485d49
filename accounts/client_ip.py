"""The client's address for audit records and the per-address sign-in throttle. Pure: no settings.

Only proxies we run can be trusted: each appends the address it received the request from to
``X-Forwarded-For``, so counting ``IDM_TRUSTED_PROXIES`` entries from the right of the chain
(``X-Forwarded-For`` entries followed by ``REMOTE_ADDR``) gives the first address a trusted proxy
saw. Everything to the left of it is whatever the client wrote and is ignored, so a client cannot
pick its own address to dodge the throttle (issue 7 §3). Values that are not an IP address are
never returned: the audit column is an IP field, and a bad header must not turn a request into a
500. Without a usable forwarded address the peer address (``REMOTE_ADDR``) is used.
"""

from __future__ import annotations

import ipaddress

# An X-Forwarded-For header longer than this is not from our proxies; only its right end is read.
MAX_HEADER_CHARS = 4096


def parse_address(value: str | None) -> str | None:
    """``value`` as a normalised IP address string, or ``None`` when it is not one.

    Accepts the forms proxies write: ``1.2.3.4``, ``1.2.3.4:5678``, ``2001:db8::1``,
    ``[2001:db8::1]:443``; drops an IPv6 zone (``%eth0``); turns IPv4-mapped IPv6 into IPv4.
    """
    if not value or not isinstance(value, str):
        return None
    text = value.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port; bare IPv6 has two or more colons
        text = text.split(":", 1)[0]
    text = text.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


def client_address(*, remote_addr: str | None, forwarded_for: str | None, trusted_proxies: int) -> str | None:
    """The client address given the peer address, the ``X-Forwarded-For`` header and the proxy count.

    With ``trusted_proxies = 0`` the header is ignored. With N proxies the chain is the header's
    entries plus ``remote_addr``; the client is the N-th entry counted from the right after the
    peer (``chain[-(N + 1)]``). A missing, short or unparsable entry falls back to ``remote_addr``.
    """
    peer = parse_address(remote_addr)
    if trusted_proxies <= 0 or not forwarded_for:
        return peer
    entries = [e for e in forwarded_for[-MAX_HEADER_CHARS:].split(",")]
    if len(forwarded_for) > MAX_HEADER_CHARS:
        entries = entries[1:]  # the cut may have split the left-most kept entry
    if len(entries) < trusted_proxies:
        return peer
    return parse_address(entries[-trusted_proxies]) or peer
