"""Browser: the credential workflows an admin and a user go through (issue 12).

Help desk emails a reset link (read from the test outbox; it works once), forgot password from the
sign-in page, an invitation from the create page, a temporary password changed at the next sign-in,
sign-in with a recovery code, and unlocking a locked user.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.core import mail

from accounts.mfa import flow, totp
from tests.conftest import TEST_PASSWORD

pytestmark = [pytest.mark.browser]

NEW_PASSWORD = "Brand-New-Pass-77"
LINK = re.compile(r"http://\S+?(/(?:sign-in/reset|invitation)/\S+/)")


@pytest.fixture
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def people(transactional_db, fast_hasher, user_factory, org_factory, admin_user):
    acme = org_factory("Acme")
    return {
        "admin": admin_user,
        "helpdesk": user_factory("helpdesk", org=acme, roles=["help-desk"]),
        "erin": user_factory("erin", org=acme, first_name="Erin", last_name="Example", email="erin@example.com"),
        "acme": acme,
    }


def sign_in(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/sign-in/")
    page.get_by_label("Username").fill(username)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def sign_out(page) -> None:
    page.get_by_role("button", name="Sign out").first.click()


def link_path(message) -> str:
    found = LINK.search(message.body)
    assert found, message.body
    return found.group(1)


def set_new_password(page, password: str = NEW_PASSWORD) -> None:
    page.get_by_label("New password").fill(password)
    page.get_by_label("Repeat the password").fill(password)


def test_help_desk_emails_a_reset_link_that_works_once(live_server, page, people):
    from playwright.sync_api import expect

    base = live_server.url
    erin = people["erin"]
    sign_in(page, base, "helpdesk", TEST_PASSWORD)
    page.goto(f"{base}/users/{erin.pk}/")
    page.get_by_role("button", name="Email a reset link").click()
    expect(page.get_by_role("status").first).to_contain_text("A password reset link was emailed to erin@example.com")
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["erin@example.com"]
    path = link_path(mail.outbox[0])
    sign_out(page)

    page.goto(f"{base}{path}")
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    set_new_password(page, "short")
    page.get_by_role("button", name="Set password").click()
    expect(page.locator("[data-code=password_invalid]").first).to_be_visible()
    set_new_password(page)
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("status")).to_contain_text("Your password is set")
    page.goto(f"{base}{path}")  # a second use
    expect(page.get_by_role("alert")).to_contain_text("This link does not work any more")
    sign_in(page, base, "erin", NEW_PASSWORD)
    expect(page.get_by_role("heading", name="My account")).to_be_visible()


def test_forgot_password_from_the_sign_in_page(live_server, page, people):
    from playwright.sync_api import expect

    base = live_server.url
    page.goto(f"{base}/sign-in/")
    page.get_by_label("Username").fill("erin")
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("link", name="Forgot your password?").click()
    expect(page.get_by_label("Username or email")).to_have_value("erin")
    page.get_by_role("button", name="Email me a link").click()
    expect(page.get_by_role("status")).to_contain_text("If an account matches")
    assert len(mail.outbox) == 1
    page.goto(f"{base}/sign-in/forgot/")
    page.get_by_label("Username or email").fill("nobody@example.com")
    page.get_by_role("button", name="Email me a link").click()
    expect(page.get_by_role("status")).to_contain_text("If an account matches")  # same answer
    assert len(mail.outbox) == 1

    page.goto(f"{base}{link_path(mail.outbox[0])}")
    set_new_password(page)
    page.get_by_role("button", name="Set password").click()
    page.get_by_role("link", name="Sign in").click()
    sign_in(page, base, "erin", NEW_PASSWORD)
    expect(page.get_by_role("heading", name="My account")).to_be_visible()


def test_invitation_from_the_create_page(live_server, page, people):
    from playwright.sync_api import expect

    base = live_server.url
    sign_in(page, base, "admin", TEST_PASSWORD)
    page.goto(f"{base}/users/new/?org={people['acme'].pk}")
    page.get_by_label("Username").fill("newbie")
    page.get_by_label("Email").fill("newbie@example.com")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("heading", name="Invitation for newbie")).to_be_visible()
    page.get_by_role("button", name="Show a link to copy").click()
    copied = page.get_by_label("Invitation link").input_value()
    expect(page.get_by_role("status").first).to_contain_text("It works once, until")
    page.get_by_role("link", name="Done").click()
    expect(page.locator("[data-invitation]")).to_contain_text(re.compile(r"Sent .*, expires \d{4}-\d\d-\d\d"))
    page.get_by_role("link", name="Resend invitation").click()
    page.get_by_role("button", name="Email the invitation to newbie@example.com").click()
    expect(page.get_by_role("status").first).to_contain_text("Invitation emailed to newbie@example.com")
    emailed = link_path(mail.outbox[0])
    sign_out(page)

    # Before accepting, signing in says to use the invitation.
    sign_in(page, base, "newbie", "Anything-123")
    expect(page.get_by_role("alert")).to_contain_text("Use the link in your invitation email")
    assert copied.startswith("http://127.0.0.1:8000/invitation/")  # IDM_BASE_URL, never the Host header
    page.goto(f"{base}{urlsplit(copied).path}")  # the copied link was replaced by the emailed one
    expect(page.get_by_role("alert")).to_contain_text("a newer one was sent")
    page.goto(f"{base}{emailed}")
    expect(page.get_by_role("heading", name="Set your password")).to_be_visible()
    set_new_password(page)
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("status")).to_contain_text("Your password is set")
    assert User.objects.get(username="newbie").profile.state == "active"
    sign_in(page, base, "newbie", NEW_PASSWORD)
    expect(page.get_by_role("heading", name="My account")).to_be_visible()


def test_temporary_password_is_changed_at_next_sign_in(live_server, page, people, browser):
    from playwright.sync_api import expect

    base = live_server.url
    erin = people["erin"]
    # Erin is signed in elsewhere: the reset ends that session.
    other = browser.new_context()
    erin_page = other.new_page()
    sign_in(erin_page, base, "erin", TEST_PASSWORD)
    expect(erin_page.get_by_role("heading", name="My account")).to_be_visible()

    sign_in(page, base, "helpdesk", TEST_PASSWORD)
    page.goto(f"{base}/users/{erin.pk}/")
    page.get_by_role("link", name="Set a temporary password").click()
    page.get_by_role("button", name="Set temporary password").click()
    temp = page.get_by_label("Temporary password").input_value()
    assert len(temp) == 16
    page.get_by_role("link", name="Done").click()
    expect(page.locator("[data-required-actions]")).to_have_text("Change password")

    erin_page.goto(f"{base}/account/")
    expect(erin_page).to_have_url(re.compile(r"/sign-in/"))
    other.close()

    sign_out(page)
    sign_in(page, base, "erin", temp)
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    page.goto(f"{base}/account/")
    expect(page).to_have_url(re.compile(r"/account/new-password/"))
    set_new_password(page)
    page.get_by_role("button", name="Change password and continue").click()
    expect(page.get_by_role("status").first).to_contain_text("Your password has been changed")
    page.goto(f"{base}/account/")
    expect(page.get_by_role("heading", name="My account")).to_be_visible()


def test_recovery_code_sign_in(live_server, page, people):
    from playwright.sync_api import expect

    base = live_server.url
    sign_in(page, base, "erin", TEST_PASSWORD)
    page.goto(f"{base}/account/two-factor/")
    page.get_by_role("button", name="Start set-up").click()
    secret = page.locator("dd code").first.inner_text().replace(" ", "")
    page.get_by_role("textbox", name="Code").fill(totp.totp(secret))
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_role("heading", name="Recovery codes")).to_be_visible()
    codes = [c.inner_text() for c in page.locator("[data-recovery-codes] code").all()]
    assert len(codes) == 10
    page.get_by_role("link", name="I have saved them, continue").click()
    expect(page.get_by_role("heading", name="My account")).to_be_visible()
    sign_out(page)

    sign_in(page, base, "erin", TEST_PASSWORD)
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    page.get_by_label("Code").fill(codes[3])
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="My account")).to_be_visible()
    sign_out(page)
    sign_in(page, base, "erin", TEST_PASSWORD)
    page.get_by_label("Code").fill(codes[3])  # used already
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_contain_text("That code is not valid")
    assert flow.confirmed_device(people["erin"]) is not None


def test_unlock_a_locked_user(live_server, page, people, settings):
    from playwright.sync_api import expect

    settings.IDM_SIGNIN_MAX_FAILURES = 3
    base = live_server.url
    for _ in range(3):
        sign_in(page, base, "erin", "Wrong-Pass-123")
    sign_in(page, base, "erin", TEST_PASSWORD)
    expect(page.get_by_role("alert")).to_contain_text(re.compile(r"Try again in 1[45] minutes"))

    sign_in(page, base, "helpdesk", TEST_PASSWORD)
    page.goto(f"{base}/users/?state=locked")
    expect(page.get_by_role("link", name="Erin Example")).to_be_visible()
    page.get_by_role("link", name="Erin Example").click()
    expect(page.locator("[data-lock]")).to_contain_text("Locked")
    page.get_by_role("button", name="Unlock").click()
    expect(page.get_by_role("status").first).to_contain_text("Unlocked erin")
    expect(page.locator("[data-lock]")).to_have_count(0)
    sign_out(page)
    sign_in(page, base, "erin", TEST_PASSWORD)
    expect(page.get_by_role("heading", name="My account")).to_be_visible()
