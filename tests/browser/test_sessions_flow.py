"""Browser: an admin sees a user's sessions, signs them out everywhere, and blocking ends a session."""

from __future__ import annotations

import re

import pytest

from tests.browser.test_credentials_flow import fast_hasher, people, sign_in  # noqa: F401
from tests.conftest import TEST_PASSWORD

pytest.importorskip("accounts.sessions")
pytestmark = [pytest.mark.browser]


def test_sign_out_everywhere_and_blocking_end_sessions(live_server, page, people, browser):  # noqa: F811
    from playwright.sync_api import expect

    base = live_server.url
    erin_context = browser.new_context()
    erin = erin_context.new_page()
    sign_in(erin, base, "erin", TEST_PASSWORD)
    expect(erin.get_by_role("heading", name="My account")).to_be_visible()

    sign_in(page, base, "admin", TEST_PASSWORD)
    page.goto(f"{base}/users/{people['erin'].pk}/")
    rows = page.locator("[data-sessions] tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Password")
    expect(rows.first).to_contain_text("127.0.0.1")
    page.get_by_role("button", name="Sign out everywhere").click()
    expect(page.get_by_role("status").first).to_contain_text("Ended 1 session of erin")
    expect(page.get_by_text("Not signed in anywhere")).to_be_visible()
    erin.goto(f"{base}/account/")
    expect(erin).to_have_url(re.compile(r"/sign-in/"))

    # Signed in again, then blocked: the session ends at once.
    sign_in(erin, base, "erin", TEST_PASSWORD)
    expect(erin.get_by_role("heading", name="My account")).to_be_visible()
    page.reload()
    expect(page.locator("[data-sessions] tbody tr")).to_have_count(1)
    page.get_by_role("button", name="Block").click()
    expect(page.get_by_role("status").first).to_contain_text("Blocked erin")
    expect(page.get_by_text("Not signed in anywhere")).to_be_visible()
    erin.goto(f"{base}/account/")
    expect(erin).to_have_url(re.compile(r"/sign-in/"))
    erin_context.close()
