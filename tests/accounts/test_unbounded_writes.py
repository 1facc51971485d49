"""Anonymous requests must not grow the database without bound (issue 7 §5): expired database-cache
rows are deleted on a schedule, and throttled sign-in attempts are summarised, not audited one by one.
Also: signed-in responses are never stored by caches (Cache-Control: no-store)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from accounts.cache_expiry import expire_cache_rows
from accounts.models import AuditEvent
from accounts.tasks import expire_cache_rows as expire_task
from accounts.throttle import SUMMARY_EVERY, SignInThrottle
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db


def _rows(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")  # noqa: S608
        return cursor.fetchone()[0]


@pytest.fixture
def db_caches():
    tables = {alias: cfg["LOCATION"] for alias, cfg in django_settings.CACHES.items()
              if cfg["BACKEND"].endswith("DatabaseCache")}
    if not tables:
        pytest.skip("REDIS_URL is set: no database cache to expire")
    return tables


def test_expired_rows_are_deleted_from_every_database_cache(db_caches):
    for alias in db_caches:
        caches[alias].set(f"short-{alias}", "x", timeout=60)
        caches[alias].set(f"long-{alias}", "y", timeout=3600)
    before = {table: _rows(table) for table in set(db_caches.values())}
    assert all(count >= 2 for count in before.values())

    assert expire_cache_rows() == {table: 0 for table in before}  # nothing has expired yet
    deleted = expire_cache_rows(now=timezone.now() + timedelta(minutes=5))
    per_table = {table: sum(1 for t in db_caches.values() if t == table) for table in before}
    assert deleted == per_table  # one short-lived row per alias, aliases sharing a table counted once
    for alias in db_caches:
        assert caches[alias].get(f"long-{alias}") == "y"
        assert caches[alias].get(f"short-{alias}") is None
    assert {table: _rows(table) for table in before} == {t: before[t] - per_table[t] for t in before}


def test_the_task_runs_the_expiry(db_caches):
    # In-process (Task.apply): a worker started by the tests uses Redis as its cache, not these tables.
    table = db_caches["security"]
    with connection.cursor() as cursor:
        caches["security"].set("gone", 1, timeout=60)
        cursor.execute(f"UPDATE {connection.ops.quote_name(table)} SET expires = %s",  # noqa: S608
                       [connection.ops.adapt_datetimefield_value(timezone.now() - timedelta(hours=1))])
    result = expire_task.apply().get()
    assert result[table] >= 1 and _rows(table) == 0


def test_beat_runs_the_expiry_hourly():
    entry = django_settings.CELERY_BEAT_SCHEDULE["accounts-expire-cache-rows"]
    assert entry == {"task": "accounts.expire_cache_rows", "schedule": 3600}


@pytest.fixture
def limits(settings):
    settings.IDM_SIGNIN_MAX_FAILURES = 2
    settings.IDM_SIGNIN_MAX_FAILURES_PER_IP = 1000
    settings.IDM_SIGNIN_LOCKOUT_SECONDS = 60
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def sign_in(client, username, password):
    return client.post(reverse("accounts:login"), {"username": username, "password": password})


def test_throttled_attempts_write_one_event_then_a_count(client, user_factory, limits):
    user_factory("victim")
    for _ in range(2):
        assert sign_in(client, "victim", "Wrong-Pass-123").status_code == 400
    for _ in range(SUMMARY_EVERY + 5):
        assert sign_in(client, "victim", TEST_PASSWORD).status_code == 429
    events = list(AuditEvent.objects.filter(action="auth.login_throttled").order_by("id"))
    summary = [{k: e.new_value[k] for k in ("refused_attempts", "locked")} for e in events]
    assert summary == [{"refused_attempts": 1, "locked": "user"}, {"refused_attempts": SUMMARY_EVERY, "locked": "user"}]
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == 2


def test_a_locked_address_spraying_usernames_is_summarised(client, db, settings, limits):
    settings.IDM_SIGNIN_MAX_FAILURES_PER_IP = 3
    for i in range(3):
        sign_in(client, f"spray{i}", "Wrong-Pass-123")
    for i in range(20):
        assert sign_in(client, f"other{i}", "Wrong-Pass-123").status_code == 429
    events = AuditEvent.objects.filter(action="auth.login_throttled")
    assert events.count() == 1
    assert {k: events.get().new_value[k] for k in ("refused_attempts", "locked")} == {"refused_attempts": 1,
                                                                                       "locked": "ip"}


def test_refused_counts_only_while_locked(db, limits):
    throttle = SignInThrottle(username="carol", ip="192.0.2.1")
    assert throttle.refused() is None  # not locked: nothing to count
    throttle.failure()
    throttle.failure()
    assert throttle.blocked_by() == "user"
    assert throttle.refused() == 1
    assert [throttle.refused() for _ in range(SUMMARY_EVERY - 2)] == [None] * (SUMMARY_EVERY - 2)
    assert throttle.refused() == SUMMARY_EVERY


# --- Cache-Control ------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    reverse("accounts:home"), reverse("accounts:user_list"), reverse("accounts:account"),
    reverse("accounts:audit_list"), reverse("accounts:audit_export"), reverse("bulk:export"),
    reverse("bulk:start"),
])
def test_signed_in_pages_and_exports_are_not_stored(admin_client, url):
    response = admin_client.get(url)
    assert response.status_code == 200
    directives = {d.strip() for d in response["Cache-Control"].split(",")}
    assert {"no-store", "no-cache", "private"} <= directives


def test_anonymous_pages_keep_their_own_cache_policy(client, db):
    response = client.get(reverse("accounts:login"))
    assert response.status_code == 200
    # The sign-in page is never_cache by itself; the middleware adds nothing for anonymous users.
    assert "no-store" in response["Cache-Control"]
    response = client.get(reverse("accounts:home"))
    assert response.status_code == 302 and "Cache-Control" not in response
