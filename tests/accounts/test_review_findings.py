"""Findings of the outside review of the console (2026-11-30), each reproduced from outside:

- F1 the Outbox showed any Cloud Admin the set-password links of more privileged users;
- F2 one invitation (or reset) link used by two requests at the same moment set two passwords;
- F3 a stale edit page silently undid another admin's change;
- F4 each throttled "forgot password" request wrote an audit row;
- F5 the password step told who is an invited user.
"""

from __future__ import annotations

import json
import re
import threading
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections
from django.test import Client
from django.urls import reverse

from accounts.credentials import service
from accounts.credentials.models import Invitation
from accounts.identity.types import Actor
from accounts.models import AuditEvent
from accounts.throttle import SUMMARY_EVERY
from ops.models import OutboxMessage
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.usefixtures("fast_hasher")

LINK = re.compile(r"http://[^\s]+/(?:sign-in/reset|invitation)/[^\s]+/")


# --- F1: the Outbox ------------------------------------------------------------------------


@pytest.fixture
def outbox_mail(settings):
    settings.EMAIL_BACKEND = "ops.mail.OutboxEmailBackend"


def _reset_mail_for(identifier: str) -> OutboxMessage:
    before = OutboxMessage.objects.count()
    assert Client().post("/sign-in/forgot/", {"identifier": identifier}).status_code == 200
    assert OutboxMessage.objects.count() == before + 1
    return OutboxMessage.objects.order_by("-id").first()


def test_outbox_hides_the_reset_link_of_a_more_privileged_user(outbox_mail, directory, user_factory):
    User.objects.filter(pk=directory.admin.pk).update(is_superuser=True, email="root@example.com")
    other_cca = user_factory("cca.two", org=directory.acme, roles=["customer-cloud-admin"])
    message = _reset_mail_for("admin")
    link = LINK.search(message.body).group(0)

    viewer = Client()
    viewer.force_login(other_cca)  # a Cloud Admin, not a superuser
    page = viewer.get(f"/outbox/{message.pk}/")
    assert page.status_code == 200
    assert link.encode() not in page.content and urlsplit(link).path.encode() not in page.content
    assert service.HIDDEN_LINK.encode() in page.content.replace(b"&#x27;", b"'")

    # The superuser sees their own link; the Cloud Admin sees a plain user's link.
    root = Client()
    root.force_login(User.objects.get(pk=directory.admin.pk))
    assert link.encode() in root.get(f"/outbox/{message.pk}/").content
    plain = _reset_mail_for("eng.user")
    assert LINK.search(plain.body).group(0).encode() in viewer.get(f"/outbox/{plain.pk}/").content


def test_redaction_covers_relative_links_and_unknown_users(directory):
    viewer = Actor.for_user(directory.eng_admin)
    text = "a /invitation/Zm9v/abc-123/ b http://x/sign-in/reset/MQ/tok/ c"
    out = service.redact_credential_links(text, viewer=viewer)
    assert out == f"a {service.HIDDEN_LINK} b {service.HIDDEN_LINK} c"


# --- F2: one link, two requests at once -------------------------------------------------------


def _two_at_once(path: str) -> list[int]:
    """POST the link twice at the same moment with different passwords; the status codes."""
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def post(password: str) -> None:
        try:
            client = Client()
            form_url = client.get(path)["Location"]  # the token moves into this client's session
            barrier.wait(timeout=10)
            statuses.append(client.post(form_url, {"password1": password, "password2": password}).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post, args=(p,)) for p in ("First-Pass-9931", "Second-Pass-4417")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return sorted(statuses)


@pytest.mark.django_db(transaction=True)
def test_an_invitation_link_sets_one_password_under_concurrency(directory, user_factory):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: two sessions with row locks (SQLite has one writer)")
    for trial in range(3):  # the race is timing-dependent: it must hold every time
        invited = user_factory(f"waiting{trial}", org=directory.acme, password=None)
        link, _ = service.invite(actor=Actor.for_user(directory.admin), user=invited, base_url="http://t",
                                 email=False)
        assert _two_at_once(urlsplit(link).path) == [200, 400]
        assert AuditEvent.objects.filter(action="auth.invitation_accepted", target_id=str(invited.pk)).count() == 1
        assert not Invitation.objects.filter(user=invited).exists()


@pytest.mark.django_db(transaction=True)
def test_a_reset_link_sets_one_password_under_concurrency(directory):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: two sessions with row locks (SQLite has one writer)")
    from accounts.credentials.service import reset_path

    path = reset_path(directory.eng_user)
    assert _two_at_once(path) == [200, 400]
    assert AuditEvent.objects.filter(action="auth.password_reset_completed",
                                     target_id=str(directory.eng_user.pk)).count() == 1


def test_a_used_link_is_refused_by_the_service_itself(directory, user_factory, rf):
    invited = user_factory("waiting2", org=directory.acme, password=None)
    link, _ = service.invite(actor=Actor.for_user(directory.admin), user=invited, base_url="http://t", email=False)
    token = urlsplit(link).path.rstrip("/").rsplit("/", 1)[1]
    request = rf.post("/")
    service.set_password_from_link(user=invited, password="First-Pass-9931", request=request, kind="invitation",
                                   token=token)
    with pytest.raises(service.IdentityError) as exc:
        service.set_password_from_link(user=invited, password="Second-Pass-4417", request=request,
                                       kind="invitation", token=token)
    assert exc.value.code == "link_used"
    invited.refresh_from_db()
    assert invited.check_password("First-Pass-9931")


