"""Issue 8 for bulk uploads: an applied upload is one provisioning run whose journal holds every row's
changes (old -> new) and refusals with their line; its audit events link to the run; the upload page
links to the journal, which only those who may open the upload (or ``manage_identity``) can read."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts import console_actions as services
from accounts.bulk_upload.apply import apply_upload
from accounts.bulk_upload.models import BulkUpload
from accounts.models import AuditEvent
from provisioning.models import JournalEntry, ProvisioningRun
from tests.accounts.bulk_support import media, response_text, upload_text  # noqa: F401

pytestmark = pytest.mark.django_db

FILE = (
    "username,email,first_name,last_name,org,roles\n"
    "alice,alice@example.com,Alice,A,,\n"                                   # 2: created
    "bob,bob@example.com,Bob,B,,\n"                                         # 3: unchanged
    "carol,bad-email,Carol,C,,\n"                                           # 4: refused by the upload
    "dave,dave@example.com,David,D,Default Organization/Acme/Lab,\n"       # 5: updated (name, org)
    "erin,erin@example.com,Erin,E,,Console User\n"                          # 6: refused by the service
)


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def acme(org_factory):
    acme = org_factory("Acme")
    return acme, org_factory("Lab", parent=acme)


@pytest.fixture
def applied(acme, user_factory, system_actor, media):  # noqa: F811
    """The file above uploaded and applied by an Org Admin of Acme who lost ``assign_roles`` after the
    preview, so erin's role change passes the preview and is refused by the service at apply time."""
    org, _ = acme
    admin = user_factory("acme-admin", org=org, roles=["org-admin"])
    for name, first, last in (("bob", "Bob", "B"), ("dave", "Dave", "D"), ("erin", "Erin", "E")):
        user_factory(name, org=org, email=f"{name}@example.com", first_name=first, last_name=last)
    upload, _ = upload_text(FILE, user=admin, org=org)
    assert upload.preview["status"] == {"2": "create", "3": "unchanged", "4": "error", "5": "update", "6": "update"}
    services.user_set_roles(actor=system_actor, user=admin, roles=["org-manager"])
    upload.apply_mode, upload.status = BulkUpload.ApplyMode.ALL_VALID, BulkUpload.Status.QUEUED
    upload.save(update_fields=["apply_mode", "status"])
    return apply_upload(upload), admin


def journal(run) -> list[tuple]:
    return [(e.ref, e.user_label, e.subject, e.old_value, e.new_value, e.result, e.code, e.message)
            for e in run.entries.order_by("pk")]


def test_applied_upload_is_one_run_with_every_rows_journal(applied, acme):
    upload, admin = applied
    org, lab = acme
    # The upload's own result is what it was before the journal.
    assert (upload.status, upload.created_count, upload.updated_count, upload.unchanged_count,
            upload.error_count) == (BulkUpload.Status.DONE, 1, 1, 1, 2)
    run = ProvisioningRun.objects.get()
    assert (run.run_id, run.kind, run.source, run.dry_run, run.status, run.started_by_label) == (
        str(upload.pk), ProvisioningRun.Kind.BULK_UPLOAD, None, False, ProvisioningRun.Status.SUCCEEDED, "acme-admin")
    assert run.counts == {"created": 1, "updated": 1, "unchanged": 1, "refused": 2}
    assert journal(run) == [
        ("4", "carol", "row", None, None, "refused", "email_invalid",
         "'bad-email' is not a valid email address. (column email)"),
        ("2", "alice", "created", None, None, "applied", "", ""),
        ("5", "dave", "first_name", "Dave", "David", "applied", "", ""),
        ("5", "dave", "org", org.pk, lab.pk, "applied", "", ""),
        ("6", "erin", "change", None, None, "refused", "out_of_scope", "You may not assign roles in Acme."),
    ]
    dave = User.objects.get(username="dave")
    assert run.entries.get(subject="org").user_id == dave.pk
    assert (dave.first_name, dave.profile.org_id) == ("David", lab.pk)
    assert list(User.objects.get(username="erin").groups.values_list("role__slug", flat=True)) != ["console-user"]


def test_audit_events_of_the_upload_link_to_its_run(applied, user_factory):
    upload, admin = applied
    run = ProvisioningRun.objects.get()
    events = AuditEvent.objects.filter(actor_id=admin.pk)  # everything the upload wrote
    assert {("user.created", "alice"), ("user.updated", "dave")} <= set(events.values_list("action", "target_label"))
    assert set(events.values_list("job_id", flat=True)) == {run.run_id}
    viewer = Client()
    viewer.force_login(user_factory("auditor", roles=["customer-cloud-admin"]))
    page = viewer.get(reverse("accounts:audit_list")).content.decode()
    assert f'href="{reverse("provisioning:run_detail", args=[run.run_id])}" data-run-link' in page


