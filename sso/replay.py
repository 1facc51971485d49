"""Server-side SAML state shared by all workers (the Django cache: Redis or the database cache).

* Outstanding AuthnRequests: the ids we sent, so InResponseTo is checked even when the browser drops
  cookies on the IdP's cross-site POST (SameSite). Each id is usable once.
* Seen assertion ids, remembered until the assertion expires (plus clock skew), so a captured
  response cannot be posted again, whether SP- or IdP-initiated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging

from django.core.cache import caches
from django.utils import timezone

from sso.app_settings import app_settings

logger = logging.getLogger(__name__)


def state_cache():
    """The "sso" cache alias when configured (never culled early), else the default cache."""
    from django.conf import settings

    return caches["sso" if "sso" in settings.CACHES else "default"]


def _key(kind: str, provider_id: int, value: str) -> str:
    # Hash: ids are attacker-supplied and cache keys have length/charset limits (memcached, DB).
    digest = hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()
    return f"idm:sso:{kind}:{provider_id}:{digest}"


def remember_request(*, provider_id: int, request_id: str, next_path: str, browser_hash: str) -> None:
    """Record an AuthnRequest we sent, with the local path to return to and the hash of the token of
    the browser that started it (``sso.binding``). The entry expires after ``IDM_SSO_REQUEST_TTL``."""
    state_cache().set(_key("req", provider_id, request_id), {"next": next_path, "browser": browser_hash},
                 timeout=app_settings.REQUEST_TTL)


def consume_request(*, provider_id: int, request_id: str) -> dict | None:
    """Take an outstanding request (once): its data, or ``None`` if we never sent it or it was used."""
    key = _key("req", provider_id, request_id)
    cache = state_cache()
    try:
        data = cache.get(key)
        if data is None or not cache.delete(key):  # delete fails: another worker consumed it first
            return None
    except Exception:  # cache down: fail closed (the response is refused as unsolicited)
        logger.exception("SSO request cache unavailable")
        return None
    return data


def remember_assertion(*, provider_id: int, assertion_id: str, not_on_or_after: dt.datetime | None,
                       skew_seconds: int) -> bool:
    """Record an assertion id; ``False`` if it was seen before (a replay).

    ``cache.add`` is atomic on Redis and on the database cache (insert-if-absent), so two workers
    racing on the same response cannot both succeed.
    """
    now = timezone.now()
    if not_on_or_after is None:
        ttl = app_settings.REPLAY_MAX_TTL
    else:
        ttl = int((not_on_or_after - now).total_seconds()) + skew_seconds + 1
        ttl = max(60, min(ttl, app_settings.REPLAY_MAX_TTL))
    return state_cache().add(_key("assertion", provider_id, assertion_id), now.isoformat(), timeout=ttl)


def remember_message(*, kind: str, provider_id: int, message_id: str, ttl: int) -> bool:
    """Record a protocol message id (e.g. a LogoutRequest) for ``ttl`` seconds; ``False`` if seen before."""
    return state_cache().add(_key(kind, provider_id, message_id), timezone.now().isoformat(), timeout=ttl)
