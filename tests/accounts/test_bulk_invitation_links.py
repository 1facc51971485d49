"""Bulk-upload invitation links are credentials invitations, handed out only for users the admin may change.

Review finding: an Org Admin got a working set-password link (CSV, detail page, email) for an invited
user a Cloud Admin had meanwhile made Cross Org Admin; the links also ignored the invitation nonce
and ``IDM_INVITATION_TIMEOUT``.
"""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import User
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.bulk_upload.models import BulkUpload
from accounts.console_actions import user_set_roles
from accounts.credentials import service
from accounts.credentials.models import Invitation
from accounts.credentials.tokens import encode_uid
from accounts.identity.types import Actor, UserState
from accounts.models import AuditEvent
from tests.accounts.bulk_support import eager_celery, media, post_upload, response_text  # noqa: F401
from tests.accounts.console_support import directory  # noqa: F401
from tests.accounts.link_support import open_link, submit_link

pytestmark = pytest.mark.django_db


def _upload(client, org, text, capture):
    with capture(execute=True):
        response = post_upload(client, text, org=org)
    upload = BulkUpload.objects.latest("created_at")
    assert response.status_code == 302, response
    with capture(execute=True):
        client.post(reverse("bulk:confirm", args=[upload.pk]), {"mode": "all_valid"})
    upload.refresh_from_db()
    assert upload.status == BulkUpload.Status.DONE
    return upload


def _csv_rows(client, upload):
    response = client.get(reverse("bulk:invitations_csv", args=[upload.pk]))
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response_text(response))))


def _path(url: str) -> str:
    return url.split("testserver", 1)[1]


def test_org_admin_gets_no_link_for_a_user_made_more_privileged(
        client, directory, eager_celery, media, django_capture_on_commit_callbacks):  # noqa: F811
    client.force_login(directory.eng_admin)
    upload = _upload(client, directory.engineering, "username;email;password\nvictim;victim@example.com;\n"
                     "plain;plain@example.com;\n", django_capture_on_commit_callbacks)
    victim = User.objects.get(username="victim")
    assert victim.profile.state == UserState.INVITED
    user_set_roles(actor=Actor.for_user(directory.admin), user=victim, roles=["cross-org-admin"])

    # The user page refuses, and so do all the bulk doors now.
    client.post(reverse("accounts:user_invitation", args=[victim.pk]), {"how": "link"})
    assert not Invitation.objects.filter(user=victim).exists()
    rows = _csv_rows(client, upload)
    assert [r["username"] for r in rows] == ["plain"]
    detail = client.get(reverse("bulk:detail", args=[upload.pk])).content.decode()
    assert "Invited users (1)" in detail and "victim@example.com" not in detail
    client.post(reverse("bulk:invitations_send", args=[upload.pk]))
    assert [m.to for m in mail.outbox] == [["plain@example.com"]]
    assert not Invitation.objects.filter(user=victim).exists()

    # The plain user's link is a credentials invitation (row, audit) and works once.
    plain = User.objects.get(username="plain")
    invitation = Invitation.objects.get(user=plain)
    assert AuditEvent.objects.filter(action="user.invitation_sent", target_id=str(plain.pk)).exists()
    assert invitation.sent_by == directory.eng_admin.username


def test_links_share_the_invitation_nonce_and_old_default_token_links_fail(
        admin_client, admin_user, root_org, eager_celery, media, django_capture_on_commit_callbacks):  # noqa: F811
    upload = _upload(admin_client, root_org, "username;email;password\nbob;bob@example.com;\n",
                     django_capture_on_commit_callbacks)
    bob = User.objects.get(username="bob")
    old_style = reverse("bulk:invite", kwargs={"uidb64": encode_uid(bob),
                                               "token": default_token_generator.make_token(bob)})
    assert Client().get(old_style, follow=True).status_code == 400

    first = _csv_rows(admin_client, upload)[0]["link"]
    assert "/invitation/" in first and first == _csv_rows(admin_client, upload)[0]["link"]  # stable
    detail = admin_client.get(reverse("bulk:detail", args=[upload.pk])).content.decode()
    assert first in detail
    assert open_link(Client(), _path(first)).status_code == 200

    # A resend from the user page kills the bulk link (same Invitation nonce).
    service.invite(actor=Actor.for_user(admin_user), user=bob, base_url="http://testserver", email=False)
    assert Client().get(_path(first)).status_code == 400
    second = _csv_rows(admin_client, upload)[0]["link"]
    assert second != first
    anon = Client()
    submit_link(anon, _path(second), "Quartz-Lamp-52")
    bob.refresh_from_db()
    assert bob.check_password("Quartz-Lamp-52") and bob.profile.state == UserState.ACTIVE
    assert anon.get(_path(second)).status_code == 400


def test_links_expire_with_idm_invitation_timeout(
        admin_client, root_org, settings, eager_celery, media, django_capture_on_commit_callbacks):  # noqa: F811
    upload = _upload(admin_client, root_org, "username;email;password\nbob;bob@example.com;\n",
                     django_capture_on_commit_callbacks)
    link = _csv_rows(admin_client, upload)[0]["link"]
    assert open_link(Client(), _path(link)).status_code == 200
    settings.IDM_INVITATION_TIMEOUT = -1
    assert Client().get(_path(link)).status_code == 400
