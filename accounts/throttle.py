"""Sign-in throttling: too many failed passwords or codes for one username, or from one address,
refuse further attempts for a while.

Counters live in the non-culling "security" cache (Redis when configured, else a database table),
so they are shared by all web workers and cannot be flushed out by flooding the cache. A wrong
password and a wrong two-factor code count alike: restarting the sign-in does not reset the count.
Locking by username lets an attacker lock a user out for ``IDM_SIGNIN_LOCKOUT_SECONDS``; that is the
usual trade-off against password and TOTP guessing, and the lock ends by itself.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import caches


def _limits() -> tuple[int, int, int]:
    return (
        int(getattr(settings, "IDM_SIGNIN_MAX_FAILURES", 10)),
        int(getattr(settings, "IDM_SIGNIN_MAX_FAILURES_PER_IP", 50)),
        int(getattr(settings, "IDM_SIGNIN_LOCKOUT_SECONDS", 900)),
    )


def _key(kind: str, value: str) -> str:
    # Hashed: usernames and addresses are not stored in clear in the cache.
    return f"throttle:{kind}:{hashlib.sha256(value.lower().encode('utf-8', 'replace')).hexdigest()}"


class SignInThrottle:
    """Failure counters for one sign-in attempt (username + client address)."""

    def __init__(self, *, username: str, ip: str | None):
        self.cache = caches["security"]
        self.keys = [("user", _key("user", username or ""))]
        if ip:
            self.keys.append(("ip", _key("ip", ip)))

    def blocked(self) -> bool:
        """True while the username or the address is over its limit."""
        per_user, per_ip, _ = _limits()
        counts = self.cache.get_many([key for _, key in self.keys])
        return any(counts.get(key, 0) >= (per_user if kind == "user" else per_ip) for kind, key in self.keys)

    def failure(self) -> None:
        """Count one failed password or code; the window starts at the first failure."""
        lockout = _limits()[2]
        for _, key in self.keys:
            if not self.cache.add(key, 1, timeout=lockout):
                try:
                    self.cache.incr(key)
                except ValueError:  # expired between add and incr
                    self.cache.add(key, 1, timeout=lockout)

    def success(self) -> None:
        """A successful sign-in clears the username's counter (not the address's)."""
        self.cache.delete(self.keys[0][1])
