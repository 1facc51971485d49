"""Credential lifecycle through the real pages: admin reset link and temporary password, forgot
password, invitations, required actions (incl. the first admin's generated password), recovery
codes, sign-in locks with unlock. Emails are read from Django's test outbox."""

from __future__ import annotations

import datetime as dt
import re
import time
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import User
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from accounts.credentials import service
from accounts.credentials.models import Invitation, RecoveryCode, RequiredAction, SignInLock
from accounts.credentials.tokens import invitation_tokens, reset_tokens
from accounts.exceptions import IdentityError
from accounts.identity.orgs import org_update_settings
from accounts.identity.types import Actor, AuthMethod, UserState
from accounts.mfa import flow, totp
from accounts.models import AuditEvent
from tests.accounts.console_support import messages_of
from tests.accounts.link_support import open_link, submit_link
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.usefixtures("fast_hasher")

NEW_PASSWORD = "Brand-New-Pass-77"
LINK = re.compile(r"http://[^\s]+/(?:sign-in/reset|invitation)/[^\s]+/")


def actions(user) -> list[str]:
    return list(AuditEvent.objects.filter(target_type="user", target_id=str(user.pk))
                .order_by("created_at", "id").values_list("action", flat=True))


def link_in(message) -> str:
    found = LINK.search(message.body)
    assert found, message.body
    return urlsplit(found.group(0)).path


def sign_in(client, username, password, next_path="/"):
    client.post("/sign-in/", {"username": username, "next": next_path})
    return client.post("/sign-in/", {"username": username, "password": password, "next": next_path})


@pytest.fixture
def help_desk(user_factory, directory):
    return user_factory("helpdesk", org=directory.acme, roles=["help-desk"])


@pytest.fixture
def sso_org(org_factory, system_actor):
    from sso.models import IdentityProvider

    idp = IdentityProvider.objects.create(name="Okta")
    org = org_factory("SSO Corp")
    org_update_settings(actor=system_actor, org=org, auth_method=AuthMethod.SSO, auth_provider=idp)
    return org


# --------------------------------------------------------------------------------------------
# Admin: reset link


def test_help_desk_emails_a_reset_link_that_works_once(client, directory, help_desk):
    target = directory.eng_user
    victim_client = Client()
    victim_client.force_login(target)
    client.force_login(help_desk)
    page = client.get(reverse("accounts:user_detail", args=[target.pk]))
    assert b"Email a reset link" in page.content and b"Set a temporary password" in page.content
    resp = client.post(reverse("accounts:user_reset_link", args=[target.pk]), follow=True)
    assert any("reset link was emailed" in m for m in messages_of(resp))
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [target.email]
    assert "works once, for 1 hour" in mail.outbox[0].body
    path = link_in(mail.outbox[0])
    assert "user.password_reset_sent" in actions(target)

    anon = Client()
    assert open_link(anon, path).status_code == 200
    weak = submit_link(anon, path, "short")
    assert weak.status_code == 400 and "password_invalid" in {e.code for e in weak.context["form"].errors.as_data()["password1"]}
    done = submit_link(anon, path, NEW_PASSWORD)
    assert done.status_code == 200 and done.context["done"]
    target.refresh_from_db()
    assert target.check_password(NEW_PASSWORD)
    assert {"user.password_changed", "auth.password_reset_completed"} <= set(actions(target))
    # Single use: the password hash changed, so the same link is dead.
    assert anon.get(path).status_code == 400
    # The session the user had before the reset is gone (password hash changed).
    assert victim_client.get("/account/").status_code == 302


def test_reset_link_expires(client, directory, help_desk, monkeypatch):
    client.force_login(help_desk)
    client.post(reverse("accounts:user_reset_link", args=[directory.eng_user.pk]))
    path = link_in(mail.outbox[0])
    later = reset_tokens._now() + dt.timedelta(seconds=3601)
    monkeypatch.setattr(reset_tokens, "_now", lambda: later)
    assert Client().get(path).status_code == 400


