"""Browser: sign in, create an org, create a user in it, assign a role, and find the events in the audit log."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User

from tests.conftest import TEST_PASSWORD

pytestmark = [pytest.mark.browser]


@pytest.fixture
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_console_flow(transactional_db, fast_hasher, live_server, page, admin_user, root_org):
    from playwright.sync_api import expect

    # Sign in: username first, then the password (the default org signs in locally).
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(re.compile(r"/sign-in/"))
    page.get_by_label("Username").fill("admin")
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    # Create an org under the top-level org.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Organizations").click()
    page.get_by_role("link", name=root_org.name, exact=True).click()
    page.get_by_role("link", name="Add sub-organization").click()
    page.get_by_label("Name").fill("Research")
    page.get_by_label("External reference").fill("R-42")
    page.get_by_role("button", name="Create organization").click()
    expect(page.get_by_role("heading", name="Research")).to_be_visible()
    expect(page.get_by_role("status").first).to_contain_text("Created Research")

    # Create a user in it (the org is preselected from the org page).
    page.get_by_role("link", name="Create user").click()
    expect(page.get_by_label("Organization")).to_have_value(str(_org_pk("Research")))
    page.get_by_label("Username").fill("rita.research")
    page.get_by_label("Email").fill("rita@example.com")
    page.get_by_label("First name").fill("Rita")
    page.get_by_label("Last name").fill("Reyes")
    page.get_by_role("button", name="Create user").click()
    # No password given: the next page offers the invitation (email or link); send it later.
    expect(page.get_by_role("heading", name="Invitation for Rita Reyes")).to_be_visible()
    page.get_by_role("link", name="Later").click()
    expect(page.get_by_role("heading", name="Rita Reyes")).to_be_visible()
    expect(page.locator(".badge-invited").first).to_be_visible()

    # Assign a role with the checkbox list.
    page.get_by_role("link", name="Assign roles").click()
    page.get_by_label("Help Desk").check()
    page.get_by_role("button", name="Save roles").click()
    expect(page.get_by_role("status").first).to_contain_text("Roles saved")
    expect(page.get_by_role("link", name="Help Desk")).to_be_visible()

    # The audit log shows what we did.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    page.get_by_label("Actor").fill("admin")
    page.get_by_role("button", name="Apply").click()
    table = page.locator("table.table")
    expect(table).to_contain_text("org.created")
    expect(table).to_contain_text("user.created")
    expect(table).to_contain_text("user.role_added")
    expect(table).to_contain_text("rita.research")
    assert {g.role.slug for g in User.objects.get(username="rita.research").groups.all()} >= {"help-desk"}


def _org_pk(name: str) -> int:
    from accounts.models import Organization

    return Organization.objects.get(name=name).pk
