"""Sign-in throttling: too many failed passwords or codes for one username, or from one address,
refuse further attempts for a while.

Counters live in the non-culling "security" cache (Redis when configured, else a database table),
so they are shared by all web workers and cannot be flushed out by flooding the cache. A wrong
password and a wrong two-factor code count alike: restarting the sign-in does not reset the count.
Locking by username lets an attacker lock a user out for ``IDM_SIGNIN_LOCKOUT_SECONDS``; that is the
usual trade-off against password and TOTP guessing, and the lock ends by itself.

Refused attempts are summarised, not audited one by one (an anonymous flood must not write a row
per request): ``refused()`` says when an ``auth.login_throttled`` event is due — at the first
refusal of a lock and then every ``SUMMARY_EVERY`` refusals, with the running count.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time

from django.conf import settings
from django.core.cache import caches

from accounts.identity.validators import username_key


def _limits() -> tuple[int, int, int]:
    return (
        int(getattr(settings, "IDM_SIGNIN_MAX_FAILURES", 10)),
        int(getattr(settings, "IDM_SIGNIN_MAX_FAILURES_PER_IP", 50)),
        int(getattr(settings, "IDM_SIGNIN_LOCKOUT_SECONDS", 900)),
    )


# While a lock lasts, one audit event per this many refused attempts (after the first).
SUMMARY_EVERY = 100


def bump(cache, key: str, timeout: int) -> int:
    """Add one to the counter ``key`` of ``cache`` (created with ``timeout`` seconds to live at its
    first count) and return the new count."""
    if cache.add(key, 1, timeout=timeout):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr: a new window
        cache.add(key, 1, timeout=timeout)
        return 1


def summary_due(cache, key: str, timeout: int) -> int | None:
    """Count one refused request on ``key``; the running count when an audit event is due (the first
    refusal, then every ``SUMMARY_EVERY``), else ``None``. Anonymous floods must not write an audit
    row per request: every throttle summarises its refusals through this."""
    count = bump(cache, key, timeout)
    return count if count == 1 or count % SUMMARY_EVERY == 0 else None


def _key(kind: str, value: str) -> str:
    # Hashed: usernames and addresses are not stored in clear in the cache.
    return f"throttle:{kind}:{hashlib.sha256(value.lower().encode('utf-8', 'replace')).hexdigest()}"


class SignInThrottle:
    """Failure counters for one sign-in attempt (username + client address).

    The username counts by ``username_key`` (NFKC, lower case), the key sign-in finds users by
    (``accounts.selectors.users_named``): "ｅmma.eng" (fullwidth e) signs in as emma.eng, so it
    must meet emma.eng's counter and lock, not get ten tries of its own (review 3 M2).
    """

    def __init__(self, *, username: str, ip: str | None):
        self.cache = caches["security"]
        self.username = username_key(username or "")
        self.keys = [("user", _key("user", self.username))]
        if ip:
            self.keys.append(("ip", _key("ip", ip)))

    def blocked(self) -> bool:
        """True while the username or the address is over its limit."""
        return self.blocked_by() is not None

    def blocked_by(self) -> str | None:
        """"user" or "ip": which counter is over its limit (the username's first), else ``None``."""
        per_user, per_ip, _ = _limits()
        counts = self.cache.get_many([key for _, key in self.keys])
        for kind, key in self.keys:
            if counts.get(key, 0) >= (per_user if kind == "user" else per_ip):
                return kind
        return None

    def refused(self) -> int | None:
        """Count one attempt refused by a lock; return the count when an audit event is due, else ``None``.

        The count belongs to the lock that refused (the username's or the address's), so spraying
        usernames from one locked address still yields one event per ``SUMMARY_EVERY`` attempts.
        """
        kind = self.blocked_by()
        if kind is None:
            return None
        key = dict(self.keys)[kind].replace("throttle:", "throttled:", 1)
        return summary_due(self.cache, key, _limits()[2])

    def failure(self, *, count_username: bool = True) -> None:
        """Count one failed password or code; the window starts at the first failure.

        The failure that reaches a limit starts the lock: it lasts the full lockout from then, and a
        username lock is recorded (``SignInLock``) so the console can show and lift it.
        ``count_username=False`` counts the address only: for an attempt whose password nobody could
        check (the user's directory did not answer), so an outage does not lock users out while a flood
        from one address is still limited.
        """
        per_user, per_ip, lockout = _limits()
        for kind, key in self.keys:
            if kind == "user" and not count_username:
                continue
            count = bump(self.cache, key, lockout)
            if count == (per_user if kind == "user" else per_ip):
                self._lock(kind, key, lockout)

    def _lock(self, kind: str, key: str, lockout: int) -> None:
        until = time.time() + lockout
        self.cache.touch(key, lockout)
        self.cache.set(f"{key}:until", until, timeout=lockout)
        if kind == "user" and self.username:
            from django.utils import timezone

            from accounts.credentials.models import SignInLock

            now = timezone.now()
            SignInLock.objects.filter(locked_until__lte=now).delete()  # expired locks, any user
            SignInLock.objects.update_or_create(username=self.username[:150], defaults={
                "locked_until": dt.datetime.fromtimestamp(until, dt.UTC)})

    def locked_until(self) -> dt.datetime | None:
        """When the current lock (username or address, the later one) ends; ``None`` if unknown."""
        stamps = self.cache.get_many([f"{key}:until" for _, key in self.keys])
        latest = max(stamps.values(), default=None)
        return dt.datetime.fromtimestamp(latest, dt.UTC) if latest else None

    def success(self) -> None:
        """A successful sign-in clears the username's counter (not the address's)."""
        self.reset()

    def reset(self) -> None:
        """Clear the username's counter and lock (sign-in success, or an admin's unlock)."""
        key = self.keys[0][1]
        self.cache.delete_many([key, f"{key}:until"])
        if self.username:
            from accounts.credentials.models import SignInLock

            SignInLock.objects.filter(username=self.username[:150]).delete()
