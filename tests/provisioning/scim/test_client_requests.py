"""The requests Okta and Microsoft Entra ID document sending, one test per request shape.

Shapes follow the public documents (our own ids and names; bodies written from their examples):

* OKTA: "Okta and SCIM Version 2.0" —
  https://developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20
* ENTRA_TUTORIAL: "Tutorial: Develop and plan provisioning for a SCIM endpoint in Microsoft Entra ID",
  request/response examples — https://learn.microsoft.com/en-us/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups
* ENTRA_ISSUES: "Known issues and resolutions with SCIM 2.0 protocol compliance of the Microsoft Entra
  user provisioning service" —
  https://learn.microsoft.com/en-us/entra/identity/app-provisioning/application-provisioning-config-problem-scim-compatibility
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from accounts.models import DirectoryGroup

pytestmark = pytest.mark.django_db
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def okta_user(name="test.user@okta.local"):
    # OKTA, "Create the User": the body Okta POSTs (it also sends a password and an empty groups list).
    return {"schemas": [CORE_USER], "userName": name, "name": {"givenName": "Test", "familyName": "User"},
            "emails": [{"primary": True, "value": name, "type": "work"}], "displayName": "Test User",
            "locale": "en-US", "externalId": "00ujl29u0le5T6Aj10h7", "groups": [], "password": "1mz050nq",
            "active": True}


def entra_user(name="Test_User_ab6490ee@contoso.test"):
    # ENTRA_TUTORIAL, "Create User" request.
    return {"schemas": [CORE_USER, ENTERPRISE], "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": name, "active": True,
            "emails": [{"primary": True, "type": "work", "value": "Test_User_fd0ea19b@testuser.com"}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
            "roles": []}


def ops(*operations):
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


# --- Okta ---------------------------------------------------------------------------------------------


def test_okta_lookup_by_username_before_create_is_an_empty_list(scim):
    # OKTA, "Determine if the User already exists": GET with filter, startIndex and count.
    response = scim.get('/Users?filter=userName eq "test.user@okta.local"&startIndex=1&count=100')
    assert response.status_code == 200
    assert response.doc == {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                            "totalResults": 0, "startIndex": 1, "itemsPerPage": 0, "Resources": []}


def test_okta_create_user_ignores_password_and_groups(scim):
    response = scim.post("/Users", okta_user())
    assert response.status_code == 201
    assert response.doc["userName"] == "test.user@okta.local" and response.doc["displayName"] == "Test User"
    assert "password" not in response.doc and "groups" not in response.doc
    user = User.objects.get(username="test.user@okta.local")
    assert not user.has_usable_password() or not user.check_password("1mz050nq")
    found = scim.get('/Users?filter=userName eq "test.user@okta.local"&startIndex=1&count=100').doc
    assert found["totalResults"] == 1 and found["Resources"][0]["id"] == response.doc["id"]


def test_okta_put_user_repeats_id_and_meta(scim):
    # OKTA, "Update a specific User (PUT)": the whole resource, id and meta included.
    created = scim.post("/Users", okta_user()).doc
    body = dict(created, name={"givenName": "Another", "familyName": "User"})
    response = scim.put(f"/Users/{created['id']}", body)
    assert response.status_code == 200 and response.doc["id"] == created["id"]
    assert User.objects.get(username="test.user@okta.local").first_name == "Another"


def test_okta_deactivate_and_reactivate_pathless_replace(scim):
    # OKTA, "Update a specific User (PATCH)": {"op": "replace", "value": {"active": false}}.
    uid = scim.post("/Users", okta_user()).doc["id"]
    off = scim.patch(f"/Users/{uid}", ops({"op": "replace", "value": {"active": False}}))
    assert off.status_code == 200 and off.doc["active"] is False
    assert User.objects.get(username="test.user@okta.local").profile.state == "blocked"
    on = scim.patch(f"/Users/{uid}", ops({"op": "replace", "value": {"active": True}}))
    assert on.status_code == 200 and on.doc["active"] is True


def test_okta_import_users_page(scim):
    # OKTA, "Retrieve Users": GET /Users?startIndex=1&count=100.
    for i in range(3):
        scim.post("/Users", okta_user(f"u{i}@okta.local"))
    page = scim.get("/Users?startIndex=1&count=100").doc
    assert page["totalResults"] == 3 and page["itemsPerPage"] == 3


def test_okta_group_push_lifecycle(scim):
    uid = scim.post("/Users", okta_user()).doc["id"]
    # OKTA, "Create Groups": members empty.
    created = scim.post("/Groups", {"schemas": [CORE_GROUP], "displayName": "Test SCIMv2", "members": []})
    assert created.status_code == 201
    gid = created.doc["id"]
    # OKTA, "Retrieve Groups" by displayName with paging.
    found = scim.get('/Groups?filter=displayName eq "Test SCIMv2"&startIndex=1&count=100').doc
    assert [g["id"] for g in found["Resources"]] == [gid]
    # OKTA, "Update Group name": path-less replace that repeats the read-only id.
    renamed = scim.patch(f"/Groups/{gid}", ops({"op": "replace", "value": {"id": gid, "displayName": "Renamed"}}))
    assert renamed.status_code == 204 and scim.get(f"/Groups/{gid}").doc["displayName"] == "Renamed"
    # OKTA, "Update Group membership": add with value and display.
    added = scim.patch(f"/Groups/{gid}", ops({"op": "add", "path": "members",
                                               "value": [{"value": uid, "display": "test.user@okta.local"}]}))
    assert added.status_code == 204
    assert [m["value"] for m in scim.get(f"/Groups/{gid}").doc["members"]] == [uid]
    # ... and remove with a value filter in the path.
    removed = scim.patch(f"/Groups/{gid}", ops({"op": "remove", "path": f'members[value eq "{uid}"]'}))
    assert removed.status_code == 204 and scim.get(f"/Groups/{gid}").doc["members"] == []
    # OKTA, "Update a specific Group (PUT)".
    put = scim.put(f"/Groups/{gid}", {"schemas": [CORE_GROUP], "id": gid, "displayName": "Renamed",
                                      "members": [{"value": uid, "display": "test.user@okta.local"}]})
    assert put.status_code == 200 and len(put.doc["members"]) == 1
    # OKTA, "Delete a specific Group".
    assert scim.delete(f"/Groups/{gid}").status_code == 204
    assert not DirectoryGroup.objects.filter(display_name="Renamed").exists()


# --- Microsoft Entra ID ---------------------------------------------------------------------------------


def test_entra_create_user_with_enterprise_schema(scim):
    response = scim.post("/Users", entra_user())
    assert response.status_code == 201
    assert response.doc["externalId"] == "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"
    assert response.doc["name"]["formatted"] == "givenName familyName"


def test_entra_get_user_by_query_and_zero_results(scim):
    uid = scim.post("/Users", entra_user()).doc["id"]
    found = scim.get('/Users?filter=userName eq "Test_User_ab6490ee@contoso.test"').doc
    assert [r["id"] for r in found["Resources"]] == [uid]
    none = scim.get('/Users?filter=userName eq "non-existent user"')
    assert none.status_code == 200 and none.doc["totalResults"] == 0


def test_entra_update_multi_valued_and_single_valued(scim):
    uid = scim.post("/Users", entra_user()).doc["id"]
    # ENTRA_TUTORIAL, "Update User [Multi-valued properties]".
    response = scim.patch(f"/Users/{uid}", ops(
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "updatedEmail@contoso.test"},
        {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}))
    assert response.status_code == 200, response.doc
    user = User.objects.get(username="Test_User_ab6490ee@contoso.test")
    assert (user.email, user.last_name) == ("updatedEmail@contoso.test", "updatedFamilyName")
    # ENTRA_TUTORIAL, "Update User [Single-valued properties]": a new userName.
    renamed = scim.patch(f"/Users/{uid}", ops({"op": "Replace", "path": "userName",
                                                "value": "5b50642d@testuser.com"}))
    assert renamed.status_code == 200 and renamed.doc["userName"] == "5b50642d@testuser.com"
    user.refresh_from_db()
    assert user.username == "5b50642d@testuser.com"


def test_entra_disable_user_with_string_boolean(scim):
    # ENTRA_ISSUES: PATCH sends "False" as a string; ENTRA_TUTORIAL "Disable User" sends false.
    uid = scim.post("/Users", entra_user()).doc["id"]
    response = scim.patch(f"/Users/{uid}", ops({"op": "Replace", "path": "active", "value": "False"}))
    assert response.status_code == 200 and response.doc["active"] is False
    assert User.objects.get(username="Test_User_ab6490ee@contoso.test").profile.state == "blocked"


def test_entra_pathless_value_map_with_dotted_and_urn_keys(scim):
    # ENTRA_ISSUES: path-less "Add"/"Replace" whose value keys are dotted or URN-prefixed paths.
    uid = scim.post("/Users", entra_user()).doc["id"]
    response = scim.patch(f"/Users/{uid}", ops({"op": "Add", "value": {
        "name.givenName": "Fabrikam", f"{ENTERPRISE}:department": "Sales", "title": "Lead"}}))
    assert response.status_code == 200, response.doc
    assert response.doc[ENTERPRISE] == {"department": "Sales"} and response.doc["title"] == "Lead"
    assert User.objects.get(username="Test_User_ab6490ee@contoso.test").first_name == "Fabrikam"


def test_entra_delete_user(scim):
    uid = scim.post("/Users", entra_user()).doc["id"]
    assert scim.delete(f"/Users/{uid}").status_code == 204
    assert scim.get(f"/Users/{uid}").status_code == 404


def test_entra_group_lifecycle(scim):
    a = scim.post("/Users", entra_user("a@contoso.test")).doc["id"]
    b = scim.post("/Users", entra_user("b@contoso.test") | {"externalId": "other"}).doc["id"]
    # ENTRA_TUTORIAL, "Create Group": an extra Microsoft schema URI and meta in the body.
    created = scim.post("/Groups", {"schemas": [CORE_GROUP,
                                                "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                                    "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
                                    "displayName": "displayName", "meta": {"resourceType": "Group"}})
    assert created.status_code == 201, created.doc
    gid = created.doc["id"]
    # "Retrieve Group" and "Retrieve Group by displayName", both without members.
    one = scim.get(f"/Groups/{gid}?excludedAttributes=members").doc
    assert "members" not in one and one["externalId"] == "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"
    found = scim.get('/Groups?excludedAttributes=members&filter=displayName eq "displayName"').doc
    assert found["totalResults"] == 1 and "members" not in found["Resources"][0]
    # "Update Group [Non-member attributes]".
    renamed = scim.patch(f"/Groups/{gid}", ops({"op": "Replace", "path": "displayName", "value": "updated"}))
    assert renamed.status_code == 204 and scim.get(f"/Groups/{gid}").doc["displayName"] == "updated"
    # "Update Group [Add Members]": "$ref": null beside the value.
    added = scim.patch(f"/Groups/{gid}", ops({"op": "Add", "path": "members",
                                               "value": [{"$ref": None, "value": a}, {"$ref": None, "value": b}]}))
    assert added.status_code == 204
    assert sorted(m["value"] for m in scim.get(f"/Groups/{gid}").doc["members"]) == sorted([a, b])
    # "Update Group [Remove Members]" / ENTRA_ISSUES legacy form: remove with a value list — only those go.
    removed = scim.patch(f"/Groups/{gid}", ops({"op": "Remove", "path": "members",
                                                 "value": [{"$ref": None, "value": a}]}))
    assert removed.status_code == 204
    assert [m["value"] for m in scim.get(f"/Groups/{gid}").doc["members"]] == [b]
    # Entra's member check: filter by id and members.value.
    check = scim.get(f'/Groups?filter=id eq "{gid}" and members.value eq "{b}"&excludedAttributes=members').doc
    assert check["totalResults"] == 1
    # "Delete Group".
    assert scim.delete(f"/Groups/{gid}").status_code == 204
