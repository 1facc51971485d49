"""The last Cloud Admin with password sign-in under concurrency (issue 7 §2), on two real PostgreSQL
connections: each change alone is fine, both together would leave only SSO-only admins. The admin lock
(``accounts.identity.locks``) makes the second writer read after the first committed: one is refused."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection, connections

from accounts.exceptions import IdentityError
from accounts.identity.orgs import org_update_settings, password_sign_in_admins
from accounts.identity.service import apply_identity_change
from accounts.identity.types import Actor, AuthMethod, IdentityChange, UserState
from accounts.models import UserProfile
from accounts.roles import CUSTOMER_CLOUD_ADMIN
from sso.models import IdentityProvider
from sso.services import break_glass_set

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: two sessions with an advisory lock (SQLite has one writer)")


@pytest.fixture
def admins(org_factory, user_factory, system_actor):
    """Two Cloud Admins with password sign-in (root org) and one who signs in through Okta only."""
    okta = IdentityProvider.objects.create(name="Okta")
    org = org_factory("SSO Corp")
    org_update_settings(actor=system_actor, org=org, auth_method=AuthMethod.SSO, auth_provider=okta)
    return {
        "a": user_factory("admin-a", roles=[CUSTOMER_CLOUD_ADMIN]),
        "b": user_factory("admin-b", roles=[CUSTOMER_CLOUD_ADMIN]),
        "sso": user_factory("admin-sso", org=org, roles=[CUSTOMER_CLOUD_ADMIN], password=None, state="active"),
        "okta": okta,
    }


def race(*jobs: Callable[[], None]) -> list[str]:
    """Run the jobs on their own connections, released together; each outcome is "ok" or the error code."""
    barrier = threading.Barrier(len(jobs))
    outcomes: list[str] = [""] * len(jobs)

    def run(index: int, job: Callable[[], None]) -> None:
        try:
            barrier.wait(timeout=10)
            job()
            outcomes[index] = "ok"
        except IdentityError as exc:
            outcomes[index] = exc.code
        finally:
            connections.close_all()  # this thread's own connection

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes


def block(actor_user, target) -> Callable[[], None]:
    return lambda: apply_identity_change(actor=Actor.for_user(actor_user), change=IdentityChange(
        user_id=target.pk, state=UserState.BLOCKED))


def test_two_password_admins_blocking_each_other_leave_one(admins):
    outcomes = race(block(admins["a"], admins["b"]), block(admins["b"], admins["a"]))
    assert sorted(outcomes) == ["last_admin_sso", "ok"], outcomes
    states = sorted(UserProfile.objects.filter(user__in=[admins["a"], admins["b"]]).values_list("state", flat=True))
    assert states == [UserState.ACTIVE, UserState.BLOCKED]
    assert len(password_sign_in_admins()) == 1


def test_break_glass_removal_and_a_block_at_once_leave_one(admins, system_actor):
    """Two paths, one lock: the SSO admin leaves the break-glass list while the other password admin is blocked."""
    break_glass_set(actor=system_actor, provider=admins["okta"], users=[admins["sso"]])
    apply_identity_change(actor=system_actor, change=IdentityChange(user_id=admins["b"].pk,
                                                                    roles=frozenset({"help-desk"})))
    assert password_sign_in_admins() == {admins["a"].pk, admins["sso"].pk}

    def remove_break_glass() -> None:
        break_glass_set(actor=system_actor, provider=admins["okta"], users=[])

    outcomes = race(remove_break_glass, block(admins["sso"], admins["a"]))
    assert sorted(outcomes) == ["last_admin_sso", "ok"], outcomes
    assert len(password_sign_in_admins()) == 1
