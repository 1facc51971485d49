"""The dashboard: per-day series (cached past, live today), alerts, backup panel, scoping per viewer."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import models
from django.test import Client
from django.utils import timezone

from accounts.identity.audit import build_event, save_events
from accounts.identity.types import Actor
from accounts.models import AuditEvent
from ops import dashboard
from ops.models import BackupRecord, JobRun
from tests.accounts.console_support import directory, fast_hasher  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def clear_cache():
    cache.clear()
    yield
    cache.clear()


def _events(action: str, n: int, *, days_ago: int = 0, source: str = "local") -> None:
    events = [build_event(actor=Actor.system("t"), action=action, target_label=f"u{i}") for i in range(n)]
    save_events(events)
    qs = models.QuerySet(AuditEvent).filter(pk__in=[e.pk for e in events])
    assert qs.update(created_at=timezone.now() - timedelta(days=days_ago), source=source) == n


def test_sign_ins_per_day_counts_success_and_failure_by_day():
    _events("auth.login_succeeded", 3)
    _events("auth.login_failed", 2)
    _events("auth.mfa_failed", 1, days_ago=2)
    _events("auth.login_succeeded", 4, days_ago=40)  # outside the window
    series = dashboard.sign_ins_per_day()
    assert len(series.days) == 30 and series.days[-1] == timezone.localdate()
    assert series.values["succeeded"][-1] == 3 and series.values["failed"][-1] == 2
    assert series.values["failed"][-3] == 1
    assert sum(series.values["succeeded"]) == 3


def test_past_days_cached_for_the_day_today_for_a_minute():
    _events("auth.login_failed", 1, days_ago=1)
    first = dashboard.sign_ins_per_day()
    assert first.values["failed"][-2] == 1 and first.values["failed"][-1] == 0
    _events("auth.login_failed", 5, days_ago=1)  # a finished day does not change in practice; its rollup holds
    _events("auth.login_failed", 2)
    assert dashboard.sign_ins_per_day().values["failed"][-1] == 0  # today's count is at most a minute old
    today = timezone.localdate().isoformat()
    cache.delete(f"idm:dashboard:signins:today:{today}", version=dashboard.CACHE_VERSION)  # the minute is up
    series = dashboard.sign_ins_per_day()
    assert series.values["failed"][-2] == 1 and series.values["failed"][-1] == 2


def test_changes_per_day_by_source():
    _events("user.created", 4, source="bulk")
    _events("user.updated", 1, source="local")
    _events("auth.login_failed", 9)  # not a change
    series = dashboard.changes_per_day()
    assert series.values["bulk"][-1] == 4 and series.values["local"][-1] == 1
    assert set(series.values) == {"bulk", "local"}


def test_cloud_admin_dashboard_shows_alerts_backup_and_tables(directory):  # noqa: F811
    _events("auth.login_failed", 2)
    _events("auth.login_throttled", 1)
    JobRun.objects.create(task="ops.backup_daily", status="failed", started_at=timezone.now(), error="OSError: disk full")
    client = Client()
    client.force_login(directory.admin)
    body = client.get("/").content.decode()
    assert 'data-alert="backup_missing"' in body and 'data-backup-state="missing"' in body
    assert 'data-alert="job_failed"' in body and "disk full" in body
    assert 'data-alert="account_throttled"' in body
    table = body.split('data-chart-table="sign-ins"')[1].split("</table>")[0]
    today = timezone.localdate().isoformat()
    # force_login signed the admin in once (1 succeeded); 2 failed + 1 throttled = 3 failed.
    assert re.search(rf"<td>{today}</td><td class=\"num\">1</td><td class=\"num\">3</td>", table), table[-400:]
    assert "<svg" in body and 'class="chart-s1"' in body


def test_stale_backup_warns_and_fresh_one_does_not(directory):  # noqa: F811
    client = Client()
    client.force_login(directory.admin)
    record = BackupRecord.objects.create(ok=True, path="/b/idm-x.pgdump", size_bytes=2048)
    body = client.get("/").content.decode()
    assert 'data-backup-state="ok"' in body and "backup_" not in body.split('id="alerts-h"')[1].split("</section>")[0]
    BackupRecord.objects.filter(pk=record.pk).update(created_at=timezone.now() - timedelta(hours=27))
    body = client.get("/").content.decode()
    assert 'data-alert="backup_stale"' in body and 'data-backup-state="stale"' in body
    BackupRecord.objects.create(ok=False, error="pg_dump_failed: boom")
    body = client.get("/").content.decode()
    assert 'data-alert="backup_failed"' in body and 'data-backup-state="failed"' in body


def test_org_admin_sees_no_instance_wide_figures(directory):  # noqa: F811
    _events("auth.login_failed", 2)
    client = Client()
    client.force_login(directory.eng_admin)
    response = client.get("/")
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="alerts-h"' not in body and 'data-chart-table' not in body and 'id="backup-h"' not in body
    assert 'id="source-h"' in body  # users by source, within their own subtree


def test_finished_days_are_rolled_up_once_including_empty_days():
    from ops.models import DailyCount

    _events("auth.login_succeeded", 2, days_ago=3)
    dashboard.warm()
    assert DailyCount.objects.filter(series="signins", key="").count() == 29  # every finished day marked
    assert DailyCount.objects.get(series="signins", key="succeeded").n == 2
    assert DailyCount.objects.filter(series="changes", key="").count() == 29
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    cache.clear()  # today's minute-long cache too
    with CaptureQueriesContext(connection) as ctx:
        dashboard.sign_ins_per_day()
    audit_queries = [q for q in ctx.captured_queries if "accounts_auditevent" in q["sql"]]
    assert len(audit_queries) == 1  # only today's events are counted (the rest is in the rollup)


def test_first_visit_after_midnight_counts_yesterday_and_today_in_one_query():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from ops.models import DailyCount

    _events("auth.login_failed", 3, days_ago=1)
    _events("auth.login_failed", 4)
    dashboard.warm()
    yesterday = timezone.localdate() - timedelta(days=1)
    DailyCount.objects.filter(day=yesterday).delete()  # as if the day had just ended
    cache.clear()
    with CaptureQueriesContext(connection) as ctx:
        series = dashboard.sign_ins_per_day()
    assert len([q for q in ctx.captured_queries if "accounts_auditevent" in q["sql"]]) == 1
    assert series.values["failed"][-2:] == [3, 4]
    assert DailyCount.objects.get(series="signins", day=yesterday, key="failed").n == 3
    assert not DailyCount.objects.filter(series="signins", day=timezone.localdate()).exists()  # today is not final
