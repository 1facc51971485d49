"""Metrics fed from uploads and Celery tasks; the job id in the log context while a task runs."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from accounts.bulk_upload.models import BulkUpload
from ops import logcontext
from ops.signals import task_failed, task_finished, task_started
from tests.accounts.bulk_support import media, upload_text  # noqa: F401


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.django_db
def test_upload_rows_counted_once_when_the_upload_finishes(admin_user, media):  # noqa: F811
    upload, _ = upload_text("username,email\nm.one,m1@example.com\n", user=admin_user)
    before = {r: sample("idm_upload_rows_total", result=r) for r in ("created", "updated", "error")}
    upload.status = BulkUpload.Status.APPLYING
    upload.save()
    upload.status, upload.created_count, upload.updated_count, upload.error_count = BulkUpload.Status.DONE, 7, 2, 1
    upload.save()
    upload.save()  # saved again after finishing: not counted twice
    assert sample("idm_upload_rows_total", result="created") == before["created"] + 7
    assert sample("idm_upload_rows_total", result="updated") == before["updated"] + 2
    assert sample("idm_upload_rows_total", result="error") == before["error"] + 1


class FakeTask:
    name = "ops.test_task"


@pytest.mark.django_db
def test_task_signals_record_duration_failure_job_id_and_last_run():
    from ops.models import JobRun

    count_before = sample("idm_celery_task_duration_seconds_count", task="ops.test_task")
    failures_before = sample("idm_celery_task_failures_total", task="ops.test_task")
    task_started(task_id="job-123", task=FakeTask())
    assert logcontext.current()["job_id"] == "job-123"
    assert JobRun.objects.get(task="ops.test_task").status == "running"
    task_failed(sender=FakeTask(), task_id="job-123", exception=ValueError("bad input"))
    task_finished(task_id="job-123", task=FakeTask(), state="FAILURE")
    assert "job_id" not in logcontext.current()
    run = JobRun.objects.get(task="ops.test_task")
    assert run.status == "failed" and run.error == "ValueError: bad input" and run.duration_seconds is not None
    assert sample("idm_celery_task_duration_seconds_count", task="ops.test_task") == count_before + 1
    assert sample("idm_celery_task_failures_total", task="ops.test_task") == failures_before + 1
    task_started(task_id="job-124", task=FakeTask())
    task_finished(task_id="job-124", task=FakeTask(), state="SUCCESS")
    run.refresh_from_db()
    assert run.status == "ok" and run.error == "" and run.last_success_at is not None
