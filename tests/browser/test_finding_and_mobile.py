"""Browser: substring search with page sizes and collapsing filters; the phone-width menu (with and
without scripts); bulk block asks first; the audit log has no dead-end links for an auditor."""

from __future__ import annotations

import re

import pytest
from django.conf import settings as django_settings

from accounts.identity.types import UserState

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


def login(context, live_server, client, user):
    client.force_login(user)
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME]
    context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])


def test_substring_search_and_bulk_block(page, live_server, client, directory, user_factory):
    from playwright.sync_api import expect

    user_factory("zed.zulu", org=directory.sales, email="zed@acme-widgets.example", first_name="Zed",
                 last_name="Zulu")
    login(page.context, live_server, client, directory.admin)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/users/")
    # Wide screen: the filters are open.
    expect(page.get_by_label("Organization")).to_be_visible()
    page.get_by_label("Search").fill("widgets")  # part of an email, not a prefix
    page.get_by_role("button", name="Apply").click()
    rows = page.locator("table.table-users tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("zed.zulu")

    page.get_by_label("Search").fill("ales")  # inside "sales.user"
    page.get_by_label("Per page").select_option("25")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"per_page=25"))
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("sales.user")

    # Bulk block asks first, then says what happened.
    page.get_by_label("Select sales.user").check()
    page.get_by_role("button", name="Block selected", exact=True).click()
    expect(page.get_by_role("heading", name="Block 1 user?")).to_be_visible()
    assert directory.sales_user.profile.__class__.objects.get(user=directory.sales_user).state == UserState.ACTIVE
    page.get_by_role("button", name="Block 1 user", exact=True).click()
    expect(page.get_by_role("status").first).to_contain_text("Blocked 1 user.")
    expect(page).to_have_url(re.compile(r"q=ales"))  # back to the same filtered list
    assert directory.sales_user.profile.__class__.objects.get(user=directory.sales_user).state == UserState.BLOCKED


def test_phone_menu_reaches_every_item_and_filters_collapse(page, live_server, client, directory):
    from playwright.sync_api import expect

    login(page.context, live_server, client, directory.admin)
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}/users/")
    nav = page.get_by_role("navigation", name="Main")
    menu = page.get_by_role("button", name="Menu")
    expect(menu).to_be_visible()
    expect(nav).to_be_hidden()
    # Collapsed filters: the search box stays, the rest is one tap away.
    expect(page.get_by_label("Search")).to_be_visible()
    expect(page.get_by_label("Organization")).to_be_hidden()
    page.get_by_text("Filters", exact=True).click()
    expect(page.get_by_label("Organization")).to_be_visible()

    for name in ("Dashboard", "Users", "Organizations", "Roles", "Authentication", "Audit log"):
        menu.click()
        expect(menu).to_have_attribute("aria-expanded", "true")
        link = nav.get_by_role("link", name=name)
        box = link.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], name
        link.click()
        expect(page.locator("h1").first).to_be_visible()
        expect(nav).to_be_hidden()  # a new page starts with the menu closed
    # No horizontal scrolling at phone width.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_phone_nav_without_scripts(browser, live_server, client, directory):
    from playwright.sync_api import expect

    context = browser.new_context(java_script_enabled=False, viewport=PHONE)
    try:
        login(context, live_server, client, directory.admin)
        page = context.new_page()
        page.goto(f"{live_server.url}/users/")
        nav = page.get_by_role("navigation", name="Main")
        expect(page.get_by_role("button", name="Menu")).to_be_hidden()  # no script: no dead button
        for name in ("Dashboard", "Users", "Organizations", "Roles", "Authentication", "Audit log"):
            link = nav.get_by_role("link", name=name)
            expect(link).to_be_visible()
            box = link.bounding_box()
            assert box and box["x"] + box["width"] <= PHONE["width"], name
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    finally:
        context.close()


def test_auditor_sees_no_dead_end_links(page, live_server, client, directory):
    from playwright.sync_api import expect

    login(page.context, live_server, client, directory.auditor)
    page.goto(f"{live_server.url}/audit/?target=sales.user")
    cell = page.locator("table.table tbody tr").first
    expect(cell).to_contain_text("sales.user")
    expect(cell.get_by_role("link")).to_have_count(0)
