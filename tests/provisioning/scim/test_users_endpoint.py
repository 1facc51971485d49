"""/scim/v2/Users: create, read, list, replace, patch, delete, through the provisioning core."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from accounts.models import AuditEvent, ExternalIdentity
from provisioning.models import JournalEntry, ProvisioningRun, UserBlock
from provisioning.scim.models import ScimRequest, ScimResource

pytestmark = pytest.mark.django_db
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
IDM_USER = "urn:idm:params:scim:schemas:extension:idm:2.0:User"


def new_user(scim, username="ann@example.com", **extra):
    body = {"schemas": [CORE_USER], "userName": username, "name": {"givenName": "Ann", "familyName": "Lee"},
            "emails": [{"value": username, "type": "work", "primary": True}], "active": True, **extra}
    response = scim.post("/Users", body)
    assert response.status_code == 201, response.doc
    return response


def test_post_creates_the_user_through_the_core(scim, provider, root_org):
    source, _ = provider
    response = new_user(scim, externalId="okta-00u1", title="Engineer",
                        **{ENTERPRISE: {"department": "Sales", "manager": {"value": "x1"}}})
    doc = response.doc
    assert response["Content-Type"] == "application/scim+json"
    assert response["Location"] == f"http://testserver/scim/v2/Users/{doc['id']}"
    assert response["ETag"] == 'W/"1"'
    assert doc["schemas"] == [CORE_USER, ENTERPRISE]
    assert doc["externalId"] == "okta-00u1" and doc["title"] == "Engineer"
    assert doc[ENTERPRISE] == {"department": "Sales", "manager": {"value": "x1"}}
    assert doc["meta"]["resourceType"] == "User" and doc["meta"]["version"] == 'W/"1"'
    user = User.objects.get(username="ann@example.com")
    assert (user.first_name, user.last_name, user.email) == ("Ann", "Lee", "ann@example.com")
    assert user.profile.org == root_org and user.profile.owner_source == source
    link = ExternalIdentity.objects.get(user=user)
    assert (link.source, link.provider, link.external_id) == ("scim", source.slug, doc["id"])
    assert link.raw["record"]["attributes"]["department"] == ["Sales"]
    run = ProvisioningRun.objects.get(source=source, kind="scim_request")
    assert run.counts["created"] == 1 and run.status == "succeeded"
    event = AuditEvent.objects.get(action="user.created", target_id=str(user.pk))
    assert event.actor_label == "Okta" and event.source == "scim" and len(event.request_id) == 32
    log = ScimRequest.objects.get(source=source)
    assert (log.method, log.path, log.status, log.scim_type) == ("POST", "/scim/v2/Users", 201, "")


def test_same_username_twice_is_409_uniqueness_without_database_text(scim):
    new_user(scim)
    response = scim.post("/Users", {"schemas": [CORE_USER], "userName": "ANN@example.com"})
    assert response.status_code == 409
    assert response.doc == {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "409",
                            "scimType": "uniqueness",
                            "detail": "userName is already taken."}
    assert User.objects.filter(username__iexact="ann@example.com").count() == 1


def test_get_one_and_scope_of_another_provider(scim, other_scim):
    uid = new_user(scim).doc["id"]
    response = scim.get(f"/Users/{uid}")
    assert response.status_code == 200 and response.doc["userName"] == "ann@example.com"
    assert response["ETag"] == 'W/"1"'
    hidden = other_scim.get(f"/Users/{uid}")
    assert hidden.status_code == 404 and hidden.doc["detail"] == f"User {uid} not found."
    assert other_scim.patch(f"/Users/{uid}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "active", "value": False}]}).status_code == 404
    assert other_scim.get('/Users?filter=userName eq "ann@example.com"').doc["totalResults"] == 0


def test_list_filter_paging_and_attributes(scim):
    ids = [new_user(scim, f"user{i}@example.com").doc["id"] for i in range(5)]
    page = scim.get("/Users?startIndex=2&count=2").doc
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (5, 2, 2)
    assert [r["id"] for r in page["Resources"]] == ids[1:3]
    assert scim.get("/Users?startIndex=0&count=-3").doc["itemsPerPage"] == 0
    assert scim.get("/Users?count=2").doc["totalResults"] == 5  # a full first page still counts
    assert scim.get("/Users?startIndex=5&count=10").doc["totalResults"] == 5
    assert scim.get("/Users?startIndex=9").doc == {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                                                   "totalResults": 5, "startIndex": 9, "itemsPerPage": 0,
                                                   "Resources": []}
    found = scim.get('/Users?filter=userName eq "USER3@example.com"').doc
    assert found["totalResults"] == 1 and found["Resources"][0]["id"] == ids[3]
    both = scim.get('/Users?filter=userName sw "user1" or userName ew "4@example.com"').doc
    assert sorted(r["id"] for r in both["Resources"]) == sorted([ids[1], ids[4]])
    slim = scim.get(f'/Users?filter=id eq "{ids[0]}"&attributes=userName,name.givenName').doc["Resources"][0]
    assert slim == {"schemas": [CORE_USER], "id": ids[0], "userName": "user0@example.com",
                    "name": {"givenName": "Ann"}}
    lean = scim.get(f"/Users/{ids[0]}?excludedAttributes=emails,meta,name").doc
    assert set(lean) == {"schemas", "id", "userName", "active"}
    urn = scim.get(f"/Users/{ids[0]}?attributes={CORE_USER}:name.familyName,{ENTERPRISE}").doc
    assert urn == {"schemas": [CORE_USER], "id": ids[0], "name": {"familyName": "Lee"}}
    far = scim.get("/Users?startIndex=100000000000000000000000&count=99999999999999999999")
    assert far.status_code == 200 and far.doc["Resources"] == [] and far.doc["totalResults"] == 5
    empty = scim.get('/Users?filter=userName eq "nobody"')
    assert empty.status_code == 200 and empty.doc["totalResults"] == 0 and empty.doc["Resources"] == []


def test_put_replaces_without_clearing_what_the_client_leaves_out(scim):
    uid = new_user(scim, title="Engineer").doc["id"]
    response = scim.put(f"/Users/{uid}", {"schemas": [CORE_USER], "userName": "ann@example.com",
                                          "name": {"givenName": "Anne"}})
    assert response.status_code == 200, response.doc
    assert response["ETag"] == 'W/"2"'
    user = User.objects.get(username="ann@example.com")
    assert (user.first_name, user.last_name, user.email) == ("Anne", "Lee", "ann@example.com")
    assert "title" not in response.doc and response.doc["active"] is True


def test_patch_active_false_blocks_and_true_unblocks(scim, provider):
    source, _ = provider
    uid = new_user(scim).doc["id"]
    off = scim.patch(f"/Users/{uid}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "active", "value": False}]})
    assert off.status_code == 200 and off.doc["active"] is False
    user = User.objects.get(username="ann@example.com")
    assert user.profile.state == "blocked"
    assert UserBlock.objects.get(user=user).source == source
    on = scim.patch(f"/Users/{uid}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "active", "value": True}]})
    assert on.status_code == 200 and on.doc["active"] is True
    user.profile.refresh_from_db()
    assert user.profile.state == "active"


def test_delete_deactivates_through_the_lifecycle_and_keeps_the_row(scim, provider):
    uid = new_user(scim).doc["id"]
    response = scim.delete(f"/Users/{uid}")
    assert response.status_code == 204 and response.content == b""
    assert response["Content-Type"] == "application/scim+json"
    user = User.objects.get(username="ann@example.com")
    assert user.profile.state == "blocked"
    assert UserBlock.objects.get(user=user).deactivate_after is not None
    assert ScimResource.objects.get(scim_id=uid).deleted_at is not None
    assert scim.get(f"/Users/{uid}").status_code == 404
    assert scim.delete(f"/Users/{uid}").status_code == 404
    assert scim.get("/Users").doc["totalResults"] == 0


def test_if_match_stale_version_is_412(scim):
    uid = new_user(scim).doc["id"]
    body = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": "CTO"}]}
    stale = scim.patch(f"/Users/{uid}", body, HTTP_IF_MATCH='W/"7"')
    assert stale.status_code == 412 and stale.doc["status"] == "412"
    ok = scim.patch(f"/Users/{uid}", body, HTTP_IF_MATCH='W/"1"')
    assert ok.status_code == 200 and ok.doc["title"] == "CTO" and ok["ETag"] == 'W/"2"'


def test_refused_email_is_invalid_value_and_nothing_changes(scim):
    uid = new_user(scim).doc["id"]
    response = scim.patch(f"/Users/{uid}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "not an email"}]})
    assert response.status_code == 400 and response.doc["scimType"] == "invalidValue"
    assert User.objects.get(username="ann@example.com").email == "ann@example.com"
    assert ScimResource.objects.get(scim_id=uid).version == 1
    # All or nothing: the refused request's run is rolled back with it; the request log keeps the error.
    assert not JournalEntry.objects.filter(result="refused").exists()
    log = ScimRequest.objects.filter(method="PATCH").get()
    assert (log.status, log.scim_type) == (400, "invalidValue")


def test_idm_extension_org_name_places_the_user(scim, provider, org_factory):
    source, _ = provider
    sales = org_factory("Sales")
    source.org_mode, source.org_attribute, source.fallback_org = "attribute", "orgName", sales.parent
    source.save()
    response = new_user(scim, **{IDM_USER: {"orgName": "Sales"}})
    assert response.doc[IDM_USER] == {"orgName": "Sales"}
    assert IDM_USER in response.doc["schemas"]
    assert User.objects.get(username="ann@example.com").profile.org == sales


def test_sort_by_and_sort_order(scim):
    for name in ("bob", "Carol", "alice"):
        assert scim.post("/Users", {"userName": name}).status_code == 201
    ascending = scim.get("/Users?sortBy=userName").doc["Resources"]
    assert [r["userName"] for r in ascending] == ["alice", "bob", "Carol"]
    descending = scim.post("/Users/.search", {"sortBy": f"{CORE_USER}:userName", "sortOrder": "descending",
                                              "startIndex": 2, "count": 2}).doc
    assert [r["userName"] for r in descending["Resources"]] == ["bob", "alice"]
    bad = scim.get("/Users?sortBy=password")
    assert bad.status_code == 400 and bad.doc["scimType"] == "invalidValue"
    assert scim.get("/Users?sortBy=userName&sortOrder=sideways").status_code == 400
