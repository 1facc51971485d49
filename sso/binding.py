"""Bind each outstanding AuthnRequest to the browser that started it (issue 7 §4).

The request id lives server-side (``sso.replay``) so the IdP's cross-site POST works without
djangosaml2's cookie. On its own that lets a response answering browser A's request sign in
browser B: an attacker starts a sign-in, signs in at the IdP as themself and has the victim's
browser post the response (login CSRF / session swap). So the sign-in start also gives the browser a
random token in a short-lived cookie and stores only its SHA-256 with the request id; the ACS takes
the response only when the posting browser shows the same token.

The cookie must survive the IdP's cross-site POST: ``SameSite=None``, which browsers accept only
with ``Secure`` (Chromium also keeps ``Secure`` cookies on ``http://localhost``, so development works;
any other plain-http host drops it and every SP-initiated sign-in is refused as ``other_browser``).
On https the ``__Host-`` prefix stops a sibling subdomain from planting a known token (cookie
tossing). HttpOnly; it lives as long as an outstanding request (``IDM_SSO_REQUEST_TTL``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from sso.app_settings import app_settings

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)


def cookie_name() -> str:
    """``__Host-idm_sso_browser`` when idm is served over https, else ``idm_sso_browser``."""
    return ("__Host-" if app_settings.BASE_URL.startswith("https://") else "") + "idm_sso_browser"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def browser_token(request) -> str:
    """This browser's token: the one it already holds (so parallel sign-ins in two tabs both work),
    else a new random one. A malformed value is replaced, never stored."""
    current = request.COOKIES.get(cookie_name(), "")
    return current if _TOKEN.match(current) else secrets.token_urlsafe(32)


def set_cookie(response, token: str) -> None:
    """Attach (or refresh) the token cookie on the response that sends the browser to the IdP."""
    response.set_cookie(cookie_name(), token, max_age=app_settings.REQUEST_TTL, path="/", secure=True,
                        httponly=True, samesite="None")


def same_browser(request, stored_hash: str | None) -> bool:
    """Whether the browser posting the response holds the token its request was started with."""
    token = request.COOKIES.get(cookie_name(), "")
    if not stored_hash or not _TOKEN.match(token):
        return False
    return hmac.compare_digest(token_hash(token), stored_hash)
