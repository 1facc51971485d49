"""The user page's sessions: listed (started, last seen, IP, method), "sign out" per session and
"sign out everywhere", privilege rule, and losing console access ending the sessions."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts import console_actions as services
from accounts.identity.types import Actor
from accounts.models import AuditEvent
from tests.accounts.console_support import messages_of
from tests.conftest import TEST_PASSWORD

pytest.importorskip("accounts.sessions")
pytestmark = pytest.mark.usefixtures("fast_hasher")


def signed_in(user, ip: str = "203.0.113.7") -> Client:
    client = Client(REMOTE_ADDR=ip)
    client.post("/sign-in/", {"username": user.username})
    response = client.post("/sign-in/", {"username": user.username, "password": TEST_PASSWORD})
    assert response.status_code == 302, response.content[:300]
    return client


def is_signed_in(client: Client) -> bool:
    return client.get("/account/").status_code == 200


def test_sessions_listed_and_ended_one_by_one_then_everywhere(client, directory):
    from accounts.sessions import sessions_of

    target = directory.eng_user
    laptop, phone = signed_in(target, "203.0.113.7"), signed_in(target, "198.51.100.9")
    client.force_login(directory.admin)
    page = client.get(reverse("accounts:user_detail", args=[target.pk]))
    body = page.content.decode()
    assert "data-sessions" in body and "203.0.113.7" in body and "198.51.100.9" in body
    assert body.count("<td>Password</td>") == 2 and "Sign out everywhere" in body

    laptop_row = next(s for s in sessions_of(target) if s.ip == "203.0.113.7")
    resp = client.post(reverse("accounts:user_session_end", args=[target.pk, laptop_row.pk]), follow=True)
    assert any("Signed eng.user out of that session" in m for m in messages_of(resp))
    assert not is_signed_in(laptop) and is_signed_in(phone)
    event = AuditEvent.objects.filter(action="user.sessions_ended", target_id=str(target.pk)).latest("id")
    assert event.actor_label == directory.admin.username and event.old_value == 1

    again = client.post(reverse("accounts:user_session_end", args=[target.pk, laptop_row.pk]), follow=True)
    assert any("already ended" in m for m in messages_of(again))

    resp = client.post(reverse("accounts:user_sessions_end_all", args=[target.pk]), follow=True)
    assert any("Ended 1 session of eng.user" in m for m in messages_of(resp))
    assert not is_signed_in(phone)
    assert "Not signed in anywhere" in client.get(reverse("accounts:user_detail", args=[target.pk])).content.decode()


def test_sign_out_everywhere_on_oneself_keeps_the_current_session(directory, user_factory):
    helpdesk = user_factory("helpdesk", org=directory.acme, roles=["help-desk"])
    current, other = signed_in(helpdesk), signed_in(helpdesk)
    resp = current.post(reverse("accounts:user_sessions_end_all", args=[helpdesk.pk]), follow=True)
    assert any("your current session stays" in m for m in messages_of(resp))
    assert is_signed_in(current) and not is_signed_in(other)
    assert b"This session" in current.get(reverse("accounts:user_detail", args=[helpdesk.pk])).content


def test_sessions_of_a_more_privileged_user_cannot_be_ended(directory, user_factory):
    pytest.importorskip("accounts.identity.privilege")
    helpdesk = user_factory("helpdesk", org=directory.acme, roles=["help-desk"])
    admin_session = signed_in(directory.admin)
    client = Client()
    client.force_login(helpdesk)
    resp = client.post(reverse("accounts:user_sessions_end_all", args=[directory.admin.pk]), follow=True)
    assert any("target_more_privileged" in m for m in messages_of(resp))
    assert is_signed_in(admin_session)


def test_session_routes_need_a_credential_permission(client, directory):
    signed_in(directory.eng_user)
    client.force_login(directory.auditor)  # sees users, may not end their sessions
    assert client.post(reverse("accounts:user_sessions_end_all", args=[directory.eng_user.pk])).status_code == 403
    assert b"data-sessions" not in client.get(reverse("accounts:user_detail", args=[directory.eng_user.pk])).content


def has_session(client: Client, user) -> bool:
    from django.contrib.auth import SESSION_KEY

    return str(client.session.get(SESSION_KEY)) == str(user.pk)


def test_losing_console_access_ends_the_sessions(directory, django_capture_on_commit_callbacks):
    from accounts.sessions import sessions_of

    target = directory.eng_user
    session = signed_in(target)
    assert has_session(session, target)
    with django_capture_on_commit_callbacks(execute=True):
        services.user_set_roles(actor=Actor.for_user(directory.admin), user=target, roles=["desktop-user"])
    assert not has_session(session, target) and not sessions_of(target).exists()
    event = AuditEvent.objects.filter(action="user.sessions_ended", target_id=str(target.pk)).latest("id")
    assert event.message == "console access removed"


def test_keeping_console_access_keeps_the_sessions(directory, django_capture_on_commit_callbacks):
    target = directory.eng_user
    session = signed_in(target)
    with django_capture_on_commit_callbacks(execute=True):
        services.user_set_roles(actor=Actor.for_user(directory.admin), user=target,
                                roles=["console-user", "help-desk"])
        services.user_set_roles(actor=Actor.for_user(directory.admin), user=target, roles=["console-user"])
    assert has_session(session, target) and is_signed_in(session)
