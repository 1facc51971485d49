"""Applying uploads through the identity service: results, audit, passwords, idempotence, round trip,
and one upload applied by a real Celery worker over Redis."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from accounts.bulk_upload.apply import apply_upload
from accounts.bulk_upload.export import export_lines
from accounts.bulk_upload.models import BulkUpload, BulkUploadSecret
from accounts.csv_export import neutralise
from accounts.identity.types import Actor, Source, UserState
from accounts.models import AuditEvent
from tests.accounts.bulk_support import media, upload_text  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def confirm_and_apply(upload, mode=BulkUpload.ApplyMode.ALL_VALID):
    upload.apply_mode = mode
    upload.status = BulkUpload.Status.QUEUED
    upload.save(update_fields=["apply_mode", "status"])
    return apply_upload(upload)


def report_rows(upload) -> list[dict]:
    with upload.report.open("rb") as fh:
        return list(csv.DictReader(io.StringIO(fh.read().decode("utf-8"))))


FILE = (
    "username,email,first_name,last_name,password,org,roles,notes\n"
    "alice,alice@example.com,Alice,A,Xylo-Phone-91,,Help Desk;Console User,\"=cmd|' /C calc'!A0\"\n"
    "bob,bob@example.com,Bob,B,,,,\n"
    "carol,bad-email,Carol,C,,,,\n"
)


def test_apply_creates_audits_and_reports(admin_user, root_org, media):  # noqa: F811
    upload, _ = upload_text(FILE, user=admin_user, org=root_org)
    upload = confirm_and_apply(upload)
    assert upload.status == BulkUpload.Status.DONE
    assert (upload.created_count, upload.updated_count, upload.unchanged_count, upload.error_count) == (2, 0, 0, 1)
    alice = User.objects.get(username="alice")
    assert alice.check_password("Xylo-Phone-91")
    assert alice.profile.state == UserState.ACTIVE
    assert alice.profile.notes == "=cmd|' /C calc'!A0"  # formula-looking cell stored literally
    assert sorted(alice.groups.values_list("role__slug", flat=True)) == ["console-user", "help-desk"]
    assert User.objects.get(username="bob").profile.state == UserState.INVITED
    assert not User.objects.filter(username="carol").exists()
    events = AuditEvent.objects.filter(job_id=str(upload.pk))
    assert events.filter(action="user.created").count() == 2
    assert set(events.values_list("actor_label", "source", "actor_id").distinct()) == {
        ("admin", Source.BULK, admin_user.pk)
    }
    rows = report_rows(upload)
    assert [(r["line"], r["username"], r["result"]) for r in rows] == [
        ("2", "alice", "created"), ("3", "bob", "created"),
        ("4", "carol", "error: 'bad-email' is not a valid email address. (column email)"),
    ]
    assert rows[0]["notes"] == "'=cmd|' /C calc'!A0"  # neutralised in the report
    # No password anywhere: not in the stored copy, the report, the audit log, and the hashes are gone.
    for stored in (upload.source_file, upload.report):
        with stored.open("rb") as fh:
            assert b"Xylo-Phone-91" not in fh.read()
    assert "Xylo-Phone-91" not in str(list(events.values_list("old_value", "new_value")))
    assert not BulkUploadSecret.objects.filter(upload=upload).exists()


def test_reupload_is_idempotent(admin_user, root_org, media):  # noqa: F811
    first, _ = upload_text(FILE, user=admin_user, org=root_org)
    confirm_and_apply(first)
    events = AuditEvent.objects.count()
    second, _ = upload_text(FILE, user=admin_user, org=root_org)
    second = confirm_and_apply(second)
    assert (second.created_count, second.updated_count, second.unchanged_count, second.error_count) == (0, 0, 2, 1)
    assert AuditEvent.objects.count() == events


def test_only_if_no_errors_applies_nothing(admin_user, root_org, media):  # noqa: F811
    upload, _ = upload_text(FILE, user=admin_user, org=root_org)
    upload = confirm_and_apply(upload, BulkUpload.ApplyMode.NO_ERRORS)
    assert upload.status == BulkUpload.Status.FAILED
    assert "Nothing was applied" in upload.message
    assert not User.objects.filter(username__in=["alice", "bob"]).exists()


def test_only_if_no_errors_refuses_rows_that_fail_since_preview(admin_user, user_factory, root_org, media):  # noqa: F811
    upload, _ = upload_text("username,first_name\nalice,A\nbob,B\n", user=admin_user, org=root_org)
    assert upload.preview["counts"]["error"] == 0
    user_factory("bob", actor=Actor.provider_actor(source=Source.SCIM, provider="okta", label="okta"))
    upload = confirm_and_apply(upload, BulkUpload.ApplyMode.NO_ERRORS)
    assert upload.status == BulkUpload.Status.FAILED
    assert not User.objects.filter(username="alice").exists()


def test_password_history_rule_checked_while_hashing(admin_user, user_factory, root_org, media):  # noqa: F811
    user_factory("dora", password="Old-Secret-77")
    from accounts.console_actions import user_set_password

    user_set_password(actor=Actor.system(), user=User.objects.get(username="dora"), password="Newer-Secret-88")
    upload, _ = upload_text("username,password\ndora,Old-Secret-77\n", user=admin_user, org=root_org)
    assert BulkUploadSecret.objects.get(upload=upload).state == "invalid"
    upload = confirm_and_apply(upload)
    assert upload.error_count == 1
    assert "recently" in report_rows(upload)[0]["result"]


@pytest.mark.parametrize("operation,text,check", [
    ("move", "username,org\nalice,East\n", lambda u: u.profile.org.name == "East"),
    ("deactivate", "username\nalice\n", lambda u: u.profile.state == UserState.DEACTIVATED),
    ("add-roles", "username,role\nalice,Help Desk\n",
     lambda u: u.groups.filter(role__slug="help-desk").exists()),
    ("remove-roles", "username,role\nalice,console-user\n",
     lambda u: not u.groups.filter(role__slug="console-user").exists()),
])
def test_operations(operation, text, check, admin_user, user_factory, org_factory, root_org, media):  # noqa: F811
    org_factory("East")
    user_factory("alice", roles=["console-user"])
    upload, _ = upload_text(text, user=admin_user, operation=operation, org=root_org)
    upload = confirm_and_apply(upload)
    assert upload.updated_count == 1, report_rows(upload)
    assert check(User.objects.get(username="alice"))


def test_reactivate_after_deactivate(admin_user, user_factory, root_org, media):  # noqa: F811
    user_factory("alice")
    confirm_and_apply(upload_text("username\nalice\n", user=admin_user, operation="deactivate")[0])
    upload = confirm_and_apply(upload_text("username\nalice\n", user=admin_user, operation="reactivate")[0])
    assert upload.updated_count == 1
    assert User.objects.get(username="alice").profile.state == UserState.ACTIVE


def test_export_then_upload_is_all_unchanged(admin_user, user_factory, org_factory, root_org, media):  # noqa: F811
    east = org_factory("East")
    sub = org_factory("Sub", parent=east)
    user_factory("plain")
    user_factory("-dash", email="dash@example.com", first_name="=SUM(A1)", last_name="+1", org=sub, roles=["help-desk", "console-user"])
    user_factory("@at", email="at@example.com", notes="multi\nline, with comma", state=UserState.BLOCKED)
    user_factory("invitee", password=None)
    user_factory("scimmy", actor=Actor.provider_actor(source=Source.SCIM, provider="okta", label="okta"))
    text = "".join(export_lines(viewer=admin_user))
    assert "'=SUM(A1)" in text and "'-dash" in text and "'+1" in text
    upload, _ = upload_text(text, user=admin_user, org=root_org)
    assert upload.preview["errors"] == []
    assert upload.preview["counts"] == {"create": 0, "update": 0, "unchanged": User.objects.count(), "error": 0}
    upload = confirm_and_apply(upload)
    assert upload.unchanged_count == User.objects.count() and upload.updated_count == 0


def test_neutralise():
    assert [neutralise(v) for v in ("=1", "+1", "-1", "@x", "a=b", "")] == ["'=1", "'+1", "'-1", "'@x", "a=b", ""]


def test_import_users_command(admin_user, root_org, media, tmp_path, capsys):  # noqa: F811
    path = tmp_path / "users.csv"
    path.write_text("username,email\nzed,zed@example.com\nyan,bad\n")
    with pytest.raises(CommandError) as exc:
        call_command("import_users", str(path), "--org", root_org.name, "--actor", "admin", "--dry-run")
    assert exc.value.returncode == 1
    err = capsys.readouterr().err
    assert "line 3, column email" in err
    assert not User.objects.filter(username="zed").exists()
    path.write_text("username,email\nzed,zed@example.com\n")
    call_command("import_users", str(path), "--org", root_org.name, "--actor", "admin")
    assert User.objects.get(username="zed").profile.state == UserState.INVITED
    event = AuditEvent.objects.get(action="user.created", target_label="zed")
    assert event.actor_label == "admin" and event.job_id


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_apply_through_real_celery_worker(admin_user, root_org, settings):
    """Upload -> hashing tasks -> apply task, all consumed by a real worker process from Redis."""
    from accounts.bulk_upload.apply import password_chunks
    from accounts.bulk_upload.tasks import seal
    from tests.celery_helpers import flush_test_redis, running_worker, test_database_url, test_redis_url

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # what the worker uses

    url = test_redis_url()
    flush_test_redis(url)
    with running_worker(env={"REDIS_URL": url, "DATABASE_URL": test_database_url()}, redis_url=url) as worker:
        upload, passwords = upload_text(
            "username,email,password\nwanda,wanda@example.com,Xylo-Phone-91\nwill,will@example.com,\n",
            user=admin_user, org=root_org, hash_now=False,
        )

        for chunk in password_chunks(passwords):
            worker.client.send_task("accounts.bulk_upload.hash_passwords", args=[str(upload.pk), seal(chunk)])
        BulkUpload.objects.filter(pk=upload.pk).update(status=BulkUpload.Status.QUEUED,
                                                       apply_mode=BulkUpload.ApplyMode.NO_ERRORS)
        result = worker.client.send_task("accounts.bulk_upload.apply", args=[str(upload.pk)])
        outcome = result.get(timeout=60)
    assert outcome["status"] == "done", worker.log()[-3000:]
    assert (outcome["created"], outcome["errors"]) == (2, 0)
    upload.refresh_from_db()
    assert upload.rows_done == 2 and upload.status == BulkUpload.Status.DONE
    assert User.objects.get(username="wanda").check_password("Xylo-Phone-91")
    assert AuditEvent.objects.filter(job_id=str(upload.pk), action="user.created").count() == 2
    upload.source_file.delete(save=False)
    upload.report.delete(save=False)


def test_unconfirmed_previews_expire_and_lose_their_hashes(admin_user, root_org, media):  # noqa: F811
    from datetime import timedelta

    from django.utils import timezone

    from accounts.bulk_upload.tasks import expire_previews

    old, _ = upload_text("username,password\nold.one,Zebra-Lamp-42x\n", user=admin_user, org=root_org)
    fresh, _ = upload_text("username,password\nnew.one,Zebra-Lamp-42x\n", user=admin_user, org=root_org)
    assert BulkUploadSecret.objects.filter(upload=old).exists()
    BulkUpload.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=25))
    assert expire_previews() == 1
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert old.status == BulkUpload.Status.CANCELLED and not BulkUploadSecret.objects.filter(upload=old).exists()
    assert fresh.status == BulkUpload.Status.PREVIEW and BulkUploadSecret.objects.filter(upload=fresh).exists()
