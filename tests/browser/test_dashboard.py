"""Browser: the dashboard renders its charts under the CSP (no violation), alerts and the table fallback."""

from __future__ import annotations

import re

import pytest

from tests.conftest import TEST_PASSWORD

pytestmark = [pytest.mark.browser]


@pytest.fixture
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_dashboard_charts_alerts_and_tables(transactional_db, fast_hasher, live_server, page, admin_user):
    from django.core.cache import cache
    from playwright.sync_api import expect

    cache.clear()  # the database cache table outlives other tests' flushes: no stale "today" counts
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.goto(f"{live_server.url}/sign-in/")
    page.get_by_label("Username").fill("admin")
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Password").fill("wrong-password-1")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    # Alerts: no backup yet.
    expect(page.locator('[data-alert="backup_missing"]')).to_contain_text("No backup has been made yet")
    # The chart is an SVG image with bars for today's sign-ins (1 failure, 1 success).
    chart = page.get_by_role("img", name="Sign-ins per day, succeeded and failed")
    expect(chart).to_be_visible()
    assert chart.locator("rect").count() == 2
    box = chart.bounding_box()
    assert box and box["width"] > 200 and box["height"] > 40
    # The bars are coloured by the stylesheet (the CSP allows no inline style): fill is not the default black.
    fill = chart.locator("rect.chart-s1").evaluate("el => getComputedStyle(el).fill")
    assert fill == "rgb(214, 69, 69)", fill
    # The same numbers as a table, behind "Table".
    section = page.locator("section", has=page.get_by_role("heading", name=re.compile("Sign-ins per day")))
    section.get_by_text("Table").click()
    last_row = section.locator('[data-chart-table="sign-ins"] tbody tr').last
    expect(last_row.locator("td").nth(1)).to_have_text("1")
    expect(last_row.locator("td").nth(2)).to_have_text("1")
    assert violations == [], violations
