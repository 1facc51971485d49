"""Delete expired rows of the database caches.

Django's ``DatabaseCache`` deletes expired rows only while culling, i.e. when a write finds more
than ``MAX_ENTRIES`` rows. The security cache (SAML request state, replay ids, throttle counters)
is configured never to cull, so without this every anonymous SSO start or failed sign-in would
leave a row behind for good (issue 7 §5). A Celery beat entry runs ``expire_cache_rows`` hourly.
Redis caches expire keys by themselves and are skipped.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.db import connections, router, transaction
from django.utils import timezone


def expire_cache_rows(*, now: datetime | None = None) -> dict[str, int]:
    """Delete rows that expired before ``now`` from each database cache table; table -> rows deleted."""
    deleted: dict[str, int] = {}
    for alias in settings.CACHES:
        cache = caches[alias]
        # Aliases may share one table ("sso" and "security"): each table once.
        if isinstance(cache, DatabaseCache) and cache._table not in deleted:
            deleted[cache._table] = expire_cache(cache, now=now)
    return deleted


def expire_cache(cache, *, now: datetime | None = None) -> int:
    """Delete the expired rows of one cache when it is a ``DatabaseCache``; rows deleted (0 otherwise)."""
    if not isinstance(cache, DatabaseCache):
        return 0
    now = (now or timezone.now()).replace(microsecond=0)
    if not settings.USE_TZ and timezone.is_aware(now):
        now = timezone.make_naive(now)
    db = router.db_for_write(cache.cache_model_class)
    connection = connections[db]
    with transaction.atomic(using=db), connection.cursor() as cursor:
        # The table name comes from settings (CACHES LOCATION), quoted like Django's own culling does.
        sql = f"DELETE FROM {connection.ops.quote_name(cache._table)} WHERE {connection.ops.quote_name('expires')} < %s"  # noqa: S608
        cursor.execute(sql, [connection.ops.adapt_datetimefield_value(now)])
        return max(cursor.rowcount, 0)
