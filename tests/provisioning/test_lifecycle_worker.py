"""The deactivation sweep in a real Celery worker driven by real beat, across a worker restart."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from accounts.identity.types import UserState
from accounts.models import AuditEvent, UserProfile
from provisioning.lifecycle import source_says_inactive
from tests.celery_helpers import (
    flush_test_redis,
    running_beat,
    running_worker,
    test_database_url,
    test_redis_url,
)


def _state(user_id: int) -> str:
    return UserProfile.objects.get(user_id=user_id).state


@pytest.mark.worker
@pytest.mark.slow
def test_beat_sweep_deactivates_after_grace_even_after_a_worker_restart(transactional_db, source_factory,
                                                                         linked_user):
    source = source_factory("Okta", grace_period=timedelta(seconds=3))
    ann = linked_user(source, "ann")
    url = test_redis_url()
    flush_test_redis(url)
    env = {"REDIS_URL": url, "DATABASE_URL": test_database_url(), "IDM_PROVISIONING_SWEEP_SECONDS": "1"}

    # A worker that is running when the user is blocked, then stops (a deploy, a crash).
    with running_worker(env=env, redis_url=url):
        source_says_inactive(source=source, user_ids=[ann.pk])
        assert _state(ann.pk) == UserState.BLOCKED
    # Nothing was held in that worker: a new worker and beat deactivate her once the grace is over.
    with running_worker(env=env, redis_url=url) as worker, running_beat(env=env, redis_url=url):
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and _state(ann.pk) != UserState.DEACTIVATED:
            time.sleep(0.5)
        assert _state(ann.pk) == UserState.DEACTIVATED, worker.log()[-3000:]
        assert "provisioning.tasks.deactivate_due_users" in worker.log()
    event = AuditEvent.objects.get(action="user.deactivated", target_label="ann")
    assert (event.actor_label, event.actor_type) == ("Okta", "provider")
    # Blocked at once, deactivated no earlier than the grace period allows.
    blocked = AuditEvent.objects.get(action="user.blocked", target_label="ann")
    assert event.created_at - blocked.created_at >= timedelta(seconds=3)
