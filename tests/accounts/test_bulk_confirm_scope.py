"""Uploads (issue 7 §5): a confirmed upload is re-checked with the CONFIRMING admin's rights and
audited with them as actor (uploader kept in the detail); the preview answers alike for users and orgs
outside the uploader's scope and for ones that do not exist."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from accounts.bulk_upload.models import BulkUpload
from accounts.models import AuditEvent
from accounts.roles import CUSTOMER_CLOUD_ADMIN
from tests.accounts.bulk_support import eager_celery, media, post_upload, upload_text  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media", "eager_celery")]


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def roles_of(username: str) -> set[str]:
    return set(User.objects.get(username=username).groups.values_list("role__slug", flat=True))


@pytest.fixture
def people(user_factory, root_org):
    return {
        "uploader": user_factory("cloud1", roles=[CUSTOMER_CLOUD_ADMIN]),
        "cloud2": user_factory("cloud2", roles=[CUSTOMER_CLOUD_ADMIN]),
        "cross": user_factory("crossy", roles=["cross-org-admin"]),
        "target": user_factory("target"),
    }


def test_cross_org_admin_cannot_confirm_a_cloud_admin_grant(people, django_capture_on_commit_callbacks):
    uploader = signed_in(people["uploader"])
    post_upload(uploader, f"username,roles\ntarget,{CUSTOMER_CLOUD_ADMIN}\n")
    upload = BulkUpload.objects.get()
    assert upload.preview["counts"]["update"] == 1  # fine for the Cloud Admin who uploaded it

    cross = signed_in(people["cross"])
    with django_capture_on_commit_callbacks(execute=True):
        response = cross.post(reverse("bulk:confirm", args=[upload.pk]), {"mode": "no_errors"}, follow=True)
    page = response.content.decode()
    assert "Nothing was applied: 1 row(s) that passed the preview are refused with your rights now" in page
    assert "line 2: You may not assign the role Customer Cloud Admin." in page
    upload.refresh_from_db()
    assert upload.status == BulkUpload.Status.PREVIEW and upload.confirmed_by is None
    assert CUSTOMER_CLOUD_ADMIN not in roles_of("target")
    assert not AuditEvent.objects.filter(action="bulk_upload.confirmed").exists()


def test_confirmer_is_the_actor_and_the_uploader_is_kept(people, django_capture_on_commit_callbacks):
    uploader = signed_in(people["uploader"])
    post_upload(uploader, f"username,roles,notes\ntarget,{CUSTOMER_CLOUD_ADMIN},promoted\n")
    upload = BulkUpload.objects.get()
    confirmer = signed_in(people["cloud2"])
    with django_capture_on_commit_callbacks(execute=True):
        confirmer.post(reverse("bulk:confirm", args=[upload.pk]), {"mode": "no_errors"})
    upload.refresh_from_db()
    assert upload.status == BulkUpload.Status.DONE, upload.message
    assert upload.confirmed_by == people["cloud2"] and upload.confirmed_by_label == "cloud2"
    assert CUSTOMER_CLOUD_ADMIN in roles_of("target")

    changes = AuditEvent.objects.filter(job_id=upload.job_id, target_label="target")
    assert changes.exists()
    assert set(changes.values_list("actor_label", flat=True)) == {"cloud2"}
    assert set(changes.values_list("actor", flat=True)) == {people["cloud2"].pk}
    confirmed = AuditEvent.objects.get(action="bulk_upload.confirmed")
    assert confirmed.actor_label == "cloud2" and confirmed.target_id == str(upload.pk)
    assert confirmed.new_value == {"uploaded_by": "cloud1", "mode": "no_errors", "rows": 1}
    assert confirmed.message == "Uploaded by cloud1, confirmed by cloud2."

    page = uploader.get(reverse("bulk:detail", args=[upload.pk])).content.decode()
    assert '<span id="uploaded-by">cloud1</span>' in page and '<span id="confirmed-by">cloud2</span>' in page


def test_rights_lost_between_preview_and_confirm_are_refused(user_factory, org_factory, system_actor,
                                                             django_capture_on_commit_callbacks):
    from accounts import console_actions as services

    acme = org_factory("Acme")
    globex = org_factory("Globex")
    user_factory("g1", org=globex)
    admin = user_factory("moving", org=acme, roles=["cross-org-admin"])
    client = signed_in(admin)
    post_upload(client, "username,notes\ng1,hello\n")
    upload = BulkUpload.objects.get()
    assert upload.preview["counts"]["update"] == 1
    services.user_set_roles(actor=system_actor, user=admin, roles=["org-admin"])  # now Acme only
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("bulk:confirm", args=[upload.pk]), {"mode": "all_valid"}, follow=True)
    page = response.content.decode()
    # g1 is now outside the admin's scope: refused, and worded as for a missing user (no org named).
    assert "Nothing was applied: 1 row(s)" in page and "line 2: A user named &#x27;g1&#x27; already exists." in page
    upload.refresh_from_db()
    assert upload.status == BulkUpload.Status.PREVIEW
    assert User.objects.get(username="g1").profile.notes == ""


# --- No oracle: outside the scope answers like "does not exist" ------------------------------------


@pytest.fixture
def two_orgs(user_factory, org_factory):
    acme, globex = org_factory("Acme"), org_factory("Globex")
    user_factory("acme-user", org=acme)
    user_factory("globex-user", org=globex)
    org_admin = user_factory("acme-admin", org=acme, roles=["org-admin"])
    return acme, globex, org_admin


def answers(upload) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = {}
    for e in upload.preview["errors"]:
        out.setdefault(e["line"], []).append((e["column"], e["code"], e["message"]))
    return out


@pytest.mark.parametrize("operation", ["deactivate", "reactivate", "move", "add-roles", "remove-roles"])
def test_users_outside_scope_answer_like_missing_users(two_orgs, operation):
    acme, _, org_admin = two_orgs
    header, extra = {"deactivate": ("username", ""), "reactivate": ("username", ""),
                     "move": ("username,org", ",Acme"), "add-roles": ("username,role", ",Help Desk"),
                     "remove-roles": ("username,role", ",Console User")}[operation]
    upload, _ = upload_text(f"{header}\nglobex-user{extra}\nno-such-user{extra}\n", user=org_admin,
                            operation=operation, org=acme)
    got = answers(upload)
    assert got[2] == got[3] == [("username", "user_not_found", "No user with this username.")]


def test_orgs_outside_scope_answer_like_missing_orgs(two_orgs):
    acme, _, org_admin = two_orgs
    upload, _ = upload_text("username,org\nnew1,Globex\nnew2,Nowhere\nnew3,Acme\n", user=org_admin, org=acme)
    got = answers(upload)
    assert got[2] == [("org", "org_not_found", "No organization named 'Globex'.")]
    assert got[3] == [("org", "org_not_found", "No organization named 'Nowhere'.")]
    assert 4 not in got and upload.preview["status"]["4"] == "create"
    upload, _ = upload_text("username,org\nacme-user,Globex\nacme-user2,Nowhere\n", user=org_admin,
                            operation="move", org=acme)
    got = answers(upload)
    assert [(c, code) for c, code, _ in got[2]] == [(c, code) for c, code, _ in got[3]] == [("org", "org_not_found")]


def test_ambiguity_is_judged_among_visible_orgs_only(two_orgs, org_factory):
    acme, globex, org_admin = two_orgs
    org_factory("Team", parent=acme)
    org_factory("Team", parent=globex)
    upload, _ = upload_text("username,org\nnew1,Team\n", user=org_admin, org=acme)
    assert upload.preview["status"]["2"] == "create"  # not "ambiguous: give Globex/Team"


def test_preview_page_names_nothing_outside_scope(two_orgs):
    acme, _, org_admin = two_orgs
    client = signed_in(org_admin)
    post_upload(client, "username,org\nglobex-user,Acme\nnew1,Globex\n", operation="move", org=acme)
    upload = BulkUpload.objects.get()
    page = client.get(reverse("bulk:detail", args=[upload.pk])).content.decode()
    assert "You may not" not in page and "No user with this username." in page
