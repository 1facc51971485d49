"""Console pages of the bulk upload: permissions, preview, confirm (eager Celery), status, report,
export, template, invitation links."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.bulk_upload.models import BulkUpload
from accounts.identity.types import UserState
from tests.accounts.bulk_support import media  # noqa: F401
from tests.accounts.link_support import open_link, submit_link

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def eager(settings):
    from idm.celery import app

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    old = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = old


def post_file(client, text: str, *, org=None, operation="upsert", name="users.csv"):
    data = {"file": SimpleUploadedFile(name, text.encode(), content_type="text/csv"), "operation": operation}
    if org is not None:
        data["org"] = org.pk
    return client.post(reverse("bulk:start"), data)


def test_upload_requires_manage_users(client, user_factory):
    client.force_login(user_factory("plain"))
    assert client.get(reverse("bulk:start")).status_code == 403
    assert client.get(reverse("bulk:export")).status_code == 403


def test_upload_preview_confirm_progress_report(admin_client, root_org, media, django_capture_on_commit_callbacks):  # noqa: F811
    page = admin_client.get(reverse("bulk:start"))
    assert page.status_code == 200 and b"File format" in page.content
    with django_capture_on_commit_callbacks(execute=True):  # the hashing tasks (eager)
        response = post_file(admin_client, "username;email;password\nalice;alice@example.com;Xylo-Phone-91\n"
                                           "bob;bob@example.com;\nbad user;x@example.com;\n", org=root_org)
    upload = BulkUpload.objects.get()
    assert response.status_code == 302 and response.url == reverse("bulk:detail", args=[upload.pk])
    detail = admin_client.get(response.url).content.decode()
    assert "semicolon" in detail and 'data-count="error">1<' in detail
    assert "Usernames may contain only" in detail and '<td class="line">4</td>' in detail
    assert not User.objects.filter(username="alice").exists()

    # "Only if no errors" is refused up front when the preview has errors.
    admin_client.post(reverse("bulk:confirm", args=[upload.pk]), {"mode": "no_errors"})
    upload.refresh_from_db()
    assert upload.status == BulkUpload.Status.PREVIEW

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("bulk:confirm", args=[upload.pk]), {"mode": "all_valid"})
    upload.refresh_from_db()
    assert upload.status == BulkUpload.Status.DONE
    status = admin_client.get(reverse("bulk:status", args=[upload.pk])).json()
    assert status["percent"] == 100 and status["finished"] and status["counts"]["created"] == 2
    report = admin_client.get(reverse("bulk:report", args=[upload.pk]))
    rows = list(csv.DictReader(io.StringIO(b"".join(report.streaming_content).decode())))
    assert [r["result"] for r in rows] == ["created", "created", rows[2]["result"]]
    assert rows[2]["result"].startswith("error: Usernames may contain only")
    assert "password" not in rows[0]
    assert User.objects.get(username="alice").check_password("Xylo-Phone-91")

    # bob was invited: the page lists his link, and the link sets his password.
    detail = admin_client.get(reverse("bulk:detail", args=[upload.pk])).content.decode()
    assert "Invited users (1)" in detail
    link = admin_client.get(reverse("bulk:invitations_csv", args=[upload.pk]))
    url = b"".join(link.streaming_content).decode().splitlines()[1].split(",")[2]
    admin_client.post(reverse("bulk:invitations_send", args=[upload.pk]))
    # Sending is a fresh invitation (like the user page): the copied link stops working.
    assert len(mail.outbox) == 1 and url not in mail.outbox[0].body
    from django.test import Client

    assert Client().get(url.split("testserver", 1)[1]).status_code == 400
    url = next(w for w in mail.outbox[0].body.split() if w.startswith("http://testserver/"))
    path = url.split("testserver", 1)[1]
    anon = Client()
    assert open_link(anon, path).status_code == 200
    submit_link(anon, path, "Quartz-Lamp-52")
    bob = User.objects.get(username="bob")
    assert bob.check_password("Quartz-Lamp-52") and bob.profile.state == UserState.ACTIVE
    assert anon.get(path).status_code == 400  # used


def test_file_error_page(admin_client, root_org, media):  # noqa: F811
    response = post_file(admin_client, "alice,alice@example.com\n", org=root_org)
    detail = admin_client.get(response.url).content.decode()
    assert "The file was refused" in detail and "does not name any column" in detail


def test_oversized_request_refused_before_reading(admin_client, settings, media):  # noqa: F811
    settings.IDM_UPLOAD_MAX_BYTES = 10
    response = post_file(admin_client, "username\n" + "x\n" * 40000)
    assert response.status_code == 302 and not BulkUpload.objects.exists()


def test_template_and_export(admin_client, admin_user, user_factory):
    assert admin_client.get(reverse("bulk:template", args=["move"])).content == b"username,org\r\n"
    user_factory("evil", email="evil@example.com", first_name="=HYPERLINK(1)")
    response = admin_client.get(reverse("bulk:export"))
    text = b"".join(response.streaming_content).decode()
    assert text.startswith("username,email,first_name,last_name,org,roles,notes,state\r\n")
    assert "\r\nevil,evil@example.com,'=HYPERLINK(1)," in text


def test_other_admins_upload_is_hidden_from_org_admin(admin_client, user_factory, org_factory, root_org, media):  # noqa: F811
    response = post_file(admin_client, "username\nzed\n", org=root_org)
    east = org_factory("East")
    org_admin = user_factory("oa", org=east, roles=["org-admin"])
    from django.test import Client

    other = Client()
    other.force_login(org_admin)
    assert other.get(response.url).status_code == 404
