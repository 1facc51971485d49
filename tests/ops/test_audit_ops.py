"""Audit retention purge, streamed export (CSV / JSON lines, capped), complete sign-in events."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.identity.audit import build_event, save_events
from accounts.identity.types import Actor
from accounts.models import AuditEvent
from ops import logcontext
from ops.retention import audit_purge
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db


def _events(n: int, *, age_days: float, action: str = "test.old") -> None:
    save_events([build_event(actor=Actor.system("t"), action=action, target_label=f"e{i}") for i in range(n)])
    # created_at is auto_now_add: move them back in time with the base queryset (audit rows are append-only).
    from django.db import models

    models.QuerySet(AuditEvent).filter(action=action).update(created_at=timezone.now() - timedelta(days=age_days))


def test_purge_deletes_only_events_beyond_retention_and_audits_itself(settings):
    settings.IDM_AUDIT_RETENTION_DAYS = 30
    _events(5, age_days=31, action="test.old")
    _events(3, age_days=29, action="test.recent")
    result = audit_purge()
    assert result.deleted == 5 and result.retention_days == 30
    assert not AuditEvent.objects.filter(action="test.old").exists()
    assert AuditEvent.objects.filter(action="test.recent").count() == 3
    purge = AuditEvent.objects.get(action="audit.purged")
    assert purge.new_value["deleted"] == 5 and purge.new_value["retention_days"] == 30
    assert purge.new_value["before"] == result.before.isoformat()
    assert purge.actor_type == "system" and "Deleted 5 audit events" in purge.message


def test_purge_default_is_90_days():
    _events(2, age_days=91, action="test.old")
    _events(2, age_days=89, action="test.recent")
    assert audit_purge().deleted == 2
    assert AuditEvent.objects.filter(action="test.recent").count() == 2


def test_purge_task_runs_eagerly(settings):
    from ops.tasks import audit_purge_daily

    _events(1, age_days=400)
    assert audit_purge_daily.apply().get()["deleted"] == 1


@pytest.fixture
def auditor_client(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


def test_export_json_lines_streams_values_with_types(auditor_client):
    _events(3, age_days=1, action="test.export")
    response = auditor_client.get("/audit/export.csv", {"format": "jsonl", "action": "test.export"})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert len(lines) == 3 and {line["action"] for line in lines} == {"test.export"}
    assert lines[0]["actor"] == "t" and set(lines[0]) >= {"time", "ip_address", "request_id", "job_id"}


def test_export_is_capped(auditor_client, monkeypatch):
    import ops.audit_export

    monkeypatch.setattr(ops.audit_export, "AUDIT_EXPORT_LIMIT", 4)
    _events(6, age_days=1, action="test.cap")
    body = b"".join(auditor_client.get("/audit/export.csv", {"action": "test.cap"}).streaming_content).decode()
    rows = list(csv.reader(io.StringIO(body)))
    assert len(rows) == 1 + 4
    jsonl = b"".join(auditor_client.get("/audit/export.csv", {"action": "test.cap", "format": "jsonl"}).streaming_content)
    assert len(jsonl.decode().splitlines()) == 4


def test_csv_export_guards_formulas(auditor_client):
    save_events([build_event(actor=Actor.system("=HYPERLINK(1)"), action="test.formula", target_label="@SUM(A1)")])
    body = b"".join(auditor_client.get("/audit/export.csv", {"action": "test.formula"}).streaming_content).decode()
    row = list(csv.reader(io.StringIO(body)))[1]
    assert row[1] == "'=HYPERLINK(1)" and row[6] == "'@SUM(A1)"


def test_sign_in_events_carry_method_ip_and_user_agent(user_factory, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user_factory("sig.user", password=TEST_PASSWORD)
    client = Client(HTTP_USER_AGENT="Mozilla/5.0 TestAgent", REMOTE_ADDR="192.0.2.7")
    client.post("/sign-in/", {"username": "sig.user", "password": "wrong-one", "step": "password"})
    client.post("/sign-in/", {"username": "sig.user", "password": TEST_PASSWORD, "step": "password"})
    client.post("/sign-out/")
    events = {e.action: e for e in AuditEvent.objects.filter(action__startswith="auth.", target_label="sig.user")}
    assert set(events) >= {"auth.login_failed", "auth.login_succeeded", "auth.logout"}, set(events)
    for action in ("auth.login_failed", "auth.login_succeeded", "auth.logout"):
        event = events[action]
        assert event.new_value["method"] == "password", action
        assert event.new_value["user_agent"] == "Mozilla/5.0 TestAgent", action
        assert event.ip_address == "192.0.2.7", action


def test_two_factor_and_sso_events_name_their_method():
    from accounts.identity.audit import record_event

    token = logcontext.user_agent.set("Agent/2")
    try:
        mfa = record_event(actor=Actor.system("t"), action="auth.mfa_failed", new={"reason": "wrong_code"})
        sso = record_event(actor=Actor.system("t"), action="auth.sso_login_failed", new={"reason": "replayed"})
        other = record_event(actor=Actor.system("t"), action="user.updated", new="x")
    finally:
        logcontext.user_agent.reset(token)
    assert AuditEvent.objects.get(pk=mfa.pk).new_value == {"reason": "wrong_code", "method": "two_factor",
                                                           "user_agent": "Agent/2"}
    assert AuditEvent.objects.get(pk=sso.pk).new_value["method"] == "sso"
    assert AuditEvent.objects.get(pk=other.pk).new_value == "x"  # only sign-in events are completed
