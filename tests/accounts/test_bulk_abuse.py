"""Hostile upload files through the console: each gets a clear message (with its line number where
there is one), never a 500, and writes no user."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from accounts.bulk_upload.models import BulkUpload
from accounts.models import AuditEvent
from tests.accounts.bulk_support import media  # noqa: F401

pytestmark = pytest.mark.django_db

LONG_EMAIL = "a" * 64 + "@" + ".".join(["b" * 60] * 4) + ".com"  # 313 characters, syntactically valid


@pytest.fixture
def admin(admin_user, media, settings):  # noqa: F811
    from idm.celery import app

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    old = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield client
    app.conf.task_always_eager = old


def post(client, data: bytes, *, name: str = "users.csv", operation: str = "upsert", **extra):
    return client.post(reverse("bulk:start"), {"file": SimpleUploadedFile(name, data, content_type="text/csv"),
                                               "operation": operation, **extra})


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("users.csv", "username\nalice\n")
    return out.getvalue()


def preview_of(client, response) -> tuple[BulkUpload, str]:
    assert response.status_code == 302, response.status_code
    upload = BulkUpload.objects.latest("created_at")
    page = client.get(reverse("bulk:detail", args=[upload.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Traceback" not in html
    return upload, html


# (file bytes, expected code, expected line (None: the file as a whole), a phrase of the message)
FATAL_FILES = {
    "bom_only": (b"\xef\xbb\xbf\r\n", "empty_file", 0, "empty"),
    "zip": (_zip(), "binary_file", 0, "ZIP archive"),
    "utf16_no_bom": ("username,email\r\nzoe,z@example.com\r\n".encode("utf-16-le"), "not_utf8", 1, "UTF-16"),
    "png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, "binary_file", 0, "not a text file"),
    "utf16": ("username,email\r\nzoë,z@example.com\r\n".encode("utf-16"), "not_utf8", 1, "UTF-16"),
    "latin1_line_3": ("username,first_name\nalice,Alice\nzoe,Zoë\n".encode("latin-1"), "not_utf8", 3, "line 3"),
    "nul_after_first_block": (b"username,notes\n" + b"a,b\n" * 3000 + b"x\x00y,z\n", "binary_file", 3002,
                              "NUL"),
    "huge_line": (b"username,notes\nalice,\"" + b"x" * 300_000 + b"\"\n", "bad_quoting", 2, "too long"),
    "unclosed_quote": (b"username,notes\nalice,\"oops\nbob,fine\n", "bad_quoting", 2, "never closed"),
    "ten_thousand_unknown_columns": (",".join(f"c{i}" for i in range(10_000)).encode() + b"\n1\n",
                                     "missing_header", 1, "header"),
    "ten_thousand_columns": (b"username," + ",".join(f"c{i}" for i in range(10_000)).encode() + b"\nalice\n",
                             "unknown_column", 1, "c0"),
    "header_only": (b"username,email\n", "no_rows", 2, "no users"),
    "no_header": (b"alice,alice@example.com\n", "missing_header", 1, "header"),
}


@pytest.mark.parametrize("case", list(FATAL_FILES))
def test_hostile_file_is_refused_with_a_clear_message(admin, case):
    data, code, line, phrase = FATAL_FILES[case]
    users, events = User.objects.count(), AuditEvent.objects.count()
    upload, html = preview_of(admin, post(admin, data))
    assert upload.status == BulkUpload.Status.INVALID
    error = upload.preview["errors"][0]
    assert (error["code"], error["line"]) == (code, line), error
    assert phrase.lower() in error["message"].lower()
    assert error["message"][:40] in html.replace("&quot;", '"').replace("&#x27;", "'")
    assert len(html) < 200_000  # the page does not echo a huge header or line back
    assert (User.objects.count(), AuditEvent.objects.count()) == (users, events)


def test_empty_file_is_a_form_error(admin):
    response = post(admin, b"")
    assert response.status_code == 200 and "empty" in str(response.context["form"].errors["file"])
    assert not BulkUpload.objects.exists()


def test_cr_only_line_endings_are_read(admin, root_org):
    upload, html = preview_of(admin, post(admin, b"username,email\ralice,alice@example.com\rbob,bob@example.com\r",
                                          org=root_org.pk))
    assert upload.status == BulkUpload.Status.PREVIEW, upload.preview
    assert upload.preview["counts"]["create"] == 2


@pytest.mark.parametrize("row, line, column, code", [
    ("x" * 10_000 + ",a@example.com", 2, "username", "username_too_long"),
    ("alice," + "x" * 10_000, 2, "email", "email_too_long"),
    ("alice," + LONG_EMAIL, 2, "email", "email_too_long"),  # valid syntax, longer than the 254 stored
    ("=cmd|' /C calc'!A0,a@example.com", 2, "username", "username_invalid"),
])
def test_hostile_cells_are_row_errors_with_line_and_column(admin, root_org, row, line, column, code):
    upload, html = preview_of(admin, post(admin, f"username,email\nok.user,ok@example.com\n{row}\n".encode(),
                                          org=root_org.pk))
    assert upload.status == BulkUpload.Status.PREVIEW
    errors = [e for e in upload.preview["errors"] if e["line"] == 3]
    assert errors and errors[0]["column"] == column, upload.preview["errors"]
    assert code is None or errors[0]["code"] == code
    assert '<td class="line">3</td>' in html
    assert len(html) < 200_000


def test_long_fields_never_reach_the_database(admin, root_org, django_capture_on_commit_callbacks):
    """Apply "all valid rows": the row with a too-long email is an error, the good row is created."""
    upload, _ = preview_of(admin, post(admin, f"username,email,first_name,notes\nok.user,ok@example.com,Ok,{'n' * 5000}\n"
                                              f"long.mail,{LONG_EMAIL},Long,\n"
                                              f"long.name,x@example.com,{'f' * 151},\n".encode(), org=root_org.pk))
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(reverse("bulk:confirm", args=[upload.pk]), {"mode": "all_valid"})
    assert response.status_code == 302
    upload.refresh_from_db()
    assert upload.status == BulkUpload.Status.DONE, upload.message
    assert (upload.created_count, upload.error_count) == (1, 2)
    assert set(User.objects.filter(username__in=["ok.user", "long.mail", "long.name"])
               .values_list("username", flat=True)) == {"ok.user"}


def test_formula_cells_are_stored_literally_and_neutralised_on_export(admin, root_org,
                                                                      django_capture_on_commit_callbacks):
    upload, _ = preview_of(admin, post(admin, b"username,first_name,notes\nf.user,=SUM(A1:A9),@evil\n",
                                       org=root_org.pk))
    with django_capture_on_commit_callbacks(execute=True):
        admin.post(reverse("bulk:confirm", args=[upload.pk]), {"mode": "no_errors"})
    user = User.objects.get(username="f.user")
    assert user.first_name == "=SUM(A1:A9)" and user.profile.notes == "@evil"
    export = b"".join(admin.get(reverse("bulk:export"), {"q": "f.user"}).streaming_content).decode()
    assert "'=SUM(A1:A9)" in export and "'@evil" in export


@pytest.mark.parametrize("extra", [
    {"operation": "evil"}, {"org": "999999"}, {"org": "²"}, {"org": "a\x00b"}, {"operation": ""},
])
def test_bad_dialog_values_are_form_errors(admin, extra):
    response = post(admin, b"username\nalice\n", **{"operation": "upsert", **extra})
    assert response.status_code == 200 and response.context["form"].errors
    assert not BulkUpload.objects.exists()


@pytest.mark.parametrize("name", ["x" * 1000 + ".csv", "../../etc/passwd", "naïve\u202etxt.csv", ".csv", "a\x00b.csv"])
def test_odd_file_names_are_kept_harmless(admin, name):
    response = post(admin, b"username\nalice\n", name=name)
    assert response.status_code in (200, 302)
    if response.status_code == 302:
        upload, _ = preview_of(admin, response)
        assert "/" not in upload.file_name and "\x00" not in upload.file_name and len(upload.file_name) <= 255
        report = admin.get(reverse("bulk:report", args=[upload.pk]))
        assert report.status_code == 200


def test_garbage_content_length_header_is_not_a_500(admin):
    response = admin.post(reverse("bulk:start"), {"operation": "upsert"}, CONTENT_LENGTH="abc")
    assert response.status_code in (200, 302, 400)


def test_file_over_the_limit_is_refused_with_its_size(admin, settings):
    settings.IDM_UPLOAD_MAX_BYTES = 1024 * 1024
    response = post(admin, b"username,notes\n" + b"alice,xxxxxxxx\n" * 80_000)
    assert response.status_code == 302 and not BulkUpload.objects.exists()
    page = admin.get(response["Location"]).content.decode()
    assert "larger than 1 MB" in page


def test_file_just_over_the_limit_gets_a_file_error(admin, settings, root_org):
    """Under the request allowance but over the file limit: refused by the parser, with the sizes."""
    settings.IDM_UPLOAD_MAX_BYTES = 1024 * 1024
    upload, _ = preview_of(admin, post(admin, b"username,notes\n" + b"alice,x\n" * (1024 * 1024 // 8 + 10),
                                       org=root_org.pk))
    assert upload.preview["errors"][0]["code"] == "file_too_large"
