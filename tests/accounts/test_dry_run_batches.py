"""Dry runs across batches (issue 7 §2): the preview and "apply only if there are no errors" see
what earlier batches of the same run would have written, so an upload cannot pass its preview and
then fail half-way."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from accounts.bulk_upload.models import BulkUpload
from accounts.identity.service import apply_identity_change, apply_identity_changes
from accounts.identity.types import IdentityChange, Mode, UserState
from accounts.models import AuditEvent
from accounts.roles import CUSTOMER_CLOUD_ADMIN
from tests.accounts.bulk_support import media, upload_text  # noqa: F401
from tests.accounts.test_bulk_apply import confirm_and_apply

pytestmark = pytest.mark.django_db


def test_dry_run_sees_a_username_created_by_an_earlier_batch(system_actor, root_org):
    changes = [IdentityChange(username=name, org_id=root_org.pk, mode=Mode.CREATE, ref=i)
               for i, name in enumerate(["ann", "bob", "ANN"])]
    dry = apply_identity_changes(actor=system_actor, changes=changes, batch_size=1, dry_run=True)
    assert [r.status for r in dry.results] == ["created", "created", "refused"]
    assert dry.results[2].error.code == "username_taken"
    assert not User.objects.filter(username__in=["ann", "bob"]).exists()  # a dry run keeps nothing
    assert not AuditEvent.objects.filter(action="user.created").exists()
    real = apply_identity_changes(actor=system_actor, changes=changes, batch_size=1)
    assert [r.status for r in real.results] == ["created", "created", "refused"]


def _two_admins_and_fillers(user_factory):
    for name in ("admin-a", "admin-b"):
        user_factory(name, roles=[CUSTOMER_CLOUD_ADMIN])
    for name in ("filler1", "filler2"):
        user_factory(name)


# batch 1 = lines 2-3 (filler1, admin-a), batch 2 = lines 4-5 (filler2, admin-b)
DEACTIVATE_BOTH = "username\nfiller1\nadmin-a\nfiller2\nadmin-b\n"


def test_upload_preview_reports_last_admin_removed_across_batches(settings, user_factory, media):  # noqa: F811
    settings.IDM_BULK_BATCH_SIZE = 2
    _two_admins_and_fillers(user_factory)
    upload, _ = upload_text(DEACTIVATE_BOTH, user=None, operation="deactivate")
    assert upload.status == BulkUpload.Status.PREVIEW
    assert upload.preview["counts"] == {"create": 0, "update": 3, "unchanged": 0, "error": 1}
    assert [(e["line"], e["code"]) for e in upload.preview["errors"]] == [(5, "last_admin")]
    # The preview wrote nothing.
    assert User.objects.filter(username="admin-a", profile__state=UserState.ACTIVE).exists()


def test_apply_only_if_no_errors_sees_earlier_batches(settings, user_factory, system_actor, media):  # noqa: F811
    settings.IDM_BULK_BATCH_SIZE = 2
    _two_admins_and_fillers(user_factory)
    third = user_factory("admin-c", roles=[CUSTOMER_CLOUD_ADMIN])
    upload, _ = upload_text(DEACTIVATE_BOTH, user=None, operation="deactivate")
    assert upload.preview["counts"]["error"] == 0  # admin-c is still there at preview time
    # Meanwhile admin-c leaves: now the file's second admin row would remove the last admin.
    apply_identity_change(actor=system_actor, change=IdentityChange(user_id=third.pk,
                                                                    state=UserState.DEACTIVATED))
    upload = confirm_and_apply(upload, BulkUpload.ApplyMode.NO_ERRORS)
    assert upload.status == BulkUpload.Status.FAILED
    assert upload.error_count == 1
    # Nothing applied: not even the rows of the first batch.
    assert set(User.objects.filter(username__in=["filler1", "admin-a", "filler2", "admin-b"])
               .values_list("profile__state", flat=True)) == {UserState.ACTIVE}


def test_dry_run_carries_links_and_new_admins_across_batches(system_actor, root_org, admin_user):
    from accounts.identity.types import ExternalLink

    link = ExternalLink("saml", "idp", "ext-9")
    changes = [
        IdentityChange(username="l1", org_id=root_org.pk, link=link, mode=Mode.CREATE, ref=1),
        IdentityChange(username="l2", org_id=root_org.pk, link=link, mode=Mode.CREATE, ref=2),
        IdentityChange(username="new-admin", org_id=root_org.pk, password="Quartz-Lamp-52",
                       roles=frozenset({CUSTOMER_CLOUD_ADMIN}), mode=Mode.CREATE, ref=3),
        IdentityChange(user_id=admin_user.pk, state=UserState.DEACTIVATED, ref=4),
    ]
    for dry_run in (True, False):
        result = apply_identity_changes(actor=system_actor, changes=changes, batch_size=1, dry_run=dry_run)
        assert [r.status for r in result.results] == ["created", "refused", "created", "updated"], dry_run
        assert result.results[1].error.code == "external_id_taken"
