"""Every Celery beat entry names a task the worker actually registers (a typo would fail silently)."""

from __future__ import annotations

from django.conf import settings

from idm.celery import app


def test_beat_schedule_tasks_are_registered():
    app.loader.import_default_modules()
    assert settings.CELERY_BEAT_SCHEDULE, "beat has nothing to run"
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert entry["task"] in app.tasks, f"beat entry {name!r} names unknown task {entry['task']!r}"
