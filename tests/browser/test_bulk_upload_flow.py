"""Browser: upload a file with errors, read the line numbers, fix it, upload again, confirm, watch the
progress bar reach 100 %, download the report. Celery runs eagerly in the live server thread."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BAD = b"username,email,first_name\nann,ann@example.com,Ann\nben,not-an-email,Ben\nANN,ann2@example.com,Ann\n"
GOOD = b"username,email,first_name\nann,ann@example.com,Ann\nben,ben@example.com,Ben\n"


@pytest.fixture
def eager_celery(settings, tmp_path):
    from idm.celery import app

    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}}}
    old = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = old


def login(page, live_server, client, user):
    client.force_login(user)
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME]
    page.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])


def upload(page, live_server, data: bytes, org_label: str):
    page.goto(f"{live_server.url}/users/upload/")
    page.set_input_files("input[name=file]", files=[{"name": "users.csv", "mimeType": "text/csv", "buffer": data}])
    page.select_option("select[name=org]", label=org_label)
    page.click("button:has-text('Upload and preview')")
    page.wait_for_selector("h1:has-text('users.csv')")


def test_upload_fix_confirm_progress_report(page, live_server, client, admin_user, root_org, eager_celery, tmp_path):
    login(page, live_server, client, admin_user)

    upload(page, live_server, BAD, root_org.name)
    table = page.locator("#error-table")
    assert table.locator("td.line").all_inner_texts() == ["3", "4"]
    assert "not a valid email address" in table.inner_text()
    assert "already appears on line 2" in table.inner_text()
    assert page.locator("[data-count=error]").inner_text() == "2"

    upload(page, live_server, GOOD, root_org.name)
    assert page.locator("#error-table").count() == 0
    assert page.locator("[data-count=create]").inner_text() == "2"
    page.click("button:has-text('Confirm and apply')")

    page.wait_for_function("document.getElementById('progress-bar') && "
                           "document.getElementById('progress-bar').value === 100")
    assert page.locator("#progress-percent").inner_text() == "100 %"
    assert page.locator("[data-count=created]").inner_text() == "2"
    with page.expect_download() as info:
        page.click("#report-link")
    report = (tmp_path / "report.csv")
    info.value.save_as(report)
    lines = report.read_text().splitlines()
    assert lines[0] == "line,username,email,first_name,result"
    assert lines[1:] == ["2,ann,ann@example.com,Ann,created", "3,ben,ben@example.com,Ben,created"]
    assert set(User.objects.filter(username__in=["ann", "ben"]).values_list("username", flat=True)) == {"ann", "ben"}
