"""Review 4 F1: a reset link goes only to an email address its setter may still vouch for; L2: the
forgot-password limit counts per user, whatever spelling names them.

F1 through the real pages: a User Modify admin of Engineering sets an Engineering user's email, a
Cloud Admin then makes that user Cross Org Admin; "forgot password" must not mail the address the
lesser admin chose, an admin's reset link to it is refused (``email_unconfirmed``), and an admin who
may change the user re-saving (or confirming) the address makes it usable again.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.credentials.email_trust import email_trust
from accounts.identity.service import apply_identity_change
from accounts.identity.types import Actor, IdentityChange, Mode, Source
from accounts.models import AuditEvent
from tests.accounts.console_support import messages_of
from tests.accounts.link_support import submit_link
from tests.accounts.test_privilege_rise import grant_roles

pytestmark = pytest.mark.usefixtures("fast_hasher")

ATTACKER = "attacker@evil.example"
NEW_PASSWORD = "Brand-New-Pass-77"
LINK = re.compile(r"http://[^\s]+/sign-in/reset/[^\s]+/")


def edit_email(client: Client, user, email: str):
    return client.post(reverse("accounts:user_edit", args=[user.pk]), {
        "username": user.username, "email": email, "first_name": user.first_name,
        "last_name": user.last_name, "notes": ""})


def forgot(identifier: str, **extra):
    resp = Client().post("/sign-in/forgot/", {"identifier": identifier}, **extra)
    assert resp.status_code == 200 and resp.context["done"]  # the same answer, whatever happened
    return resp


def reset_requests(user):
    return [e.new_value for e in AuditEvent.objects.filter(action="auth.password_reset_requested",
                                                           target_id=str(user.pk)).order_by("id")]


@pytest.fixture
def modifier(directory, user_factory):
    """erin.eng of the review: User Modify in Engineering (edits profiles, email included)."""
    return user_factory("erin.mod", org=directory.engineering, roles=["user-modify"])


@pytest.fixture
def emma(directory, user_factory):
    return user_factory("emma.eng", org=directory.engineering, email="emma@acme.example")


def test_email_set_by_a_lesser_admin_gets_no_reset_link_after_a_promotion(directory, modifier, emma):
    erin = Client()
    erin.force_login(modifier)
    assert edit_email(erin, emma, ATTACKER).status_code == 302
    emma.refresh_from_db()
    assert emma.email == ATTACKER
    # Before the promotion erin may change emma: the address she set is good (self-service works).
    forgot("emma.eng")
    assert [m.to for m in mail.outbox] == [[ATTACKER]]
    mail.outbox.clear()

    grant_roles(directory.admin, emma, "cross-org-admin")

    forgot("emma.eng")
    forgot(ATTACKER)
    assert mail.outbox == []
    assert [(e["sent"], e["reason"]) for e in reset_requests(emma)[-2:]] == [(False, "email_unconfirmed")] * 2
    assert not email_trust(emma).trusted

    # An admin's reset link is refused with a code that says what to do.
    admin = Client()
    admin.force_login(directory.admin)
    resp = admin.post(reverse("accounts:user_reset_link", args=[emma.pk]), follow=True)
    assert any("email_unconfirmed" in m and "Confirm email" in m for m in messages_of(resp))
    assert mail.outbox == []
    # The user page says why, and offers the Cloud Admin to confirm it.
    page = admin.get(reverse("accounts:user_detail", args=[emma.pk]))
    assert page.context["email_unconfirmed"].set_by == modifier.username
    assert page.context["can_confirm_email"] and b"data-confirm-email" in page.content
    # erin sees the address is unconfirmed but cannot confirm it (she may not change emma now).
    assert not erin.get(reverse("accounts:user_detail", args=[emma.pk])).context["can_confirm_email"]
    refused = erin.post(reverse("accounts:user_confirm_email", args=[emma.pk]), follow=True)
    assert any("target_more_privileged" in m for m in messages_of(refused))
    assert not AuditEvent.objects.filter(action="user.email_confirmed").exists()

    # The Cloud Admin checks the address and saves it unchanged: that vouches for it (the form says so).
    form = admin.get(reverse("accounts:user_edit", args=[emma.pk])).context["form"]
    assert "saving confirms" in form.fields["email"].help_text
    assert edit_email(admin, emma, ATTACKER).status_code == 302
    [confirmed] = AuditEvent.objects.filter(action="user.email_confirmed", target_id=str(emma.pk))
    assert confirmed.actor_id == directory.admin.pk
    assert confirmed.new_value == {"email": ATTACKER, "set_by": modifier.username}
    forgot("emma.eng")
    assert [m.to for m in mail.outbox] == [[ATTACKER]]
    path = urlsplit(LINK.search(mail.outbox[-1].body).group(0)).path
    assert submit_link(Client(), path, NEW_PASSWORD).context["done"]


def test_confirm_email_button(directory, modifier, emma):
    erin = Client()
    erin.force_login(modifier)
    assert edit_email(erin, emma, ATTACKER).status_code == 302
    grant_roles(directory.admin, emma, "cross-org-admin")
    admin = Client()
    admin.force_login(directory.admin)
    resp = admin.post(reverse("accounts:user_confirm_email", args=[emma.pk]), follow=True)
    assert any("Confirmed" in m for m in messages_of(resp))
    assert "email_unconfirmed" not in resp.context
    assert email_trust(emma).trusted
    # Pressing it again writes nothing more.
    admin.post(reverse("accounts:user_confirm_email", args=[emma.pk]))
    assert AuditEvent.objects.filter(action="user.email_confirmed").count() == 1
    assert admin.post(reverse("accounts:user_reset_link", args=[emma.pk])).status_code == 302
    assert [m.to for m in mail.outbox] == [[ATTACKER]]


def test_a_new_address_by_the_promoting_admin_is_trusted(directory, modifier, emma):
    erin = Client()
    erin.force_login(modifier)
    edit_email(erin, emma, ATTACKER)
    grant_roles(directory.admin, emma, "cross-org-admin")
    admin = Client()
    admin.force_login(directory.admin)
    assert edit_email(admin, emma, "emma.new@acme.example").status_code == 302
    forgot("emma.eng")
    assert [m.to for m in mail.outbox] == [["emma.new@acme.example"]]
    assert not AuditEvent.objects.filter(action="user.email_confirmed").exists()


def test_email_set_by_an_admin_who_left_is_unconfirmed(directory, user_factory, emma):
    """The setter must be able to change the user now: a deactivated admin vouches for nothing."""
    eve = Client()
    eve.force_login(directory.eng_admin)
    assert edit_email(eve, emma, "emma.home@example.org").status_code == 302
    assert email_trust(emma).trusted
    admin = Client()
    admin.force_login(directory.admin)
    assert admin.post(reverse("accounts:user_state", args=[directory.eng_admin.pk, "deactivate"])).status_code == 302
    assert email_trust(emma).reason == "actor_inactive"
    forgot("emma.eng")
    assert mail.outbox == []


def test_own_and_system_addresses_are_trusted(directory, emma):
    assert email_trust(emma).trusted  # created by the system actor (user_factory)
    eve = directory.eng_admin
    apply_identity_change(actor=Actor.for_user(eve), change=IdentityChange(
        user_id=eve.pk, email="eve.self@example.org", mode=Mode.UPDATE))
    grant_roles(directory.admin, eve, "cross-org-admin")
    assert email_trust(eve).trusted and email_trust(eve).set_by == eve.username
    forgot("eng.admin")
    assert [m.to for m in mail.outbox] == [["eve.self@example.org"]]


def test_email_set_through_a_bulk_upload_by_a_lesser_admin(directory, modifier, emma):
    """A bulk upload's changes are the confirming admin's (``upload_actor``): the same rule."""
    apply_identity_change(actor=Actor.for_user(modifier, source=Source.BULK, job_id="upload-1"),
                          change=IdentityChange(user_id=emma.pk, email=ATTACKER, mode=Mode.UPDATE))
    assert email_trust(emma).trusted
    grant_roles(directory.admin, emma, "cross-org-admin")
    assert email_trust(emma).reason == "target_more_privileged"
    forgot("emma.eng")
    assert mail.outbox == []


def test_user_created_with_an_address_by_a_lesser_admin(directory, modifier, user_factory):
    eve = directory.eng_admin  # Org Admin: creates users
    zoe = user_factory("zoe.eng", org=directory.engineering, email=ATTACKER, actor=Actor.for_user(eve))
    assert email_trust(zoe).trusted and email_trust(zoe).set_by == eve.username
    grant_roles(directory.admin, zoe, "cross-org-admin")
    assert not email_trust(zoe).trusted
    forgot("zoe.eng")
    assert mail.outbox == []


def test_forgot_password_costs_two_queries_for_the_email_check(directory, modifier, emma):
    erin = Client()
    erin.force_login(modifier)
    edit_email(erin, emma, ATTACKER)
    emma = User.objects.select_related("profile__org").get(pk=emma.pk)  # as forgot-password loads users
    with CaptureQueriesContext(connection) as ctx:
        assert email_trust(emma).trusted
    assert len(ctx.captured_queries) == 2, [q["sql"] for q in ctx.captured_queries]


# --------------------------------------------------------------------------------------------
# L2: one limit per user, however they are named


def test_forgot_password_limit_counts_per_user(settings, user_factory):
    settings.IDM_PASSWORD_RESET_MAX_REQUESTS = 5
    ethan = user_factory("ethan.eng", email="ethan.eng@acme.example")
    for _ in range(5):
        forgot("ethan.eng", REMOTE_ADDR="10.1.0.1")
    assert len(mail.outbox) == 5
    # Each spelling has its own identifier counter and comes from another address, yet the user's
    # counter is spent: no more mail, and the page answers as always (it does not reveal the user).
    for n, variant in enumerate(["ethan.eng@acme.example", "ETHAN.ENG@ACME.EXAMPLE", "ethan.eng@acme.example "]):
        forgot(variant, REMOTE_ADDR=f"10.2.0.{n}")
    assert len(mail.outbox) == 5
    [summary] = AuditEvent.objects.filter(action="auth.password_reset_throttled", target_id=str(ethan.pk))
    assert (summary.new_value["refused_requests"], summary.new_value["limit"]) == (1, "user")
    # Another user is not affected.
    user_factory("other.eng", email="other@acme.example")
    forgot("other@acme.example", REMOTE_ADDR="10.3.0.1")
    assert len(mail.outbox) == 6


def test_emailed_invitation_to_an_unconfirmed_address_is_refused_copy_still_works(directory, user_factory):
    zed = user_factory("zed.inv", org=directory.engineering, password=None, email=ATTACKER,
                       actor=Actor.for_user(directory.eng_admin))
    grant_roles(directory.admin, zed, "cross-org-admin")
    admin = Client()
    admin.force_login(directory.admin)
    resp = admin.post(reverse("accounts:user_invitation", args=[zed.pk]), {"how": "email"}, follow=True)
    assert any("email_unconfirmed" in m for m in messages_of(resp))
    assert mail.outbox == []
    copied = admin.post(reverse("accounts:user_invitation", args=[zed.pk]), {"how": "copy"})
    assert copied.status_code == 200 and copied.context["link"]


def test_audit_retention_keeps_the_event_that_says_who_set_the_address(directory, modifier, emma, settings):
    """Otherwise waiting out the retention period (90 days) would turn the lesser admin's address into
    one with no record, which counts as trusted."""
    from datetime import timedelta

    from django.db import models
    from django.utils import timezone

    from ops.retention import audit_purge

    erin = Client()
    erin.force_login(modifier)
    edit_email(erin, emma, "first@evil.example")
    edit_email(erin, emma, ATTACKER)
    grant_roles(directory.admin, emma, "cross-org-admin")
    old = timezone.now() - timedelta(days=400)
    models.QuerySet(AuditEvent).filter(target_id=str(emma.pk)).update(created_at=old)
    settings.IDM_AUDIT_RETENTION_DAYS = 90
    assert audit_purge().deleted > 0
    kept = AuditEvent.objects.filter(target_id=str(emma.pk))
    # Only the last address event stays (the earlier address, creation and role events go).
    assert [(e.action, e.field, e.new_value) for e in kept] == [("user.updated", "email", ATTACKER)]
    emma.refresh_from_db()
    assert email_trust(emma).reason == "target_more_privileged"
    forgot("emma.eng")
    assert mail.outbox == []
