"""An admin may move a user a source owns when the source does not map organizations ("fixed" and
"unmanaged" org modes); a source whose rules place users ("attribute", "rules") owns the org field."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from accounts.exceptions import PolicyDenied
from accounts.identity.service import apply_identity_change
from accounts.identity.types import IdentityChange, Mode
from accounts.models import AuditEvent
from provisioning.inbound import SourceUser, apply_source_users
from provisioning.rules import SourceRecord


def ann() -> SourceUser:
    return SourceUser(external_id="1", username="ann", email="ann@example.com",
                      record=SourceRecord.build(attributes={"userName": "ann"}))


def org_of(username: str) -> str:
    return User.objects.get(username=username).profile.org.name


@pytest.fixture
def orgs(org_factory):
    return org_factory("Sales"), org_factory("Research")


@pytest.mark.parametrize("mode", ["fixed", "unmanaged"])
def test_console_moves_a_user_of_a_source_that_does_not_map_orgs(mode, admin_client, source_factory, orgs):
    sales, research = orgs
    source = source_factory("Okta", slug="okta", org_mode="fixed", fixed_org=sales)
    apply_source_users(source=source, users=[ann()])
    source.org_mode = mode  # (an unmanaged source has no org for new users: they came in "fixed")
    source.save()
    user = User.objects.get(username="ann")
    start = user.profile.org.name
    response = admin_client.post(f"/users/{user.pk}/move/", {"org": research.pk})
    assert response.status_code == 302
    assert response["Location"] == f"/users/{user.pk}/"
    assert org_of("ann") == "Research"
    event = AuditEvent.objects.get(action="user.moved", target_label="ann")
    assert (event.old_value, event.new_value, event.actor_label) == (start, "Research", "admin")
    # The source's next sync keeps the admin's move.
    run = apply_source_users(source=source, users=[ann()])
    assert run.status == "succeeded"
    assert run.counts["refused"] == 0
    assert org_of("ann") == "Research"
    assert not run.entries.filter(subject="org").exists()


def test_console_may_not_move_a_user_whose_org_the_source_maps(admin_client, source_factory, orgs):
    sales, research = orgs
    source = source_factory("Okta", slug="okta", org_mode="rules", fallback_org=sales)
    apply_source_users(source=source, users=[ann()])
    user = User.objects.get(username="ann")
    response = admin_client.post(f"/users/{user.pk}/move/", {"org": research.pk})
    assert response.status_code == 200
    assert "org of ann is managed by SCIM provisioning (okta)." in response.content.decode()
    assert org_of("ann") == "Sales"
    assert not AuditEvent.objects.filter(action="user.moved").exists()


def test_service_decides_by_the_owning_sources_org_mode(admin_actor, source_factory, orgs):
    sales, research = orgs
    source = source_factory("Okta", slug="okta", org_mode="attribute", org_attribute="dept", fallback_org=sales)
    apply_source_users(source=source, users=[ann()])
    user = User.objects.get(username="ann")
    move = IdentityChange(user_id=user.pk, org_id=research.pk, mode=Mode.UPDATE)
    with pytest.raises(PolicyDenied) as err:
        apply_identity_change(change=move, actor=admin_actor)
    assert (err.value.code, err.value.field) == ("managed_by_provider", "org")
    # The admin switches the source to "don't manage orgs": the move is now the admin's call.
    source.org_mode = "unmanaged"
    source.save()
    assert apply_identity_change(change=move, actor=admin_actor).changed_fields == ["org"]
    assert org_of("ann") == "Research"
    # Other provider-owned fields stay the source's.
    with pytest.raises(PolicyDenied) as err:
        apply_identity_change(change=IdentityChange(user_id=user.pk, email="x@example.com", org_id=sales.pk,
                                                    mode=Mode.UPDATE), actor=admin_actor)
    assert (err.value.code, err.value.message) == ("managed_by_provider", "email of ann is managed by "
                                                   "SCIM provisioning (okta).")