# --- F3: a stale edit page ---------------------------------------------------------------------


def _edit_page(client, user) -> dict:
    page = client.get(reverse("accounts:user_edit", args=[user.pk]))
    form = page.context["form"]
    return {name: form[name].value() or "" for name in ("username", "email", "first_name", "last_name", "notes",
                                                        "loaded")}


def test_a_stale_page_does_not_undo_another_admins_change(directory):
    first, second = Client(), Client()
    first.force_login(directory.admin)
    second.force_login(directory.admin)
    target = directory.sales_user
    page_a, page_b = _edit_page(first, target), _edit_page(second, target)

    assert first.post(reverse("accounts:user_edit", args=[target.pk]),
                      page_a | {"email": "new.sales@example.com"}).status_code == 302
    resp = second.post(reverse("accounts:user_edit", args=[target.pk]), page_b | {"last_name": "Changed"})
    assert resp.status_code == 302
    target.refresh_from_db()
    assert (target.email, target.last_name) == ("new.sales@example.com", "Changed")


def test_editing_a_field_someone_changed_meanwhile_is_a_conflict(directory):
    first, second = Client(), Client()
    first.force_login(directory.admin)
    second.force_login(directory.admin)
    target = directory.sales_user
    page_a, page_b = _edit_page(first, target), _edit_page(second, target)
    first.post(reverse("accounts:user_edit", args=[target.pk]), page_a | {"email": "a@example.com"})

    resp = second.post(reverse("accounts:user_edit", args=[target.pk]), page_b | {"email": "b@example.com"})
    assert resp.status_code == 409
    errors = resp.context["form"].errors.as_data()["email"]
    assert [e.code for e in errors] == ["changed_meanwhile"]
    assert "(now: a@example.com)" in errors[0].message % errors[0].params
    target.refresh_from_db()
    assert target.email == "a@example.com"
    # The page now shows the current values as its baseline: saving again replaces them knowingly.
    assert json.loads(resp.context["form"]["loaded"].value())["email"] == "a@example.com"
    again = {k: v for k, v in resp.context["form"].data.items() if k != "csrfmiddlewaretoken"}
    assert second.post(reverse("accounts:user_edit", args=[target.pk]), again).status_code == 302
    target.refresh_from_db()
    assert target.email == "b@example.com"


def test_a_post_without_the_loaded_values_still_changes_what_differs(directory):
    client = Client()
    client.force_login(directory.admin)
    target = directory.sales_user
    resp = client.post(reverse("accounts:user_edit", args=[target.pk]), {
        "username": target.username, "email": target.email, "first_name": "Samuel", "last_name": target.last_name,
        "notes": ""})
    assert resp.status_code == 302
    target.refresh_from_db()
    assert target.first_name == "Samuel"


# --- F4: throttled "forgot password" requests ----------------------------------------------------


def test_throttled_forgot_requests_are_summarised_not_audited_one_by_one(directory, settings):
    settings.IDM_PASSWORD_RESET_MAX_REQUESTS = 2
    client = Client()
    statuses = [client.post("/sign-in/forgot/", {"identifier": "nobody"}).status_code for _ in range(40)]
    assert statuses == [200] * 2 + [429] * 38
    events = list(AuditEvent.objects.filter(action="auth.password_reset_throttled"))
    assert len(events) == 1
    assert (events[0].new_value["refused_requests"], events[0].new_value["limit"]) == (1, "identifier")


def test_spraying_identifiers_from_one_address_counts_against_the_address(directory, settings):
    settings.IDM_PASSWORD_RESET_MAX_REQUESTS = 1  # 4 per address
    client = Client()
    statuses = [client.post("/sign-in/forgot/", {"identifier": f"nobody{i}"}).status_code for i in range(30)]
    assert statuses == [200] * 4 + [429] * 26
    events = list(AuditEvent.objects.filter(action="auth.password_reset_throttled"))
    assert len(events) == 1
    assert (events[0].new_value["refused_requests"], events[0].new_value["limit"]) == (1, "address")


def test_the_hundredth_refusal_writes_a_summary(directory, settings):
    settings.IDM_PASSWORD_RESET_MAX_REQUESTS = 1
    client = Client()
    for _ in range(1 + SUMMARY_EVERY):
        client.post("/sign-in/forgot/", {"identifier": "nobody"})
    counts = sorted(e.new_value["refused_requests"] for e in AuditEvent.objects.filter(action="auth.password_reset_throttled"))
    assert counts == [1, SUMMARY_EVERY]


# --- F5: the password step does not tell who is invited ---------------------------------------------


def test_invited_unknown_and_wrong_password_get_one_answer(directory, user_factory):
    user_factory("ines.invited", org=directory.acme, password=None)
    answers = set()
    for username, password in (("ines.invited", "Whatever-123"), ("nobody.here", "Whatever-123"),
                               ("eng.user", "Wrong-Pass-1234")):
        resp = Client().post("/sign-in/", {"username": username, "password": password})
        assert resp.status_code == 400
        answers.add(resp.context["error"])
    assert len(answers) == 1
    assert "Use the link in your invitation email" in answers.pop()
    assert Client().post("/sign-in/", {"username": "eng.user", "password": TEST_PASSWORD}).status_code == 302
