"""The directory console against a real slapd: a sync's live progress (the JSON the run page polls,
read while the run works), the run page without JavaScript, and the chart of the last syncs."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse

from provisioning.inbound import apply_source_batch
from provisioning.ldap import sync as sync_mod
from provisioning.ldap.sync import sync_directory
from provisioning.models import ProvisioningRun
from tests.provisioning.ldap.conftest import people_ldif
from tests.provisioning.ldap.test_sync import make_directory

pytestmark = pytest.mark.django_db(transaction=True)


def test_progress_is_recorded_per_batch_and_polled_while_the_run_works(admin_client, slapd_server, ou, root_org,
                                                                       monkeypatch, user_factory):
    names = [f"p{i:02d}" for i in range(30)]
    slapd_server.ldapadd(people_ldif(ou, *names))
    directory = make_directory(slapd_server, ou, root_org, page_size=10)
    monkeypatch.setattr(sync_mod, "BATCH", 10)
    sync_directory(directory)
    seen: list[dict] = []
    pages: list[str] = []

    def apply_and_poll(**kwargs):
        run = kwargs["run"]
        url = reverse("provisioning:run_progress", args=[run.run_id])
        seen.append(admin_client.get(url).json())
        if len(seen) == 2:
            pages.append(admin_client.get(reverse("provisioning:run_detail", args=[run.run_id])).content.decode())
        return apply_source_batch(**kwargs)

    monkeypatch.setattr(sync_mod, "apply_source_batch", apply_and_poll)
    run = sync_directory(directory, full=True)
    assert run.status == ProvisioningRun.Status.SUCCEEDED, run.error
    assert [(d["status"], d["phase"], d["read"], d["total"], d["finished"]) for d in seen] == [
        ("running", "users", 0, 30, False), ("running", "users", 10, 30, False), ("running", "users", 20, 30, False)]
    assert [(d["done"], d["percent"]) for d in seen] == [(0, 0), (10, 33), (20, 66)]
    assert [d["written"] for d in seen] == [0, 10, 20]
    assert seen[2]["text"] == "20 of about 30 entries read · 20 written"
    assert seen[1]["phase_label"] == "Reading users"

    page = pages[0]
    assert f'data-progress-url="{reverse("provisioning:run_progress", args=[run.run_id])}"' in page
    assert re.search(r'<script src="/static/idm/run_progress\.js[^"]*" defer></script>', page)
    assert "data-progress-refresh" in page and "Reading users" in page  # works without JavaScript
    assert '<progress max="30" value="10">33 %</progress>' in page
    assert "<script>" not in page and "onclick" not in page
    assert finders.find("idm/run_progress.js")

    done = admin_client.get(reverse("provisioning:run_progress", args=[run.run_id])).json()
    assert (done["status"], done["finished"], done["percent"], done["read"], done["written"]) == (
        "succeeded", True, 100, 30, 30)
    finished_page = admin_client.get(reverse("provisioning:run_detail", args=[run.run_id])).content.decode()
    assert "run_progress.js" not in finished_page and "data-progress-url" not in finished_page

    helpdesk = Client()
    helpdesk.force_login(user_factory("help.desk", roles=["help-desk"]))
    assert helpdesk.get(reverse("provisioning:run_progress", args=[run.run_id])).status_code == 403
    anonymous = Client().get(reverse("provisioning:run_progress", args=[run.run_id]))
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/sign-in/")
    assert admin_client.get("/provisioning/runs/nope/progress.json").status_code == 404  # not an id
    assert admin_client.get(reverse("provisioning:run_progress", args=["0" * 32])).status_code == 404


def test_the_directory_page_charts_the_last_syncs_with_a_table(admin_client, slapd_server, ou, root_org):
    slapd_server.ldapadd(people_ldif(ou, "cho", "dia"))
    directory = make_directory(slapd_server, ou, root_org)
    page = admin_client.get(reverse("provisioning:source_detail", args=[directory.source_id])).content.decode()
    assert "<svg" not in page  # no runs yet: no chart
    first = sync_directory(directory)
    slapd_server.ldapadd(people_ldif(ou, "eve"))
    second = sync_directory(directory)
    sync_directory(directory, dry_run=True)  # dry runs are not charted
    page = admin_client.get(reverse("provisioning:source_detail", args=[directory.source_id])).content.decode()
    assert "Last 2 syncs" in page
    assert page.count('<svg viewBox="0 0 600 160" role="img"') == 2
    assert 'aria-label="Duration in seconds of each of the last syncs, oldest first"' in page
    assert re.search(r"<title>\d{4}-\d\d-\d\d \d\d:\d\d created: 2</title>", page)
    assert re.search(r"<title>\d{4}-\d\d-\d\d \d\d:\d\d created: 1</title>", page)
    table = page[page.index("data-sync-history"):page.index("</table>", page.index("data-sync-history"))]
    rows = re.findall(r"<tr><td><a href=\"/provisioning/runs/(\w+)/\">", table)
    assert rows == [first.run_id, second.run_id]  # oldest first
    assert "<td>Full</td><td>Succeeded</td>" in table and "<td>Incremental</td><td>Succeeded</td>" in table
