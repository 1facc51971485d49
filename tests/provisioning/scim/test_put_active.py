"""PUT with ``active`` (issue 9 "Semantics": ``active=false`` by PATCH *or PUT*): the lifecycle's
block-then-deactivate, ``active=true`` lifts the provider's own block, a PUT without ``active``
leaves it as the provider last said."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from accounts.identity.types import UserState
from provisioning.models import UserBlock

pytestmark = pytest.mark.django_db
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def state() -> str:
    return User.objects.get(username="ann").profile.state


def test_put_active_false_blocks_and_true_unblocks(scim, provider):
    uid = scim.post("/Users", {"schemas": [CORE_USER], "userName": "ann"}).doc["id"]
    off = scim.put(f"/Users/{uid}", {"schemas": [CORE_USER], "userName": "ann", "active": False})
    assert off.status_code == 200 and off.doc["active"] is False
    assert state() == UserState.BLOCKED
    block = UserBlock.objects.get(user__username="ann")
    assert block.source == provider[0] and block.deactivate_after is not None
    kept = scim.put(f"/Users/{uid}", {"schemas": [CORE_USER], "userName": "ann", "title": "CTO"})
    assert kept.status_code == 200 and kept.doc["active"] is False and state() == UserState.BLOCKED
    on = scim.put(f"/Users/{uid}", {"schemas": [CORE_USER], "userName": "ann", "active": "True"})
    assert on.status_code == 200 and on.doc["active"] is True
    assert state() == UserState.ACTIVE and not UserBlock.objects.filter(user__username="ann").exists()


def test_put_active_true_does_not_lift_an_admin_block(scim, admin_actor):
    from accounts.console_actions import user_block

    uid = scim.post("/Users", {"schemas": [CORE_USER], "userName": "ann"}).doc["id"]
    user_block(actor=admin_actor, user=User.objects.get(username="ann"))
    assert state() == UserState.BLOCKED
    response = scim.put(f"/Users/{uid}", {"schemas": [CORE_USER], "userName": "ann", "active": True})
    assert response.status_code == 200
    assert state() == UserState.BLOCKED  # the admin's block stays
