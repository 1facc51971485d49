"""A group a provider creates over SCIM is that provider's: ``DirectoryGroup.owner_source`` records
it, and neither another provider nor a console admin renames it, deletes it or changes its members."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from accounts.exceptions import PolicyDenied
from accounts.identity import groups as group_service
from accounts.identity import memberships
from accounts.identity.service import apply_identity_change
from accounts.identity.types import Actor, IdentityChange, Mode
from accounts.models import DirectoryGroup
from provisioning.lifecycle import source_actor
from provisioning.models import Source

pytestmark = pytest.mark.django_db
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture
def sales(scim):
    """Okta's group "Sales" with one member, created over SCIM; (SCIM id, directory group, member)."""
    member = scim.post("/Users", {"userName": "ann"}).doc["id"]
    created = scim.post("/Groups", {"schemas": [CORE_GROUP], "displayName": "Sales", "externalId": "g-1",
                                    "members": [{"value": member}]})
    assert created.status_code == 201, created.doc
    return created.doc["id"], DirectoryGroup.objects.get(display_name="Sales"), User.objects.get(username="ann")


def unchanged(dgroup: DirectoryGroup, owner: Source, member: User) -> None:
    dgroup.refresh_from_db()
    assert (dgroup.display_name, dgroup.external_id, dgroup.owner_source_id) == ("Sales", "g-1", owner.pk)
    assert list(User.objects.filter(groups=dgroup.group_id)) == [member]


def test_group_create_records_the_owning_source(sales, provider):
    _, dgroup, _ = sales
    source, _ = provider
    assert dgroup.owner_source == source
    assert (dgroup.source, dgroup.provider) == ("scim", source.slug)
    assert list(source.groups.all()) == [dgroup]


def test_another_provider_cannot_see_or_change_the_group(sales, provider, other_scim):
    scim_id, dgroup, ann = sales
    assert other_scim.get(f"/Groups/{scim_id}").status_code == 404
    assert other_scim.get('/Groups?filter=displayName eq "Sales"').doc["totalResults"] == 0
    assert other_scim.put(f"/Groups/{scim_id}", {"displayName": "Mine"}).status_code == 404
    assert other_scim.patch(f"/Groups/{scim_id}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "displayName", "value": "Mine"}]}).status_code == 404
    assert other_scim.delete(f"/Groups/{scim_id}").status_code == 404
    # Its own group of the same name is a different group.
    assert other_scim.post("/Groups", {"displayName": "Sales", "externalId": "g-1"}).status_code == 201
    unchanged(dgroup, provider[0], ann)


def _actors(admin_user: User) -> list[Actor]:
    """Another provider, and an admin in the console."""
    return [source_actor(Source.objects.get(name="Entra")), Actor.for_user(admin_user)]


def test_neither_another_provider_nor_the_console_changes_it(sales, provider, other_scim, admin_user):
    _, dgroup, ann = sales
    assert other_scim.post("/Users", {"userName": "bob"}).status_code == 201
    entra_user = User.objects.get(username="bob")
    for actor in _actors(admin_user):
        attempts = [
            lambda a=actor: group_service.group_update(actor=a, dgroup=dgroup, display_name="Renamed"),
            lambda a=actor: group_service.group_update(actor=a, dgroup=dgroup, external_id="g-2"),
            lambda a=actor: group_service.group_delete(actor=a, dgroup=dgroup),
            lambda a=actor: memberships.group_members_add(actor=a, dgroup=dgroup, user_ids=[entra_user.pk]),
            lambda a=actor: memberships.group_members_remove(actor=a, dgroup=dgroup, user_ids=[ann.pk]),
            lambda a=actor: memberships.group_members_replace(actor=a, dgroup=dgroup, user_ids=[]),
            # Through a user: adding someone to the group, or taking its member out of it.
            lambda a=actor: apply_identity_change(actor=a, change=IdentityChange(
                user_id=entra_user.pk, mode=Mode.UPDATE, groups_add=frozenset({dgroup.group_id}))),
        ]
        for attempt in attempts:
            with pytest.raises(PolicyDenied) as refused:
                attempt()
            assert refused.value.code in ("not_owner", "group_not_owner"), (actor.label, refused.value.code)
            unchanged(dgroup, provider[0], ann)
    with pytest.raises(PolicyDenied) as refused:
        apply_identity_change(actor=Actor.for_user(admin_user), change=IdentityChange(
            user_id=ann.pk, mode=Mode.UPDATE, groups_remove=frozenset({dgroup.group_id})))
    assert refused.value.code in ("not_owner", "group_not_owner")
    unchanged(dgroup, provider[0], ann)


def test_the_owner_still_changes_it(sales, provider, scim):
    scim_id, dgroup, _ = sales
    response = scim.patch(f"/Groups/{scim_id}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "displayName", "value": "Sales EMEA"}]})
    assert response.status_code == 204
    dgroup.refresh_from_db()
    assert dgroup.display_name == "Sales EMEA" and dgroup.owner_source == provider[0]


def test_group_writes_honour_if_match_and_carry_the_request_id(sales, scim, provider):
    """If-Match on Groups (RFC 7644 §3.14) and the provider + request id on every group audit event."""
    from accounts.models import AuditEvent

    scim_id, dgroup, ann = sales
    rename = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "X"}]}
    stale = scim.patch(f"/Groups/{scim_id}", rename, HTTP_IF_MATCH='W/"9"')
    assert stale.status_code == 412 and stale.doc["status"] == "412"
    assert scim.delete(f"/Groups/{scim_id}", HTTP_IF_MATCH='W/"9"').status_code == 412
    unchanged(dgroup, provider[0], ann)
    ok = scim.patch(f"/Groups/{scim_id}", rename, HTTP_IF_MATCH='W/"1"', HTTP_X_REQUEST_ID="req0001")
    assert ok.status_code == 204 and ok["ETag"] == 'W/"2"'
    assert scim.delete(f"/Groups/{scim_id}", HTTP_X_REQUEST_ID="req0002").status_code == 204
    events = AuditEvent.objects.filter(target_type="group", target_id=str(dgroup.pk)).order_by("id")
    assert [(e.action, e.request_id, e.actor_label, e.source) for e in events] == [
        ("group.created", events[0].request_id, "Okta", "scim"),
        ("group.updated", "req0001", "Okta", "scim"),
        ("group.deleted", "req0002", "Okta", "scim"),
    ]
    assert len(events[0].request_id) == 32
    removed = AuditEvent.objects.get(action="user.group_removed", target_id=str(ann.pk))
    assert (removed.request_id, removed.actor_label) == ("req0002", "Okta")