def test_reset_refused_out_of_scope_for_self_and_for_sso_users(client, directory, sso_org, user_factory):
    client.force_login(directory.eng_admin)  # Org Admin of Engineering only
    assert client.post(reverse("accounts:user_reset_link", args=[directory.sales_user.pk])).status_code == 404
    assert client.post(reverse("accounts:user_reset_link", args=[directory.eng_admin.pk])).status_code == 302
    assert not mail.outbox
    sso_user = user_factory("sso.person", org=sso_org, password=None, state="active")
    with pytest.raises(IdentityError) as exc:
        service.send_reset_link(actor=Actor.for_user(directory.admin), user=sso_user, base_url="http://x")
    assert exc.value.code == "sso_user"
    with pytest.raises(IdentityError) as exc:
        service.check_may_reset(actor=Actor.for_user(directory.admin), user=directory.admin)
    assert exc.value.code == "self_reset"


def test_console_user_without_the_permission_gets_403(client, directory):
    client.force_login(directory.member)
    assert client.post(reverse("accounts:user_reset_link", args=[directory.eng_user.pk])).status_code == 403
    assert client.post(reverse("accounts:user_temporary_password", args=[directory.eng_user.pk])).status_code == 403


def test_help_desk_may_not_reset_a_more_privileged_user(client, directory, help_desk):
    pytest.importorskip("accounts.identity.privilege")  # the privilege rule (helper priv)
    client.force_login(help_desk)
    resp = client.post(reverse("accounts:user_temporary_password", args=[directory.admin.pk]), follow=True)
    assert any("target_more_privileged" in m for m in messages_of(resp))
    client.post(reverse("accounts:user_reset_link", args=[directory.admin.pk]))
    assert not mail.outbox
    directory.admin.refresh_from_db()
    assert directory.admin.check_password(TEST_PASSWORD)


# --------------------------------------------------------------------------------------------
# Admin: temporary password -> required change at the next sign-in


