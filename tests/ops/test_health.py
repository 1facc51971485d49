"""/healthz, /readyz and /metrics: answers without sign-in, real checks, no secrets."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from ops.models import BackupRecord, JobRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_worker_wait(settings):
    settings.IDM_READYZ_WORKER_TIMEOUT = 0.2


def test_healthz_answers_without_sign_in():
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_readyz_reports_database_and_cache_ok_and_missing_worker(no_worker_wait):
    response = Client().get("/readyz")
    body = response.json()
    assert response.status_code == 200  # cluster checks degrade, they do not take the server out
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["cache"]["status"] == "ok"
    assert body["checks"]["worker"] == {"status": "fail", "workers": 0, "error": "no worker answered"}
    assert body["checks"]["backup"] == {"status": "warn", "error": "no backup yet"}
    assert body["status"] == "degraded"
    assert Client().get("/readyz?strict=1").status_code == 503


def test_readyz_reports_stale_and_failed_backup(no_worker_wait):
    record = BackupRecord.objects.create(ok=True, path="x", size_bytes=10)
    assert Client().get("/readyz").json()["checks"]["backup"]["status"] == "ok"
    BackupRecord.objects.filter(pk=record.pk).update(created_at=timezone.now() - timedelta(hours=27))
    backup = Client().get("/readyz").json()["checks"]["backup"]
    assert backup["status"] == "fail" and backup["error"] == "last backup is stale"
    BackupRecord.objects.create(ok=False, error="pg_dump: boom")
    backup = Client().get("/readyz").json()["checks"]["backup"]
    assert backup["status"] == "fail" and backup["error"] == "last backup failed"
    assert "boom" not in json.dumps(backup)


def test_readyz_reports_failed_and_overdue_scheduled_jobs(no_worker_wait, settings):
    settings.CELERY_BEAT_SCHEDULE = {
        "a": {"task": "t.a", "schedule": 3600}, "b": {"task": "t.b", "schedule": 60}, "c": {"task": "t.c", "schedule": 60},
    }
    now = timezone.now()
    JobRun.objects.create(task="t.a", status="failed", started_at=now, error="ValueError: nope")
    JobRun.objects.create(task="t.b", status="ok", started_at=now - timedelta(hours=3))
    jobs = Client().get("/readyz").json()["checks"]["scheduled_jobs"]
    assert jobs["status"] == "fail"
    assert jobs["jobs"]["a"]["status"] == "fail" and jobs["jobs"]["a"]["error"] == "ValueError: nope"
    assert jobs["jobs"]["b"]["error"] == "overdue"
    assert jobs["jobs"]["c"] == {"status": "warn", "error": "never run"}


def test_readyz_reports_unreachable_redis_as_503(no_worker_wait, settings):
    # A closed port on loopback: the Redis cache fails, this server cannot serve SAML or throttling.
    settings.CACHES = {**settings.CACHES, "security": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://:s3cret-pass@127.0.0.1:1/0", "OPTIONS": {"socket_connect_timeout": 0.5}}}
    response = Client().get("/readyz")  # Django's setting_changed handler rebuilds the caches
    body = response.content.decode()
    assert response.status_code == 503
    assert response.json()["status"] == "fail"
    assert response.json()["checks"]["cache"]["errors"]["security"] == "ConnectionError"
    assert "s3cret" not in body and "127.0.0.1:1" not in body


def test_metrics_refused_without_token_from_outside(settings):
    settings.IDM_METRICS_TOKEN = "tok-123"
    assert Client().get("/metrics").status_code == 403
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer tok-123")
    assert response.status_code == 200
    assert b"idm_http_requests_total" in response.content


def test_metrics_loopback_only_without_token(settings):
    settings.IDM_METRICS_TOKEN = ""
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 403
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 403


@pytest.mark.parametrize("proxies", [0, 1, 2])
def test_metrics_refuse_a_request_forwarded_from_outside(settings, proxies):
    """Review finding: with IDM_TRUSTED_PROXIES > 0 and no token, 127.0.0.1 + X-Forwarded-For: 8.8.8.8
    was allowed. The real client address decides, and every forwarded hop must be loopback."""
    settings.IDM_METRICS_TOKEN = ""
    settings.IDM_TRUSTED_PROXIES = proxies
    local = Client(REMOTE_ADDR="127.0.0.1")
    assert local.get("/metrics", HTTP_X_FORWARDED_FOR="8.8.8.8").status_code == 403
    assert local.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1, 8.8.8.8").status_code == 403
    assert local.get("/metrics", HTTP_X_FORWARDED_FOR="8.8.8.8, 127.0.0.1").status_code == 403
    assert local.get("/metrics", HTTP_X_FORWARDED_FOR="not-an-ip").status_code == 403
    assert local.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1," * 2000).status_code == 403
    assert local.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 200
    assert local.get("/metrics").status_code == 200
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert local.get("/metrics", HTTP_X_FORWARDED_FOR="8.8.8.8").status_code == 403
    assert local.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == (200 if proxies else 403)


def _sample(name: str, **labels) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_requests_sign_ins_and_throttle(settings, user_factory):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user_factory("metric.user", password="Correct-horse-9!")
    before_fail = _sample("idm_sign_ins_total", method="password", result="failure")
    before_ok = _sample("idm_sign_ins_total", method="password", result="success")
    before_req = _sample("idm_http_requests_total", view="ops:healthz", method="GET", status="200")
    Client().get("/healthz")
    assert _sample("idm_http_requests_total", view="ops:healthz", method="GET", status="200") == before_req + 1
    client = Client()
    assert client.login(username="metric.user", password="wrong") is False
    assert client.login(username="metric.user", password="Correct-horse-9!") is True
    assert _sample("idm_sign_ins_total", method="password", result="failure") == before_fail + 1
    assert _sample("idm_sign_ins_total", method="password", result="success") == before_ok + 1
