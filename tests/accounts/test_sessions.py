"""Sessions end server-side (issue 7 §5): blocking, deactivating and an admin password reset sign the
user out everywhere; unblocking does not bring an old session back; one's own password change keeps
the current session. UserSession rows are recorded on sign-in and removed on sign-out."""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from accounts import console_actions as services
from accounts.identity.service import apply_identity_changes
from accounts.identity.types import Actor, IdentityChange, Mode
from accounts.models import AuditEvent
from accounts.sessions import UserSession, end_session, end_user_sessions, sessions_of
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Brand-New-Pass-77"


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice(user_factory):
    return user_factory("alice")


def signed_in(user, *, agent: str = "pytest-browser") -> Client:
    """A browser that signed in with the password form (the real sign-in view)."""
    client = Client(HTTP_USER_AGENT=agent)
    response = client.post(reverse("accounts:login"), {"username": user.username})
    response = client.post(reverse("accounts:login"), {"username": user.username, "password": TEST_PASSWORD})
    assert response.status_code == 302, response.content[:500]
    assert client.get(reverse("accounts:account")).status_code == 200
    return client


def is_signed_in(client: Client) -> bool:
    response = client.get(reverse("accounts:account"))
    return response.status_code == 200


def test_sign_in_records_a_session_and_sign_out_removes_it(alice):
    client = signed_in(alice, agent="Firefox/140")
    key = client.cookies["sessionid"].value
    row = UserSession.objects.get(session_key=key)
    assert (row.user, row.method, row.user_agent, row.ip) == (alice, "password", "Firefox/140", "127.0.0.1")
    assert list(sessions_of(alice)) == [row]
    client.post(reverse("accounts:logout"))
    assert not UserSession.objects.filter(session_key=key).exists()
    assert not is_signed_in(client)


def test_blocked_then_unblocked_user_old_session_no_longer_works(alice, admin_actor,
                                                                 django_capture_on_commit_callbacks):
    client = signed_in(alice)
    key = client.cookies["sessionid"].value
    with django_capture_on_commit_callbacks(execute=True):
        services.user_block(actor=admin_actor, user=alice)
    assert not Session.objects.filter(session_key=key).exists()
    assert not UserSession.objects.filter(user=alice).exists()
    with django_capture_on_commit_callbacks(execute=True):
        services.user_unblock(actor=admin_actor, user=alice)
    assert not is_signed_in(client)  # before this change the old cookie signed alice in again
    event = AuditEvent.objects.get(action="user.sessions_ended", target_id=str(alice.pk))
    assert (event.actor_label, event.old_value, event.new_value, event.message) == ("admin", 1, 0, "user blocked")
    assert is_signed_in(signed_in(alice))  # a new sign-in works


def test_deactivated_user_loses_every_session(alice, admin_actor, django_capture_on_commit_callbacks):
    browsers = [signed_in(alice, agent=f"browser {i}") for i in range(3)]
    assert sessions_of(alice).count() == 3
    with django_capture_on_commit_callbacks(execute=True):
        services.user_deactivate(actor=admin_actor, user=alice)
    with django_capture_on_commit_callbacks(execute=True):
        services.user_reactivate(actor=admin_actor, user=alice)
    assert not any(is_signed_in(b) for b in browsers)
    event = AuditEvent.objects.get(action="user.sessions_ended", target_id=str(alice.pk))
    assert (event.old_value, event.message) == (3, "user deactivated")


def test_block_from_the_console_ends_the_session(alice, admin_client, django_capture_on_commit_callbacks):
    client = signed_in(alice)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("accounts:user_state", args=[alice.pk, "block"]))
        admin_client.post(reverse("accounts:user_state", args=[alice.pk, "unblock"]))
    assert not is_signed_in(client)


def test_bulk_block_ends_sessions_of_every_blocked_user(user_factory, admin_actor, django_capture_on_commit_callbacks):
    users = [user_factory(f"bulk{i}") for i in range(3)]
    clients = [signed_in(u) for u in users]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.users_set_state(actor=admin_actor, user_ids=[u.pk for u in users], state="blocked")
    assert len(callbacks) == 1  # one call for the whole batch
    assert UserSession.objects.filter(user__in=users).count() == 0
    assert AuditEvent.objects.filter(action="user.sessions_ended").count() == 3
    services.users_set_state(actor=admin_actor, user_ids=[u.pk for u in users], state="active")
    assert not any(is_signed_in(c) for c in clients)


def test_admin_password_reset_ends_the_users_sessions(alice, admin_actor, django_capture_on_commit_callbacks):
    client = signed_in(alice)
    with django_capture_on_commit_callbacks(execute=True):
        services.user_set_password(actor=admin_actor, user=alice, password=NEW_PASSWORD)
    assert not UserSession.objects.filter(user=alice).exists()
    assert not is_signed_in(client)
    event = AuditEvent.objects.get(action="user.sessions_ended", target_id=str(alice.pk))
    assert event.message == "password set by someone else"