def test_upload_page_links_its_journal_which_the_uploaders_scope_may_read(applied, user_factory, org_factory):
    upload, admin = applied
    run_url = reverse("provisioning:run_detail", args=[str(upload.pk)])
    export_url = reverse("provisioning:run_export", args=[str(upload.pk)])
    uploader = Client()
    uploader.force_login(admin)
    assert f'id="journal-link" href="{run_url}"' in uploader.get(reverse("bulk:detail", args=[upload.pk])).content.decode()
    page = uploader.get(run_url)
    assert page.status_code == 200 and "David" in page.content.decode()
    assert reverse("bulk:detail", args=[upload.pk]) in page.content.decode()  # back to the upload
    filtered = uploader.get(run_url, {"result": "refused"}).content.decode()
    assert "carol" in filtered and "David" not in filtered
    rows = list(csv.DictReader(io.StringIO(response_text(uploader.get(export_url)))))
    assert [(r["run"], r["user"], r["subject"], r["result"], r["ref"]) for r in rows] == [
        (str(upload.pk), "carol", "row", "refused", "4"), (str(upload.pk), "alice", "created", "applied", "2"),
        (str(upload.pk), "dave", "first_name", "applied", "5"), (str(upload.pk), "dave", "org", "applied", "5"),
        (str(upload.pk), "erin", "change", "refused", "6")]
    assert uploader.get(reverse("provisioning:run_progress", args=[str(upload.pk)])).status_code == 200

    # An Org Admin of another org may not open the upload, nor read its journal (404 as for the upload).
    other = Client()
    other.force_login(user_factory("globex-admin", org=org_factory("Globex"), roles=["org-admin"]))
    for url in (reverse("bulk:detail", args=[upload.pk]), run_url, export_url,
                reverse("provisioning:run_progress", args=[str(upload.pk)])):
        assert other.get(url).status_code == 404, url
    # Without manage_users or manage_identity: 403; global admins and identity admins read it.
    helpdesk = Client()
    helpdesk.force_login(user_factory("help.desk", roles=["help-desk"]))
    assert helpdesk.get(run_url).status_code == 403 and helpdesk.get(export_url).status_code == 403
    for role in ("cross-org-admin", "identity-management-administrator"):
        reader = Client()
        reader.force_login(user_factory(f"reader-{role}", roles=[role]))
        assert reader.get(run_url).status_code == 200, role
    # Other runs stay manage_identity only, even for the uploader.
    sync_run = ProvisioningRun.objects.create(kind=ProvisioningRun.Kind.SYNC)
    assert uploader.get(reverse("provisioning:run_detail", args=[sync_run.run_id])).status_code == 404


def test_preview_writes_no_run_and_no_journal(acme, user_factory, media):  # noqa: F811
    org, _ = acme
    admin = user_factory("acme-admin", org=org, roles=["org-admin"])
    upload, _ = upload_text(FILE, user=admin, org=org)
    assert upload.status == BulkUpload.Status.PREVIEW and upload.preview["counts"]["create"] == 4
    assert not ProvisioningRun.objects.exists() and not JournalEntry.objects.exists()
    assert not User.objects.filter(username__in=["alice", "bob", "dave", "erin"]).exists()
    page = Client()
    page.force_login(admin)
    assert 'id="journal-link"' not in page.get(reverse("bulk:detail", args=[upload.pk])).content.decode()


def test_only_if_no_errors_upload_journals_its_refusals_and_writes_nothing(acme, user_factory, media):  # noqa: F811
    org, _ = acme
    admin = user_factory("acme-admin", org=org, roles=["org-admin"])
    upload, _ = upload_text("username,email\nalice,alice@example.com\ncarol,bad-email\n", user=admin, org=org)
    upload.apply_mode, upload.status = BulkUpload.ApplyMode.NO_ERRORS, BulkUpload.Status.QUEUED
    upload.save(update_fields=["apply_mode", "status"])
    upload = apply_upload(upload)
    assert upload.status == BulkUpload.Status.FAILED
    run = ProvisioningRun.objects.get(run_id=str(upload.pk))
    assert (run.status, run.error) == (ProvisioningRun.Status.FAILED, upload.message)
    assert journal(run) == [("3", "carol", "row", None, None, "refused", "email_invalid",
                             "'bad-email' is not a valid email address. (column email)")]
    assert not User.objects.filter(username="alice").exists()


def test_journaling_a_1000_row_apply_adds_no_queries_per_row(root_org, user_factory, media):  # noqa: F811
    admin = user_factory("admin", roles=["customer-cloud-admin"])
    text = "username,email\n" + "".join(f"u{i:04d},u{i:04d}@example.com\n" for i in range(1000))
    upload, _ = upload_text(text, user=admin, org=root_org)
    upload.apply_mode, upload.status = BulkUpload.ApplyMode.ALL_VALID, BulkUpload.Status.QUEUED
    upload.save(update_fields=["apply_mode", "status"])
    with CaptureQueriesContext(connection) as queries:
        upload = apply_upload(upload)
    assert upload.created_count == 1000
    assert ProvisioningRun.objects.get().entries.count() == 1000
    sql = [q["sql"] for q in queries.captured_queries]
    # 10 batches of 100: one journal insert per batch (a COPY on PostgreSQL; two INSERTs on SQLite,
    # whose statements hold at most 999 parameters), the run's insert, its progress per batch and its finish.
    journal_writes = ('INSERT INTO "provisioning_journalentry"', 'COPY "provisioning_journalentry"')
    assert 10 <= sum(q.startswith(journal_writes) for q in sql) <= 2 * 10
    assert sum('"provisioning_provisioningrun"' in q for q in sql) <= 10 + 2
    assert len(sql) < 400  # the whole apply, far below one query per row
