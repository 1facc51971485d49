"""The last Customer Cloud Admin under concurrency (issue 7 §2): two admins deactivate each other at
the same moment, on two real PostgreSQL connections. Exactly one succeeds."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from accounts.exceptions import IdentityError
from accounts.identity.service import apply_identity_change
from accounts.identity.types import Actor, IdentityChange, UserState
from accounts.models import UserProfile
from accounts.roles import CUSTOMER_CLOUD_ADMIN

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_admins_deactivating_each_other_leave_one(user_factory):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: two sessions with row/advisory locks (SQLite has one writer)")
    first = user_factory("admin-a", roles=[CUSTOMER_CLOUD_ADMIN])
    second = user_factory("admin-b", roles=[CUSTOMER_CLOUD_ADMIN])
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def deactivate(actor_user, target):
        try:
            barrier.wait(timeout=10)
            apply_identity_change(actor=Actor.for_user(actor_user), change=IdentityChange(
                user_id=target.pk, state=UserState.DEACTIVATED))
            outcomes[actor_user.username] = "ok"
        except IdentityError as exc:
            outcomes[actor_user.username] = exc.code
        finally:
            connections.close_all()  # this thread's own connection

    threads = [threading.Thread(target=deactivate, args=(first, second)),
               threading.Thread(target=deactivate, args=(second, first))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes.values()) == ["last_admin", "ok"], outcomes
    states = sorted(UserProfile.objects.filter(user__in=[first, second]).values_list("state", flat=True))
    assert states == [UserState.ACTIVE, UserState.DEACTIVATED]
