"""Issue 7 §5: anonymous SSO sign-in starts write bounded, expiring state that is purged on a schedule."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from sso import replay
from sso.app_settings import app_settings
from sso.services import purge_expired_state
from sso.tasks import purge_expired_sso_state


def _rows(pattern: str = "%") -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM idm_sso_cache WHERE cache_key LIKE %s", [pattern])
        return cursor.fetchone()[0]


def _age_request_rows(seconds: int) -> None:
    """Make the outstanding-request rows look ``seconds`` older (time passing), nothing else."""
    past = timezone.now() - dt.timedelta(seconds=seconds)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE idm_sso_cache SET expires = %s WHERE cache_key LIKE %s",
                       [connection.ops.adapt_datetimefield_value(past), "%:req:%"])


def test_anonymous_login_starts_expire_and_are_purged(provider):
    assert _rows("%:req:%") == 0
    for _ in range(25):  # 25 anonymous visitors, each its own browser
        assert Client().get(f"/sso/{provider.pk}/login/").status_code == 302
    assert _rows("%:req:%") == 25
    later = timezone.now() + dt.timedelta(minutes=5)
    assert replay.remember_assertion(provider_id=provider.pk, assertion_id="a-live", not_on_or_after=later,
                                     skew_seconds=60)
    assert purge_expired_state() == 0  # nothing expired yet
    _age_request_rows(app_settings.REQUEST_TTL + 1)
    assert purge_expired_state() == 25
    assert _rows("%:req:%") == 0
    # Live state survives: the assertion id is still remembered (a replay is still refused).
    assert not replay.remember_assertion(provider_id=provider.pk, assertion_id="a-live", not_on_or_after=later,
                                         skew_seconds=60)


def test_task_wraps_the_purge(provider):
    Client().get(f"/sso/{provider.pk}/login/")
    _age_request_rows(app_settings.REQUEST_TTL + 1)
    assert purge_expired_sso_state.run() == 1


def test_purge_is_scheduled_and_registered(settings):
    from idm.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["sso-purge-expired-state"]
    assert entry["task"] == "sso.tasks.purge_expired_state" and entry["schedule"] <= 3600
    app.loader.import_default_modules()
    assert "sso.tasks.purge_expired_state" in app.tasks


@pytest.mark.parametrize(("configured", "effective"), [(10**9, 3600), (0, 60), (300, 300)])
def test_request_ttl_is_bounded(settings, provider, configured, effective):
    settings.IDM_SSO_REQUEST_TTL = configured
    assert app_settings.REQUEST_TTL == effective
    resp = Client().get(f"/sso/{provider.pk}/login/")
    assert int(resp.cookies["idm_sso_browser"]["max-age"]) == effective


def test_redis_state_expires_by_itself(settings, provider):
    """With Redis every outstanding request is stored with a TTL; the purge has nothing to do."""
    import redis

    from tests.celery_helpers import test_redis_url

    url = test_redis_url()
    settings.CACHES = {**settings.CACHES, "sso": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                                   "LOCATION": url, "KEY_PREFIX": "sso-test"}}
    client = redis.Redis.from_url(url)
    for key in client.scan_iter("sso-test:*"):
        client.delete(key)
    Client().get(f"/sso/{provider.pk}/login/")
    keys = list(client.scan_iter("sso-test:*:req:*"))
    assert len(keys) == 1 and 0 < client.ttl(keys[0]) <= app_settings.REQUEST_TTL
    assert purge_expired_state() == 0
    client.delete(*keys)
