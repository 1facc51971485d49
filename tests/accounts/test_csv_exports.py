"""Every CSV idm emits goes through one writer with one formula rule (issue 7 §5 "Exports"):
users export, audit export, upload preview and result reports, invitations.csv — tested through
their views with values that would run as formulas or shift columns."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from accounts import console_actions as services
from accounts.bulk_upload.models import BulkUpload
from accounts.csv_export import FORMULA_PREFIXES, csv_line, csv_text, neutralise, restore
from accounts.identity.types import Actor
from tests.accounts.bulk_support import eager_celery, media, post_upload, response_text  # noqa: F401

pytestmark = pytest.mark.django_db

# Values an attacker controls (names, notes, emails) that a spreadsheet would run or mis-split.
NASTY_NOTES = ["=1+2", "+SUM(A1)", "-2+3", "@SUM(A1)", "\tTAB=1", "\rCR=1", 'quote " and, comma', "line\nbreak"]


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def assert_no_formula_cells(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_PREFIXES), f"formula-looking cell {cell!r} in {row!r}"


@pytest.mark.parametrize(("value", "expected"), [
    ("=1+2", "'=1+2"), ("+x", "'+x"), ("-x", "'-x"), ("@x", "'@x"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("plain", "plain"), ("a=b", "a=b"), ("", ""), (None, ""), (5, "5"), ("'=x", "'=x"),
])
def test_neutralise(value, expected):
    assert neutralise(value) == expected


@pytest.mark.parametrize("value", ["=1+2", "+x", "-x", "@x", "\tx", "\rx", "=", "plain", "'", "'a", "''=x", ""])
def test_restore_undoes_neutralise(value):
    assert restore(neutralise(value)) == value


def test_restore_keeps_other_quotes():
    assert restore("'a") == "'a" and restore("'") == "'" and restore("x'=") == "x'="
    assert restore("'=") == "=" and restore("'\t") == "\t"


def test_writer_quotes_and_ends_lines_with_crlf():
    assert csv_line(["a,b", 'say "hi"', "x\ry", "=1"]) == '"a,b","say ""hi""","x\ry",\'=1\r\n'
    assert csv_text(["h"], [["1"], ["2"]]) == "h\r\n1\r\n2\r\n"


@pytest.fixture
def nasty_users(user_factory, root_org, system_actor):
    users = []
    for i, notes in enumerate(NASTY_NOTES):
        users.append(user_factory(f"nasty{i}", notes=notes, first_name="=HYPERLINK(\"http://x\")",
                                  email=f"=1+2{i}@example.com" if i % 2 else f'"a,b{i}"@example.com'))
    return users


def test_users_export(admin_client, nasty_users):
    response = admin_client.get(reverse("bulk:export"), {"q": "nasty"})
    assert response.status_code == 200
    rows = rows_of(response_text(response))
    assert rows[0] == ["username", "email", "first_name", "last_name", "org", "roles", "notes", "state"]
    assert all(len(r) == 8 for r in rows)  # nothing shifted the columns
    assert_no_formula_cells(rows)
    by_name = {r[0]: r for r in rows[1:]}
    assert [by_name[f"nasty{i}"][6] for i in range(len(NASTY_NOTES))] == [neutralise(n) for n in NASTY_NOTES]
    assert by_name["nasty1"][1] == "'=1+21@example.com" and by_name["nasty0"][1] == '"a,b0"@example.com'


def test_audit_export(admin_client, nasty_users, admin_user):
    actor = Actor.for_user(admin_user)
    for user, notes in zip(nasty_users, reversed(NASTY_NOTES), strict=True):
        services.user_update(actor=actor, user=user, notes=notes)
    response = admin_client.get(reverse("accounts:audit_export"), {"action": "user.updated"})
    rows = rows_of(response_text(response))
    assert all(len(r) == len(rows[0]) for r in rows)
    assert_no_formula_cells(rows)
    new_values = {r[9] for r in rows[1:] if r[7] == "notes"}
    assert {neutralise(n) for n in NASTY_NOTES} <= new_values


def test_upload_reports_and_invitations(admin_client, root_org, media, eager_celery,  # noqa: F811
                                        django_capture_on_commit_callbacks):
    lines = ["username,email,notes"]
    for i, notes in enumerate(NASTY_NOTES):
        email = f"=1+2{i}@example.com" if i % 2 else f'"""a,b{i}""@example.com"'
        quoted = '"' + notes.replace('"', '""') + '"'
        lines.append(f"-inv{i},{email},{quoted}")
    with django_capture_on_commit_callbacks(execute=True):
        post_upload(admin_client, "\r\n".join(lines) + "\r\n", org=root_org)
    upload = BulkUpload.objects.get()
    assert upload.preview["counts"] == {"create": 8, "update": 0, "unchanged": 0, "error": 0}, upload.preview

    preview = rows_of(response_text(admin_client.get(reverse("bulk:report", args=[upload.pk]))))
    assert preview[0] == ["line", "username", "email", "notes", "result"]
    assert all(len(r) == 5 for r in preview) and len(preview) == 9
    assert_no_formula_cells(preview)
    assert [r[3] for r in preview[1:]] == [neutralise(n) for n in NASTY_NOTES]
    assert {r[4] for r in preview[1:]} == {"will create"}

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("bulk:confirm", args=[upload.pk]), {"mode": "no_errors"})
    upload.refresh_from_db()
    assert upload.status == BulkUpload.Status.DONE, upload.message
    result = rows_of(response_text(admin_client.get(reverse("bulk:report", args=[upload.pk]))))
    assert all(len(r) == 5 for r in result) and len(result) == 9
    assert_no_formula_cells(result)
    assert [r[1] for r in result[1:]] == [f"'-inv{i}" for i in range(8)]
    assert {r[4] for r in result[1:]} == {"created"}

    response = admin_client.get(reverse("bulk:invitations_csv", args=[upload.pk]))
    invitations = rows_of(response_text(response))
    assert invitations[0] == ["username", "email", "link"]
    assert all(len(r) == 3 for r in invitations) and len(invitations) == 9
    assert_no_formula_cells(invitations)
    by_name = {r[0]: r for r in invitations[1:]}
    assert by_name["'-inv1"][1] == "'=1+21@example.com"  # was written raw before
    assert by_name["'-inv0"][1] == '"a,b0"@example.com'  # was split into two columns before
    # Bulk invitations are the credentials invitations (one link per invited user, privilege-checked).
    accept = reverse("accounts:invitation_accept", kwargs={"uidb64": "UID", "token": "TOKEN"}).split("UID/")[0]
    assert all(r[2].startswith(f"http://testserver{accept}") for r in invitations[1:])
