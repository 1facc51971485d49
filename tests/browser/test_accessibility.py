"""Accessibility: axe-core (shipped by axe-playwright-python) on the console's main pages, at desktop
and phone width. Zero serious or critical violations (labels, contrast, landmarks, names…), and no
page wider than a 390 px phone."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SEVERE = {"serious", "critical"}


def login(context, live_server, client, user):
    client.force_login(user)
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME]
    context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])


def severe_violations(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    out = []
    for v in results.response["violations"]:
        if v.get("impact") in SEVERE:
            targets = [" ".join(map(str, n.get("target", []))) for n in v.get("nodes", [])][:5]
            out.append(f"{v['id']} ({v['impact']}): {v['help']} -> {targets}")
    return out


def _pages(directory) -> list[str]:
    d = directory
    return [
        "/", "/users/", "/users/?q=zzz-no-match", f"/users/{d.eng_user.pk}/", "/users/new/",
        f"/users/{d.eng_user.pk}/edit/", f"/users/{d.eng_user.pk}/roles/", f"/users/{d.eng_user.pk}/block/",
        "/orgs/", f"/orgs/{d.engineering.pk}/", f"/orgs/{d.engineering.pk}/settings/",
        f"/orgs/{d.engineering.pk}/deactivate/", "/roles/", "/roles/org-admin/", "/audit/", "/account/", "/account/password/", "/account/two-factor/",
        "/sso/providers/", "/sso/providers/add/", "/users/upload/",
    ]


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_main_pages_have_no_serious_axe_violations(page, live_server, client, directory, viewport):
    login(page.context, live_server, client, directory.admin)
    page.set_viewport_size(viewport)
    problems = {}
    for path in _pages(directory):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, path
        found = severe_violations(page)
        if viewport["width"] < 500:
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > viewport["width"]:
                found.append(f"page is {width}px wide at {viewport['width']}px: horizontal scrolling")
        if found:
            problems[path] = found
    assert problems == {}


def test_sign_in_and_form_errors_have_no_serious_axe_violations(page, live_server, client, directory):
    page.goto(f"{live_server.url}/sign-in/")
    assert severe_violations(page) == []
    login(page.context, live_server, client, directory.admin)
    page.goto(f"{live_server.url}/users/new/")
    page.get_by_label("Username").fill("bad name!")
    page.get_by_label("Email").fill("nope")
    page.get_by_role("button", name="Create user").click()
    page.wait_for_selector(".errors")
    assert severe_violations(page) == []
