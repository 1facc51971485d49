"""Readiness checks for /readyz: each returns a small JSON-safe dict, never a secret or a URL.

Two kinds. *Local* checks (database, caches) decide whether this server can answer requests: one
failing makes /readyz answer 503 so a load balancer takes the server out. *Cluster* checks (a Celery
worker, the last backup, scheduled jobs) describe state every server shares: taking every server out
because a backup is stale would turn a warning into an outage, so by default they make the status
``degraded`` with 200; ``/readyz?strict=1`` (for monitoring) answers 503 for them too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.utils import timezone

from ops.app_settings import ops_settings

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass
class Check:
    """One check's result: ``status`` is ok, warn (worth a look, not failing) or fail."""

    name: str
    status: str
    local: bool
    detail: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"status": self.status, **self.detail}


def _error(exc: BaseException) -> str:
    # The class name only: messages of connection errors can carry host names or credentials.
    return type(exc).__name__


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        return Check("database", FAIL, True, {"error": _error(exc)})
    return Check("database", OK, True, {"vendor": connection.vendor})


def check_caches() -> Check:
    """Write, read and delete a key in each cache (default, SAML replay, throttling)."""
    failed = {}
    for alias in settings.CACHES:
        key = f"idm:readyz:{uuid.uuid4().hex}"
        try:
            cache = caches[alias]
            cache.set(key, "1", 30)
            if cache.get(key) != "1":
                failed[alias] = "value not kept"
            cache.delete(key)
        except Exception as exc:  # noqa: BLE001
            failed[alias] = _error(exc)
    backend = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    if failed:
        return Check("cache", FAIL, True, {"backend": backend, "errors": failed})
    return Check("cache", OK, True, {"backend": backend})


def check_worker() -> Check:
    """A Celery worker answers a control ping within IDM_READYZ_WORKER_TIMEOUT seconds."""
    from idm.celery import app

    try:
        replies = app.control.ping(timeout=ops_settings.worker_ping_timeout)
    except Exception as exc:  # noqa: BLE001 - broker unreachable
        return Check("worker", FAIL, False, {"error": _error(exc)})
    if not replies:
        return Check("worker", FAIL, False, {"workers": 0, "error": "no worker answered"})
    return Check("worker", OK, False, {"workers": len(replies)})


def check_backup() -> Check:
    """The newest backup: missing (warn), failed or older than IDM_BACKUP_MAX_AGE_HOURS (fail)."""
    from ops.models import BackupRecord

    last = BackupRecord.objects.first()
    if last is None:
        return Check("backup", WARN, False, {"error": "no backup yet"})
    age = (timezone.now() - last.created_at).total_seconds()
    detail = {"age_seconds": int(age), "at": last.created_at.isoformat()}
    if not last.ok:
        return Check("backup", FAIL, False, {**detail, "error": "last backup failed"})
    if age > ops_settings.backup_max_age_hours * 3600:
        return Check("backup", FAIL, False, {**detail, "error": "last backup is stale"})
    return Check("backup", OK, False, {**detail, "size_bytes": last.size_bytes})


def _interval_seconds(schedule) -> float | None:
    if isinstance(schedule, int | float):
        return float(schedule)
    if isinstance(schedule, timedelta):
        return schedule.total_seconds()
    run_every = getattr(schedule, "run_every", None)  # celery.schedules.schedule / crontab
    return run_every.total_seconds() if isinstance(run_every, timedelta) else None


def check_scheduled_jobs() -> Check:
    """Each beat entry's last run: failed (fail), not run for twice its interval plus an hour (fail)."""
    from ops.models import JobRun

    runs = {run.task: run for run in JobRun.objects.all()}
    now = timezone.now()
    jobs, worst = {}, OK
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        run = runs.get(entry["task"])
        interval = _interval_seconds(entry["schedule"])
        if run is None:
            jobs[name] = {"status": WARN, "error": "never run"}
            worst = worst if worst == FAIL else WARN
            continue
        info = {"status": OK, "last_run": run.started_at.isoformat(), "result": run.status}
        if run.status == JobRun.Status.FAILED:
            info.update(status=FAIL, error=run.error[:200])
        elif interval and (now - run.started_at).total_seconds() > 2 * interval + 3600:
            info.update(status=FAIL, error="overdue")
        jobs[name] = info
        if info["status"] == FAIL:
            worst = FAIL
    return Check("scheduled_jobs", worst, False, {"jobs": jobs})


CHECKS = (check_database, check_caches, check_worker, check_backup, check_scheduled_jobs)


def readiness(*, strict: bool = False) -> tuple[int, dict]:
    """Run every check; return (HTTP status, JSON body)."""
    results = []
    for check in CHECKS:
        try:
            results.append(check())
        except Exception as exc:  # noqa: BLE001 - e.g. the tables of a cluster check on a dead database
            results.append(Check(check.__name__.removeprefix("check_"), FAIL, False, {"error": _error(exc)}))
    local_failed = any(c.status == FAIL and c.local for c in results)
    cluster_failed = any(c.status == FAIL and not c.local for c in results)
    status = "fail" if local_failed else "degraded" if cluster_failed else "ok"
    code = 503 if local_failed or (strict and cluster_failed) else 200
    return code, {"status": status, "checks": {c.name: c.as_dict() for c in results}}
