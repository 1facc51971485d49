"""Roles pages and the audit log (filters, CSV export streamed and safe against formula injection)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone

from accounts import console_actions
from accounts.csv_export import json_cell, neutralise
from accounts.identity.types import Actor

pytestmark = pytest.mark.django_db


# ---- roles ----------------------------------------------------------------------------------


def test_role_list_shows_permissions_and_holders(client, directory):
    client.force_login(directory.admin)
    response = client.get(reverse("accounts:role_list"))
    assert response.status_code == 200
    roles = {r.slug: r for r in response.context["roles"]}
    assert roles["org-admin"].holder_count == 1
    assert roles["customer-cloud-admin"].holder_count == 1
    assert "assign roles to users" in roles["org-admin"].perm_labels
    html = response.content.decode()
    assert "View and export the audit log" in html  # human labels, not codenames
    assert "view_audit_log" not in html


def test_role_list_counts_are_scoped_for_org_admins(client, directory):
    client.force_login(directory.eng_admin)
    roles = {r.slug: r for r in client.get(reverse("accounts:role_list")).context["roles"]}
    assert roles["customer-cloud-admin"].holder_count == 0
    assert roles["console-user"].holder_count == 2  # eng.user, plat.user (eng.admin holds org-admin only)


def test_role_detail_lists_visible_holders(client, directory):
    client.force_login(directory.admin)
    response = client.get(reverse("accounts:role_detail", args=["console-user"]))
    names = {u.username for u in response.context["page"]}
    assert {"member", "eng.user", "plat.user", "sales.user"} <= names
    client.force_login(directory.eng_admin)
    response = client.get(reverse("accounts:role_detail", args=["console-user"]))
    assert {u.username for u in response.context["page"]} == {"eng.user", "plat.user"}
    assert client.get(reverse("accounts:role_detail", args=["no-such-role"])).status_code == 404


def test_roles_refused_without_directory_access(client, directory):
    for user in (directory.auditor, directory.member):
        client.force_login(user)
        assert client.get(reverse("accounts:role_list")).status_code == 403
        assert client.get(reverse("accounts:role_detail", args=["org-admin"])).status_code == 403


# ---- audit log ------------------------------------------------------------------------------


def test_auditor_reads_the_audit_log(client, directory):
    client.force_login(directory.auditor)
    response = client.get(reverse("accounts:audit_list"))
    assert response.status_code == 200
    actions = {e.action for e in response.context["page"]}
    assert "user.created" in actions and "org.created" in actions


@pytest.mark.parametrize("who", ["eng_admin", "member"])
def test_audit_log_refused_without_permission(client, directory, who):
    client.force_login(getattr(directory, who))
    assert client.get(reverse("accounts:audit_list")).status_code == 403
    assert client.get(reverse("accounts:audit_export")).status_code == 403


def test_audit_filters(client, directory):
    console_actions.user_block(actor=Actor.for_user(directory.admin), user=directory.eng_user)
    client.force_login(directory.auditor)
    url = reverse("accounts:audit_list")
    page = client.get(url, {"actor": "admin", "action": "user.blocked"}).context["page"]
    assert [(e.actor_label, e.target_label) for e in page] == [("admin", "eng.user")]
    page = client.get(url, {"target": "sales.user"}).context["page"]
    assert page and {e.target_label for e in page} == {"sales.user"}
    today = timezone.localdate()
    assert client.get(url, {"date_from": today.isoformat(), "date_to": today.isoformat()}).context["page"]
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert not client.get(url, {"date_from": tomorrow}).context["page"]


def test_audit_filter_bad_date_range(client, directory):
    client.force_login(directory.auditor)
    today = timezone.localdate()
    response = client.get(reverse("accounts:audit_list"), {
        "date_from": today.isoformat(), "date_to": (today - timedelta(days=3)).isoformat()})
    assert response.status_code == 200
    assert "date_range" in {e.code for e in response.context["form"].errors.as_data()["date_to"]}


def _csv_rows(response) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def test_csv_export_is_streamed_and_filtered(client, directory):
    client.force_login(directory.auditor)
    response = client.get(reverse("accounts:audit_export"), {"action": "org.created"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = _csv_rows(response)
    assert rows[0][:4] == ["time", "actor", "actor_type", "action"]
    assert {r[3] for r in rows[1:]} == {"org.created"}
    assert {r[6] for r in rows[1:]} == {"Acme", "Engineering", "Platform", "Sales"}


def test_csv_export_neutralises_formulas(client, directory):
    actor = Actor.for_user(directory.admin)
    console_actions.user_update(actor=actor, user=directory.eng_user, first_name="=HYPERLINK(\"http://x\")",
                         last_name="+1+2", notes="@SUM(A1)")
    console_actions.user_update(actor=actor, user=directory.sales_user, username="-minus")
    client.force_login(directory.admin)
    rows = _csv_rows(client.get(reverse("accounts:audit_export"), {"action": "user.updated"}))
    cells = [c for row in rows[1:] for c in row]
    assert "'=HYPERLINK(\"http://x\")" in cells
    assert "'+1+2" in cells and "'@SUM(A1)" in cells and "'-minus" in cells
    assert not any(c[:1] in "=+-@" for c in cells if c)


@pytest.mark.parametrize("value,expected", [
    ("=1+1", "'=1+1"), ("+x", "'+x"), ("-x", "'-x"), ("@x", "'@x"), ("\tx", "'\tx"), ("plain", "plain"),
    (None, ""), ({"a": 1}, '{"a": 1}'), (["=x"], '["=x"]'), (True, "true"),
])
def test_audit_cells_are_json_then_neutralised(value, expected):
    assert neutralise(json_cell(value)) == expected
