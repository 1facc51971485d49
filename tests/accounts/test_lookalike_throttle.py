"""Review 3 M2: the sign-in lock, the per-username throttle and the forgot-password throttle count a
username by ``username_key`` (NFKC, lower case), the key sign-in finds users by, so a look-alike
spelling ("ｅmma.eng", fullwidth e) is the same account for the counters as for the sign-in."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from accounts.credentials import service
from accounts.credentials.models import SignInLock
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.usefixtures("fast_hasher")

FULLWIDTH_E = "\uff45"  # ｅ


@pytest.fixture
def limits(settings):
    settings.IDM_SIGNIN_MAX_FAILURES = 3
    settings.IDM_SIGNIN_MAX_FAILURES_PER_IP = 50
    settings.IDM_SIGNIN_LOCKOUT_SECONDS = 60


def sign_in(client, username, password):
    return client.post(reverse("accounts:login"), {"username": username, "password": password})


def test_fullwidth_spelling_signs_in_as_the_same_user(client, user_factory):
    """The premise: sign-in finds emma.eng under the look-alike spelling."""
    user_factory("emma.eng")
    assert sign_in(client, f"{FULLWIDTH_E}mma.eng", TEST_PASSWORD).status_code == 302


@pytest.mark.parametrize("spelling", [f"{FULLWIDTH_E}mma.eng", "EMMA.ENG", f"{FULLWIDTH_E.upper()}MMA.eng"])
def test_lock_holds_for_look_alike_spellings(client, user_factory, limits, spelling):
    user = user_factory("emma.eng")
    for _ in range(3):
        assert sign_in(client, "emma.eng", "Wrong-Pass-123").status_code == 400
    refused = sign_in(client, spelling, TEST_PASSWORD)
    assert refused.status_code == 429 and "_auth_user_id" not in client.session
    assert service.active_lock(user) is not None


def test_failures_under_look_alike_spellings_add_up_to_one_lock(client, user_factory, limits):
    user = user_factory("emma.eng")
    for spelling in ("emma.eng", f"{FULLWIDTH_E}mma.eng", "Emma.Eng"):
        assert sign_in(client, spelling, "Wrong-Pass-123").status_code == 400
    assert sign_in(client, "emma.eng", TEST_PASSWORD).status_code == 429
    assert list(SignInLock.objects.values_list("username", flat=True)) == ["emma.eng"]
    assert service.active_lock(user) is not None


def test_unlock_clears_the_lock_of_every_spelling(client, user_factory, limits, admin_user):
    user = user_factory("emma.eng")
    for _ in range(3):
        sign_in(client, f"{FULLWIDTH_E}mma.eng", "Wrong-Pass-123")
    assert service.active_lock(user) is not None
    from accounts.identity.types import Actor

    assert service.unlock(actor=Actor.for_user(admin_user), user=user)
    assert sign_in(client, f"{FULLWIDTH_E}mma.eng", TEST_PASSWORD).status_code == 302


def test_forgot_password_throttle_counts_look_alike_spellings(client, user_factory, settings):
    settings.IDM_PASSWORD_RESET_MAX_REQUESTS = 5
    user_factory("ethan.eng", email="ethan@example.com")
    for _ in range(5):
        assert client.post("/sign-in/forgot/", {"identifier": "ethan.eng"}).status_code == 200
    assert len(mail.outbox) == 5
    # Another address (the per-address limit is 20): only the identifier's counter can refuse.
    other = client.post("/sign-in/forgot/", {"identifier": f"{FULLWIDTH_E}than.eng"}, REMOTE_ADDR="10.9.9.9")
    assert other.status_code == 429
    assert len(mail.outbox) == 5