def test_temporary_password_must_be_changed_at_next_sign_in(client, directory, help_desk):
    target = directory.eng_user
    client.force_login(help_desk)
    assert b"Set temporary password" in client.get(reverse("accounts:user_temporary_password", args=[target.pk])).content
    resp = client.post(reverse("accounts:user_temporary_password", args=[target.pk]))
    temp = resp.context["password"]
    assert resp.status_code == 200 and len(temp) == 16
    assert RequiredAction.objects.filter(user=target, kind="change_password").exists()
    assert {"user.password_changed", "user.required_action_set", "user.temporary_password_set"} <= set(actions(target))
    assert temp not in str(list(AuditEvent.objects.values_list("new_value", "old_value", "message")))
    detail = client.get(reverse("accounts:user_detail", args=[target.pk]))
    assert b"Change password" in detail.content  # listed under "At next sign-in"

    user_client = Client()
    resp = sign_in(user_client, target.username, temp, next_path="/orgs/")
    assert resp.status_code == 302 and str(user_client.session[SESSION_KEY]) == str(target.pk)
    # Every page goes to the password change until it is done.
    assert user_client.get("/orgs/")["Location"] == "/account/new-password/"
    assert user_client.get("/account/")["Location"] == "/account/new-password/"
    same = user_client.post("/account/new-password/", {"password1": temp, "password2": temp})
    assert same.status_code == 400  # the history rule refuses the temporary password
    resp = user_client.post("/account/new-password/", {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert resp["Location"] == "/orgs/"
    assert user_client.get("/account/").status_code == 200  # still signed in, free to go
    assert not RequiredAction.objects.filter(user=target).exists()
    assert actions(target)[-1] == "auth.required_action_completed"


@pytest.mark.parametrize("next_path", ["/%2F%2Fevil.example/phish", "/%252F%252Fevil.example/phish",
                                       "/%2F%5Cevil.example/"])
def test_required_password_change_never_returns_to_another_host(client, directory, help_desk, next_path):
    """Review 3, M1: a double-encoded ``next`` survives the sign-in page as ``/%2F%2Fevil.example``,
    Django decodes that path to ``//evil.example`` and the interrupted page used to be stored and
    redirected to after the password change: a scheme-relative URL to another host."""
    target = directory.eng_user
    client.force_login(help_desk)
    temp = client.post(reverse("accounts:user_temporary_password", args=[target.pk])).context["password"]
    user_client = Client()
    first = sign_in(user_client, target.username, temp, next_path=next_path)
    assert first.status_code == 302 and not first["Location"].startswith("//")
    # The browser follows the sign-in's redirect; that page is interrupted by the required change.
    assert user_client.get(first["Location"])["Location"] == "/account/new-password/"
    done = user_client.post("/account/new-password/", {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert done.status_code == 302
    location = done["Location"]
    assert urlsplit(location).netloc == "" and location.startswith("/")
    assert not location.startswith(("//", "/\\")) and "\\" not in location


@pytest.mark.parametrize("link", ["/%2F%2Fevil.example/phish", "/%2F%5Cevil.example/", "/%5C%5Cevil.example/"])
def test_a_link_opened_while_the_password_change_is_pending_is_not_returned_to(client, directory, help_desk,
                                                                               link):
    """The same through a link the user opens while the change is pending (no ``next`` involved)."""
    target = directory.eng_user
    client.force_login(help_desk)
    temp = client.post(reverse("accounts:user_temporary_password", args=[target.pk])).context["password"]
    user_client = Client()
    assert sign_in(user_client, target.username, temp).status_code == 302
    assert user_client.get(link)["Location"] == "/account/new-password/"
    done = user_client.post("/account/new-password/", {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert done.status_code == 302
    location = done["Location"]
    assert urlsplit(location).netloc == "" and location.startswith("/")
    assert not location.startswith(("//", "/\\")) and "\\" not in location


def test_first_admin_generated_password_must_be_changed(db, capsys):
    call_command("create_first_admin", "--username", "root.admin")
    out = capsys.readouterr().out
    password = re.search(r"with password: (\S+)", out).group(1)
    user = User.objects.get(username="root.admin")
    assert RequiredAction.objects.filter(user=user, kind="change_password").exists()
    client = Client()
    sign_in(client, "root.admin", password)
    assert client.get("/")["Location"] == "/account/new-password/"


def test_first_admin_with_a_chosen_password_is_not_forced(db):
    call_command("create_first_admin", "--username", "boss", "--password", "Zebra-Lamp-42x")
    assert not RequiredAction.objects.filter(user__username="boss").exists()


def test_required_two_factor_enrolment(client, directory, user_factory):
    target = directory.eng_user
    client.force_login(directory.admin)
    client.post(reverse("accounts:user_required_actions", args=[target.pk]), {"kinds": ["enrol_mfa"]})
    assert [a.kind for a in RequiredAction.objects.filter(user=target)] == ["enrol_mfa"]
    assert "user.required_action_set" in actions(target)
    user_client = Client()
    assert sign_in(user_client, target.username, TEST_PASSWORD)["Location"] == "/sign-in/enrol/"
    secret = user_client.get("/sign-in/enrol/").context["secret_groups"].replace(" ", "")
    resp = user_client.post("/sign-in/enrol/", {"code": totp.totp(secret)})
    assert resp["Location"] == "/account/two-factor/recovery-codes/"
    assert not RequiredAction.objects.filter(user=target).exists()
    # Clearing: an empty selection removes a requirement (audited).
    client.post(reverse("accounts:user_required_actions", args=[target.pk]), {"kinds": ["change_password"]})
    client.post(reverse("accounts:user_required_actions", args=[target.pk]), {})
    assert not RequiredAction.objects.filter(user=target).exists()
    assert actions(target)[-1] == "user.required_action_cleared"
    resp = client.post(reverse("accounts:user_required_actions", args=[target.pk]), {"kinds": ["evil"]}, follow=True)
    assert any("unknown_action" in m for m in messages_of(resp))


# --------------------------------------------------------------------------------------------
# Forgot password


def test_forgot_password_same_answer_whether_or_not_the_account_exists(client, directory):
    page = client.get("/sign-in/forgot/?username=eng.user")
    assert page.status_code == 200 and page.context["form"].initial["identifier"] == "eng.user"
    known = client.post("/sign-in/forgot/", {"identifier": "eng.user"})
    unknown = client.post("/sign-in/forgot/", {"identifier": "nobody.here"})
    by_email = client.post("/sign-in/forgot/", {"identifier": directory.sales_user.email.upper()})
    assert known.status_code == unknown.status_code == by_email.status_code == 200
    assert known.content.replace(b"eng.user", b"") == unknown.content.replace(b"nobody.here", b"")
    assert [m.to for m in mail.outbox] == [[directory.eng_user.email], [directory.sales_user.email]]
    path = link_in(mail.outbox[0])
    resp = submit_link(Client(), path, NEW_PASSWORD)
    assert resp.context["done"]
    assert submit_link(Client(), path, NEW_PASSWORD + "x").status_code == 400
    events = AuditEvent.objects.filter(action="auth.password_reset_requested")
    assert sorted(e.new_value["sent"] for e in events) == [False, True, True]


def test_forgot_password_finds_the_user_as_sign_in_does(client, directory):
    """The username is looked up as at sign-in (``users_named``: NFKC, case-folded), so a fullwidth or
    upper-case spelling reaches the one user it names (``username__iexact`` found nobody)."""
    client.post("/sign-in/forgot/", {"identifier": "\uff25\uff2e\uff27.USER"})  # fullwidth "ENG"
    assert [m.to for m in mail.outbox] == [[directory.eng_user.email]]


def test_forgot_password_tells_sso_users_to_use_their_idp(client, sso_org, user_factory):
    user = user_factory("sso.person", org=sso_org, password=None, state="active")
    resp = client.post("/sign-in/forgot/", {"identifier": "sso.person"})
    assert resp.status_code == 200
    assert len(mail.outbox) == 1 and "Okta" in mail.outbox[0].body and not LINK.search(mail.outbox[0].body)
    # And a reset link made anyway does not work for them.
    path = service.reset_path(user)
    assert Client().get(path).status_code == 400
    # The sign-in page never offers them the password step (so no "forgot password" link).
    resp = client.post("/sign-in/", {"username": "sso.person"})
    assert resp.status_code in (302, 403) and b"/sign-in/forgot/" not in resp.content


def test_forgot_password_is_throttled(client, directory, settings):
    settings.IDM_PASSWORD_RESET_MAX_REQUESTS = 2
    for _ in range(2):
        assert client.post("/sign-in/forgot/", {"identifier": "eng.user"}).status_code == 200
    resp = client.post("/sign-in/forgot/", {"identifier": "eng.user"})
    assert resp.status_code == 429 and b"Too many reset requests" in resp.content
    assert len(mail.outbox) == 2
    assert AuditEvent.objects.filter(action="auth.password_reset_throttled").count() == 1


def test_sign_in_password_step_offers_forgot_password(client, directory):
    resp = client.post("/sign-in/", {"username": "eng.user"})
    assert b'href="/sign-in/forgot/?username=eng.user"' in resp.content


def test_forgot_password_link_ignores_blocked_users(client, directory):
    service_actor = Actor.for_user(directory.admin)
    from accounts import console_actions as services

    services.user_block(actor=service_actor, user=directory.eng_user)
    client.post("/sign-in/forgot/", {"identifier": "eng.user"})
    assert not mail.outbox


# --------------------------------------------------------------------------------------------
# Invitations


def test_invitation_from_the_create_page(client, directory):
    client.force_login(directory.admin)
    resp = client.post(reverse("accounts:user_create"), {
        "org": directory.acme.pk, "username": "newbie", "email": "newbie@example.com", "first_name": "New",
        "last_name": "Bie", "password": "", "notes": ""})
    user = User.objects.get(username="newbie")
    assert resp["Location"] == reverse("accounts:user_invitation", args=[user.pk])
    page = client.get(resp["Location"])
    assert b"Email the invitation to newbie@example.com" in page.content

    # An invited user who tries to sign in is told to use the invitation.
    anon = Client()
    resp = sign_in(anon, "newbie", "Whatever-123")
    assert resp.status_code == 400 and b"Use the link in your invitation email" in resp.content

    resp = client.post(resp_url := reverse("accounts:user_invitation", args=[user.pk]), {"how": "email"}, follow=True)
    assert any("Invitation emailed" in m for m in messages_of(resp))
    first = link_in(mail.outbox[0])
    inv = Invitation.objects.get(user=user)
    assert dt.timedelta(days=6, hours=23) < inv.expires_at - inv.sent_at <= dt.timedelta(days=7)
    assert b"expires" in client.get(reverse("accounts:user_detail", args=[user.pk])).content

    # Resend as a link to copy: the emailed link stops working.
    resp = client.post(resp_url, {"how": "link"})
    second = urlsplit(resp.context["link"]).path
    assert second != first
    assert anon.get(first).status_code == 400 and open_link(anon, second).status_code == 200
    assert [e for e in actions(user) if e == "user.invitation_sent"] == ["user.invitation_sent"] * 2

    resp = submit_link(anon, second, NEW_PASSWORD)
    assert resp.context["done"]
    user.refresh_from_db()
    assert user.profile.state == UserState.ACTIVE and user.check_password(NEW_PASSWORD)
    assert {"user.activated", "auth.invitation_accepted"} <= set(actions(user))
    assert not Invitation.objects.filter(user=user).exists()
    assert anon.get(second).status_code == 400  # used
    assert sign_in(anon, "newbie", NEW_PASSWORD).status_code == 302


def test_invitation_expires_and_needs_an_invited_user(client, directory, user_factory, monkeypatch):
    invited = user_factory("waiting", org=directory.acme, password=None)
    link, inv = service.invite(actor=Actor.for_user(directory.admin), user=invited, base_url="http://t", email=False)
    path = urlsplit(link).path
    assert open_link(Client(), path).status_code == 200
    later = invitation_tokens._now() + dt.timedelta(days=7, seconds=1)
    monkeypatch.setattr(invitation_tokens, "_now", lambda: later)
    assert Client().get(path).status_code == 400
    with pytest.raises(IdentityError) as exc:
        service.invite(actor=Actor.for_user(directory.admin), user=directory.eng_user, base_url="http://t",
                       email=False)
    assert exc.value.code == "not_invited"
    nomail = user_factory("nomail", org=directory.acme, password=None, email="")
    with pytest.raises(IdentityError) as exc:
        service.invite(actor=Actor.for_user(directory.admin), user=nomail, base_url="http://t", email=True)
    assert exc.value.code == "no_email"


# --------------------------------------------------------------------------------------------
# Recovery codes


@pytest.fixture
def enrolled_user(user_factory, directory):
    user = user_factory("tfa.user", org=directory.acme)
    device = flow.begin_enrolment(actor=flow._actor(None, user), user=user)
    assert flow.check_code(actor=flow._actor(None, user), user=user, code=totp.totp(device.secret, at=time.time() - 30),
                           confirm=True, context="test")
    return user


def test_recovery_codes_are_hashed_single_use_and_regenerable(enrolled_user):
    user = enrolled_user
    client = Client()
    client.force_login(user)
    assert client.get("/account/two-factor/recovery-codes/").context["left"] == 0
    codes = client.post("/account/two-factor/recovery-codes/").context["codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(re.fullmatch(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}", c) for c in codes)
    stored = list(RecoveryCode.objects.filter(user=user).values_list("code_hash", flat=True))
    assert all(c.replace("-", "") not in h for c in codes for h in stored) and len(stored) == 10

    anon = Client()
    assert sign_in(anon, user.username, TEST_PASSWORD)["Location"] == "/sign-in/verify/"
    resp = anon.post("/sign-in/verify/", {"code": codes[0].upper().replace("-", " ")})
    assert resp.status_code == 302 and str(anon.session[SESSION_KEY]) == str(user.pk)
    assert actions(user)[-2:] == ["auth.recovery_code_used", "auth.login_succeeded"]
    event = AuditEvent.objects.filter(action="auth.recovery_code_used").get()
    assert event.new_value == {"remaining": 9, "method": "password"}  # ops adds the sign-in method

    again = Client()
    sign_in(again, user.username, TEST_PASSWORD)
    resp = again.post("/sign-in/verify/", {"code": codes[0]})
    assert resp.status_code == 400 and SESSION_KEY not in again.session  # used once only
    assert AuditEvent.objects.filter(action="auth.mfa_failed", new_value__reason="invalid_recovery_code").exists()

    new_codes = client.post("/account/two-factor/recovery-codes/").context["codes"]
    assert set(new_codes).isdisjoint(codes)
    third = Client()
    sign_in(third, user.username, TEST_PASSWORD)
    assert third.post("/sign-in/verify/", {"code": codes[1]}).status_code == 400  # old set replaced
    assert third.post("/sign-in/verify/", {"code": new_codes[1]}).status_code == 302


def test_resetting_two_factor_removes_recovery_codes(enrolled_user, directory):
    service.generate_recovery_codes(actor=Actor.for_user(enrolled_user), user=enrolled_user)
    flow.remove_device(actor=Actor.for_user(directory.admin), user=enrolled_user, action="user.mfa_reset")
    assert not RecoveryCode.objects.filter(user=enrolled_user).exists()


def test_normalise_recovery_code():
    assert service.normalise_recovery_code(" ABCD-efgh ijkl-mnop ") == "abcdefghijklmnop"
    assert service.normalise_recovery_code("abcdefghijklmno") is None
    assert service.normalise_recovery_code("abcdefghijklmnop1") is None
    assert service.normalise_recovery_code("abcdefghijklmno1") is None  # 1 is not base32
    assert service.normalise_recovery_code("123456") is None
    assert service.normalise_recovery_code(None) is None


# --------------------------------------------------------------------------------------------
# Locks


@pytest.fixture
def limits(settings):
    settings.IDM_SIGNIN_MAX_FAILURES = 3
    settings.IDM_SIGNIN_MAX_FAILURES_PER_IP = 50
    settings.IDM_SIGNIN_LOCKOUT_SECONDS = 900


def test_locked_user_shows_in_the_console_and_can_be_unlocked(client, directory, help_desk, limits):
    target = directory.eng_user
    anon = Client()
    for _ in range(3):
        sign_in(anon, target.username, "Wrong-Pass-123")
    resp = sign_in(anon, target.username, TEST_PASSWORD)
    assert resp.status_code == 429
    assert re.search(r"Try again in 1[45] minutes \(at \d\d:\d\d UTC\)", resp.content.decode())
    lock = SignInLock.objects.get(username="eng.user")
    assert dt.timedelta(minutes=14) < lock.locked_until - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=15)

    client.force_login(help_desk)
    page = client.get(reverse("accounts:user_detail", args=[target.pk]))
    assert b"data-lock" in page.content and b"Unlock" in page.content
    listed = client.get(reverse("accounts:user_list"), {"state": "locked"})
    assert [u.username for u in listed.context["page"]] == ["eng.user"]
    assert client.get(reverse("accounts:user_detail", args=[directory.sales_user.pk])).content.count(b"data-lock") == 0

    resp = client.post(reverse("accounts:user_unlock", args=[target.pk]), follow=True)
    assert any("Unlocked eng.user" in m for m in messages_of(resp))
    assert actions(target)[-1] == "user.unlocked"
    assert not SignInLock.objects.exists()
    assert list(client.get(reverse("accounts:user_list"), {"state": "locked"}).context["page"]) == []
    assert sign_in(anon, target.username, TEST_PASSWORD).status_code == 302
    # Unlocking someone not locked says so and writes nothing.
    resp = client.post(reverse("accounts:user_unlock", args=[target.pk]), follow=True)
    assert any("is not locked" in m for m in messages_of(resp))
    assert actions(target).count("user.unlocked") == 1


def test_help_desk_may_not_unlock_a_more_privileged_user(client, directory, help_desk, limits):
    target = directory.admin  # Customer Cloud Admin
    anon = Client()
    for _ in range(3):
        sign_in(anon, target.username, "Wrong-Pass-123")
    assert SignInLock.objects.filter(username=target.username).exists()

    client.force_login(help_desk)
    page = client.get(reverse("accounts:user_detail", args=[target.pk])).content
    assert b"data-lock" in page and reverse("accounts:user_unlock", args=[target.pk]).encode() not in page
    resp = client.post(reverse("accounts:user_unlock", args=[target.pk]), follow=True)
    assert any("target_more_privileged" in m for m in messages_of(resp))
    assert "user.unlocked" not in actions(target)
    assert SignInLock.objects.filter(username=target.username).exists()
    assert sign_in(anon, target.username, TEST_PASSWORD).status_code == 429
    with pytest.raises(IdentityError) as exc:
        service.unlock(actor=Actor.for_user(help_desk), user=target)
    assert exc.value.code == "target_more_privileged"


def test_expired_lock_is_not_listed(directory, limits):
    SignInLock.objects.create(username="eng.user", locked_until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    assert service.active_lock(directory.eng_user) is None
    assert not service.locked_users(User.objects.all()).exists()


def test_required_enrolment_is_met_by_an_existing_device(enrolled_user, directory):
    service.set_required_actions(actor=Actor.for_user(directory.admin), user=enrolled_user, kinds={"enrol_mfa"})
    client = Client()
    assert sign_in(client, enrolled_user.username, TEST_PASSWORD)["Location"] == "/sign-in/verify/"
    secret = flow.confirmed_device(enrolled_user).secret
    assert client.post("/sign-in/verify/", {"code": totp.totp(secret, at=time.time() + 30)}).status_code == 302
    assert not RequiredAction.objects.filter(user=enrolled_user).exists()
    assert actions(enrolled_user)[-1] == "auth.required_action_completed"
