"""Validation and preview of uploads: every rule gives a line, a column and a message; nothing is written."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from accounts.bulk_upload.models import BulkUpload, BulkUploadSecret
from accounts.identity.types import Actor, Source
from accounts.models import AuditEvent
from tests.accounts.bulk_support import media, upload_text  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def errors_of(upload) -> list[tuple[int, str | None, str]]:
    return [(e["line"], e["column"], e["code"]) for e in upload.preview["errors"]]


def test_preview_counts_and_diffs_write_nothing(admin_user, user_factory, root_org, media):  # noqa: F811
    user_factory("bob", email="bob@example.com", first_name="Bob", last_name="B")
    user_factory("carol", email="carol@example.com", first_name="Carol", last_name="C")
    users, events = User.objects.count(), AuditEvent.objects.count()
    upload, _ = upload_text(
        "username,email,first_name,last_name\n"
        "alice,alice@example.com,Alice,A\n"
        "bob,bob@new.example.com,Bob,B\n"
        "carol,carol@example.com,Carol,C\n"
        "dave,not-an-email,Dave,D\n",
        user=admin_user, org=root_org,
    )
    assert upload.status == BulkUpload.Status.PREVIEW
    assert upload.preview["counts"] == {"create": 1, "update": 1, "unchanged": 1, "error": 1}
    assert errors_of(upload) == [(5, "email", "email_invalid")]
    assert upload.preview["diffs"] == [
        {"line": 3, "username": "bob", "changes": [["email", "bob@example.com", "bob@new.example.com"]]}
    ]
    assert (User.objects.count(), AuditEvent.objects.count()) == (users, events)


def test_duplicate_username_differing_in_case(admin_user, root_org, media):  # noqa: F811
    upload, _ = upload_text("username\nalice\nbob\nALICE\n", user=admin_user, org=root_org)
    assert errors_of(upload) == [(4, "username", "username_duplicate_in_file")]
    assert "line 2" in upload.preview["errors"][0]["message"]


def test_existing_username_in_other_case_updates_without_rename(admin_user, user_factory, root_org, media):  # noqa: F811
    user_factory("alice", first_name="Al")
    upload, _ = upload_text("username,first_name\nALICE,Alice\n", user=admin_user, org=root_org)
    assert upload.preview["counts"]["update"] == 1
    assert upload.preview["diffs"][0]["changes"] == [["first_name", "Al", "Alice"]]


def test_weak_password_is_an_error_on_its_line_and_column(admin_user, root_org, media):  # noqa: F811
    upload, passwords = upload_text("username,password\nalice,short\nbob,Xylo-Phone-91\n", user=admin_user,
                                    org=root_org, hash_now=False)
    assert errors_of(upload) == [(2, "password", "password_invalid")]
    assert set(passwords) == {3}
    assert list(BulkUploadSecret.objects.filter(upload=upload).values_list("line", "state")) == [(3, "pending")]


def test_unknown_org_and_role_and_state(admin_user, root_org, media):  # noqa: F811
    upload, _ = upload_text(
        "username,org,roles,state\nalice,Nowhere,,\nbob,,No Such Role,\ncarol,,,sleeping\n",
        user=admin_user, org=root_org,
    )
    assert errors_of(upload) == [(2, "org", "org_not_found"), (3, "roles", "unknown_role"),
                                 (4, "state", "state_invalid")]


def test_missing_org_for_new_user(admin_user, media):  # noqa: F811
    upload, _ = upload_text("username\nalice\n", user=admin_user, org=None)
    assert errors_of(upload) == [(2, None, "org_required")]


def test_provider_owned_user_cannot_be_changed_but_a_no_op_row_is_unchanged(admin_user, user_factory, root_org,
                                                                            media):  # noqa: F811
    scim = Actor.provider_actor(source=Source.SCIM, provider="okta", label="okta")
    user_factory("sam", actor=scim, email="sam@example.com", first_name="Sam", last_name="S")
    upload, _ = upload_text(
        "username,email,first_name,last_name\nsam,sam@example.com,Sam,S\n",
        user=admin_user, org=root_org,
    )
    assert upload.preview["counts"]["unchanged"] == 1
    upload, _ = upload_text("username,first_name\nsam,Samuel\n", user=admin_user, org=root_org)
    assert errors_of(upload) == [(2, None, "managed_by_provider")]


def test_org_admin_only_within_subtree(user_factory, org_factory, media):  # noqa: F811
    east, west = org_factory("East"), org_factory("West")
    user_factory("eve", org=west, first_name="Eve")
    org_admin = user_factory("oa", org=east, roles=["org-admin"])
    upload, _ = upload_text("username,first_name,org\nnew1,N,East\nnew2,N,West\neve,Evelyn,\n", user=org_admin,
                            org=east)
    # West is outside the Org Admin's scope: answered as if it did not exist (issue 7 §5, no oracle).
    assert errors_of(upload) == [(3, "org", "org_not_found"), (4, "username", "username_taken")]


def test_role_not_assignable_by_org_admin(user_factory, org_factory, media):  # noqa: F811
    east = org_factory("East")
    org_admin = user_factory("oa", org=east, roles=["org-admin"])
    upload, _ = upload_text("username,roles\nnew1,Customer Cloud Admin\n", user=org_admin, org=east)
    assert errors_of(upload) == [(2, "roles", "role_not_assignable")]


def test_parse_errors_are_listed_with_lines_and_block_only_their_rows(admin_user, root_org, media):  # noqa: F811
    upload, _ = upload_text("username,email\nalice,a@example.com,x\n bob,b@example.com\ncarol,c@example.com\n",
                            user=admin_user, org=root_org)
    assert errors_of(upload) == [(2, None, "too_many_fields"), (3, "username", "spaces")]
    assert upload.preview["counts"] == {"create": 1, "update": 0, "unchanged": 0, "error": 2}


def test_fatal_file_error_is_stored_as_invalid(admin_user, root_org, media):  # noqa: F811
    upload, _ = upload_text("alice,a@example.com\n", user=admin_user, org=root_org)
    assert upload.status == BulkUpload.Status.INVALID
    assert errors_of(upload) == [(1, None, "missing_header")]
    assert not upload.source_file


@pytest.mark.parametrize("operation,text,expected", [
    ("move", "username,org\nghost,East\n", [(2, "username", "user_not_found")]),
    ("move", "username,org\nalice,\n", [(2, "org", "org_required")]),
    ("add-roles", "username,role\nalice,Nope\n", [(2, "role", "unknown_role")]),
    ("deactivate", "username\nalice\nAlice\n", [(3, "username", "username_duplicate_in_file")]),
])
def test_operation_errors(operation, text, expected, admin_user, user_factory, org_factory, root_org,
                          media):  # noqa: F811
    org_factory("East")
    user_factory("alice")
    upload, _ = upload_text(text, user=admin_user, operation=operation, org=root_org)
    assert errors_of(upload) == expected
