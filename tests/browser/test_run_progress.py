"""Browser: a running directory sync's page follows the run's progress through static/idm/run_progress.js
(CSP-safe, no inline script) and reloads when the run ends. The run row is moved forward by the test,
as a worker's batches would."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from provisioning.models import ProvisioningRun, Source

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_run_page_polls_the_progress_and_reloads_when_the_run_ends(page, live_server, client, admin_user):
    client.force_login(admin_user)
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME]
    page.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])
    source = Source.objects.create(name="Corp LDAP", slug="corp-ldap", kind=Source.Kind.LDAP)
    run = ProvisioningRun.objects.create(kind=ProvisioningRun.Kind.SYNC, source=source, progress_total=1000,
                                         progress_phase="groups")
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(f"{live_server.url}/provisioning/runs/{run.run_id}/")
    assert page.locator("[data-progress-phase]").inner_text() == "Reading groups"

    ProvisioningRun.objects.filter(pk=run.pk).update(progress_phase="users", progress_read=400, progress_done=250)
    page.wait_for_selector("[data-progress-text]:has-text('400 of about')")
    assert page.locator("#run-progress progress").evaluate("bar => [bar.value, bar.max]") == [400, 1000]
    assert page.locator("[data-progress-phase]").inner_text() == "Reading users"
    assert page.locator("[data-progress-text]").inner_text() == "400 of about 1,000 entries read · 250 written"

    ProvisioningRun.objects.filter(pk=run.pk).update(
        status=ProvisioningRun.Status.SUCCEEDED, progress_read=1000, progress_done=1000, finished_at=timezone.now(),
        counts={"created": 1000})
    page.wait_for_selector("#run-status:has-text('Succeeded')")
    page.wait_for_selector("[data-progress-refresh]", state="detached")  # reloaded: a finished run
    assert page.locator("[data-progress-text]").inner_text() == "1,000 of about 1,000 entries read · 1,000 written"
    assert errors == []  # no CSP violation, no script error
