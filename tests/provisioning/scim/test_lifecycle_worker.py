"""SCIM DELETE and ``active=false`` through the real views, the grace-period deactivation by a real
Celery worker driven by real beat (issue 9 "Semantics" and "Tests")."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from accounts.identity.types import UserState
from accounts.models import AuditEvent, UserProfile
from provisioning.models import Source, UserBlock
from tests.celery_helpers import (
    flush_test_redis,
    running_beat,
    running_worker,
    test_database_url,
    test_redis_url,
)

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
GRACE = timedelta(seconds=3)


def _state(username: str) -> str:
    return UserProfile.objects.get(user__username=username).state


def _active(scim, uid: str, value: bool):
    return scim.patch(f"/Users/{uid}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "active", "value": value}]})


@pytest.mark.worker
@pytest.mark.slow
def test_delete_and_active_false_deactivate_after_grace_in_a_real_worker(transactional_db, scim, provider):
    source, _ = provider
    Source.objects.filter(pk=source.pk).update(grace_period=GRACE)
    ids = {}
    for name in ("ann", "bob", "cid"):
        created = scim.post("/Users", {"schemas": [CORE_USER], "userName": name})
        assert created.status_code == 201, created.doc
        ids[name] = created.doc["id"]

    # Blocked at once: ann DELETEd, bob and cid set inactive; cid comes back within the grace period.
    assert scim.delete(f"/Users/{ids['ann']}").status_code == 204
    assert _active(scim, ids["bob"], False).status_code == 200
    assert _active(scim, ids["cid"], False).status_code == 200
    assert {_state(n) for n in ids} == {UserState.BLOCKED}
    assert _active(scim, ids["cid"], True).status_code == 200
    assert _state("cid") == UserState.ACTIVE and not UserBlock.objects.filter(user__username="cid").exists()

    url = test_redis_url()
    flush_test_redis(url)
    env = {"REDIS_URL": url, "DATABASE_URL": test_database_url(), "IDM_PROVISIONING_SWEEP_SECONDS": "1"}
    with running_worker(env=env, redis_url=url) as worker, running_beat(env=env, redis_url=url):
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and {_state("ann"), _state("bob")} != {UserState.DEACTIVATED}:
            time.sleep(0.5)
        assert _state("ann") == _state("bob") == UserState.DEACTIVATED, worker.log()[-3000:]
        assert "provisioning.tasks.deactivate_due_users" in worker.log()
    # cid was due at the same time as bob; her block was lifted, so the sweep left her alone.
    assert _state("cid") == UserState.ACTIVE
    for name in ("ann", "bob"):
        blocked = AuditEvent.objects.get(action="user.blocked", target_label=name)
        deactivated = AuditEvent.objects.get(action="user.deactivated", target_label=name)
        assert (deactivated.actor_label, deactivated.actor_type, deactivated.source) == ("Okta", "provider", "scim")
        assert blocked.request_id  # the SCIM request that blocked the user
        assert deactivated.created_at - blocked.created_at >= GRACE
    assert not AuditEvent.objects.filter(action="user.deactivated", target_label="cid").exists()

    # The provider says active again after the grace period: reactivated, the same user.
    assert _active(scim, ids["bob"], True).status_code == 200
    assert _state("bob") == UserState.ACTIVE
    again = scim.post("/Users", {"schemas": [CORE_USER], "userName": "ann"})
    assert again.status_code == 201 and again.doc["id"] == ids["ann"]
    assert _state("ann") == UserState.ACTIVE