def test_own_password_change_keeps_the_current_session(alice, django_capture_on_commit_callbacks):
    client = signed_in(alice)
    old_key = client.cookies["sessionid"].value
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("accounts:password_change"), {
            "old_password": TEST_PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 302
    new_key = client.cookies["sessionid"].value
    assert new_key != old_key  # Django rotates the key on a password change...
    assert is_signed_in(client)
    # ...and the tracking row follows it, so a later block still ends this session.
    assert list(UserSession.objects.filter(user=alice).values_list("session_key", flat=True)) == [new_key]
    assert not AuditEvent.objects.filter(action="user.sessions_ended").exists()


def test_session_rotated_by_own_password_change_still_ends_on_block(alice, admin_actor,
                                                                    django_capture_on_commit_callbacks):
    client = signed_in(alice)
    client.post(reverse("accounts:password_change"), {
        "old_password": TEST_PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    with django_capture_on_commit_callbacks(execute=True):
        services.user_block(actor=admin_actor, user=alice)
        services.user_unblock(actor=admin_actor, user=alice)
    assert not is_signed_in(client)


def test_refused_or_dry_run_changes_end_nothing(alice, admin_actor, user_factory, django_capture_on_commit_callbacks):
    client = signed_in(alice)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        apply_identity_changes(actor=admin_actor, dry_run=True,
                               changes=[IdentityChange(user_id=alice.pk, state="blocked", mode=Mode.UPDATE)])
        org_manager = user_factory("om", roles=["org-manager"])
        apply_identity_changes(actor=Actor.for_user(alice), changes=[  # alice may not block anyone
            IdentityChange(user_id=org_manager.pk, state="blocked", mode=Mode.UPDATE)])
    assert callbacks == []
    assert is_signed_in(client)


def test_session_without_a_tracking_row_is_signed_out(alice):
    """Sessions ended where the store could not delete them (or from before tracking) sign in no one."""
    client = signed_in(alice)
    UserSession.objects.filter(user=alice).delete()
    assert not is_signed_in(client)
    assert "_auth_user_id" not in client.session


def test_end_user_sessions_can_keep_the_current_one(alice):
    keep, other = signed_in(alice), signed_in(alice)
    keep_key = keep.cookies["sessionid"].value
    assert end_user_sessions(user_ids=[alice.pk], except_session_key=keep_key, reason="sign out elsewhere") == 1
    assert is_signed_in(keep) and not is_signed_in(other)
    assert end_user_sessions(user_ids=[]) == 0


def test_end_session_ends_only_the_named_session_of_that_user(alice, user_factory):
    bob = user_factory("bob")
    a1, a2, b = signed_in(alice), signed_in(alice), signed_in(bob)
    a1_key = a1.cookies["sessionid"].value
    assert end_session(session_key=a1_key, user=bob) is False  # not bob's
    assert end_session(session_key=a1_key, user=alice) is True
    assert not is_signed_in(a1) and is_signed_in(a2) and is_signed_in(b)


def test_last_seen_is_refreshed_at_most_every_few_minutes_without_sliding_the_session(alice):
    from datetime import timedelta

    from accounts.sessions import SEEN_EVERY

    client = signed_in(alice)
    key = client.cookies["sessionid"].value
    expiry = Session.objects.get(session_key=key).expire_date
    row = UserSession.objects.get(user=alice)
    client.get(reverse("accounts:account"))
    assert UserSession.objects.get(pk=row.pk).last_seen_at == row.last_seen_at
    long_ago = row.last_seen_at - timedelta(seconds=SEEN_EVERY + 1)
    UserSession.objects.filter(pk=row.pk).update(last_seen_at=long_ago)
    client.get(reverse("accounts:account"))
    assert UserSession.objects.get(pk=row.pk).last_seen_at > row.last_seen_at
    assert Session.objects.get(session_key=key).expire_date == expiry  # the session's lifetime is unchanged


def test_sign_in_prunes_rows_of_sessions_that_expired(alice, settings):
    from datetime import timedelta

    from django.utils import timezone

    old = signed_in(alice)
    UserSession.objects.filter(session_key=old.cookies["sessionid"].value).update(
        last_seen_at=timezone.now() - timedelta(seconds=settings.SESSION_COOKIE_AGE + 3600))
    signed_in(alice)
    assert UserSession.objects.filter(user=alice).count() == 1


@pytest.mark.parametrize("engine", ["django.contrib.sessions.backends.cache",
                                    "django.contrib.sessions.backends.cached_db",
                                    "django.contrib.sessions.backends.file"])
def test_ending_works_with_other_session_engines(alice, admin_actor, settings, engine, tmp_path,
                                                 django_capture_on_commit_callbacks):
    settings.SESSION_ENGINE = engine
    settings.SESSION_FILE_PATH = str(tmp_path)
    client = signed_in(alice)
    with django_capture_on_commit_callbacks(execute=True):
        services.user_block(actor=admin_actor, user=alice)
        services.user_unblock(actor=admin_actor, user=alice)
    assert not is_signed_in(client)
