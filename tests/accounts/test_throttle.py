"""Sign-in throttling: wrong passwords and wrong two-factor codes lock a username for a while."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from accounts.throttle import SignInThrottle
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def limits(settings):
    settings.IDM_SIGNIN_MAX_FAILURES = 3
    settings.IDM_SIGNIN_MAX_FAILURES_PER_IP = 5
    settings.IDM_SIGNIN_LOCKOUT_SECONDS = 60


def sign_in(client, username, password):
    return client.post(reverse("accounts:login"), {"username": username, "password": password})


def test_username_locked_after_failures_even_with_the_right_password(client, user_factory, limits):
    user_factory("victim")
    for _ in range(3):
        assert sign_in(client, "victim", "Wrong-Pass-123").status_code == 400
    response = sign_in(client, "victim", TEST_PASSWORD)
    assert response.status_code == 429 and "Too many failed" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="auth.login_throttled", target_label="victim").exists()


def test_lock_is_per_username_and_success_clears_it(client, user_factory, limits):
    user_factory("alice")
    user_factory("bob")
    for _ in range(2):
        sign_in(client, "alice", "Wrong-Pass-123")
    assert sign_in(client, "alice", TEST_PASSWORD).status_code == 302  # success clears alice's count
    client.logout()
    for _ in range(2):
        sign_in(client, "alice", "Wrong-Pass-123")
    assert sign_in(client, "bob", TEST_PASSWORD).status_code == 302  # bob is not affected


def test_unknown_usernames_are_throttled_the_same_way(client, db, limits):
    for _ in range(3):
        sign_in(client, "nobody", "Wrong-Pass-123")
    assert sign_in(client, "nobody", "Wrong-Pass-123").status_code == 429


def test_address_limit_covers_many_usernames(client, user_factory, limits):
    user_factory("target")
    for i in range(5):
        sign_in(client, f"spray{i}", "Wrong-Pass-123")
    assert sign_in(client, "target", TEST_PASSWORD).status_code == 429


def test_counter_uses_the_shared_non_culling_cache(db, limits):
    throttle = SignInThrottle(username="Carol", ip="127.0.0.1")
    for _ in range(3):
        throttle.failure()
    assert SignInThrottle(username="carol", ip="10.9.9.9").blocked()  # case-insensitive, other address
    throttle.success()
    assert not SignInThrottle(username="carol", ip=None).blocked()
