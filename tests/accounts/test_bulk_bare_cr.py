"""A bare CR inside a quoted cell (issue 7 §5): the preview report and the apply treat it as data —
no 500, no "failed unexpectedly" — and line numbers stay consistent between preview and report."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from accounts.bulk_upload.models import BulkUpload
from tests.accounts.bulk_support import eager_celery, media, post_upload, response_text  # noqa: F401

pytestmark = pytest.mark.django_db


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_bare_cr_in_quoted_cell_is_data(admin_client, root_org, media, eager_celery,  # noqa: F811
                                        django_capture_on_commit_callbacks):
    text = ('username,email,notes\r\n'
            'bob,bob@example.com,"first\rsecond"\r\n'
            'carl,carl@example.com,"\rstarts with CR"\r\n'
            'dora,dora@example.com,plain\r\n')
    with django_capture_on_commit_callbacks(execute=True):
        post_upload(admin_client, text, org=root_org)
    upload = BulkUpload.objects.get()
    assert upload.status == BulkUpload.Status.PREVIEW
    assert upload.preview["counts"] == {"create": 3, "update": 0, "unchanged": 0, "error": 0}
    # A CR ends a physical line for the parser (as in editors): records start on lines 2, 4 and 6.
    assert upload.preview["status"] == {"2": "create", "4": "create", "6": "create"}

    response = admin_client.get(reverse("bulk:report", args=[upload.pk]))
    assert response.status_code == 200
    preview = rows_of(response_text(response))
    assert preview == [["line", "username", "email", "notes", "result"],
                       ["2", "bob", "bob@example.com", "first\rsecond", "will create"],
                       ["4", "carl", "carl@example.com", "'\rstarts with CR", "will create"],
                       ["6", "dora", "dora@example.com", "plain", "will create"]]

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("bulk:confirm", args=[upload.pk]), {"mode": "no_errors"})
    upload.refresh_from_db()
    assert upload.status == BulkUpload.Status.DONE, upload.message
    assert upload.created_count == 3
    assert User.objects.get(username="bob").profile.notes == "first\rsecond"
    assert User.objects.get(username="carl").profile.notes == "\rstarts with CR"
    result = rows_of(response_text(admin_client.get(reverse("bulk:report", args=[upload.pk]))))
    assert [r[0] for r in result[1:]] == ["2", "4", "6"] and {r[4] for r in result[1:]} == {"created"}
    assert result[1][3] == "first\rsecond"


@pytest.mark.usefixtures("eager_celery", "media")
def test_bare_cr_outside_quotes_is_a_line_break_with_line_numbers(admin_client, root_org):
    post_upload(admin_client, "username,email,notes\r\nbob,bob@example.com,a\rb\r\ndora,dora@example.com,x\r\n",
                org=root_org)
    upload = BulkUpload.objects.get()
    assert upload.status == BulkUpload.Status.PREVIEW
    # "a\r" ends bob's record (3 fields, notes "a"); "b" is its own line 3 with one field.
    errors = [(e["line"], e["code"]) for e in upload.preview["errors"]]
    assert errors == [(3, "too_few_fields")]
    assert upload.preview["status"] == {"2": "create", "3": "error", "4": "create"}
    response = admin_client.get(reverse("bulk:report", args=[upload.pk]))
    assert response.status_code == 200
    report = rows_of(response_text(response))
    assert [r[0] for r in report[1:]] == ["2", "3", "4"]
    assert report[1][3] == "a" and report[1][-1] == "will create"
    assert report[2][-1].startswith("error: This line has 1 fields; the header has 3.")
