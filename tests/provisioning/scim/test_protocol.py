"""SCIM protocol behaviour (RFC 7644): authentication, media type, error documents for bad input
(never a 500), discovery, /Me and /Bulk, POST /.search."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts.identity.types import Actor
from provisioning.scim import providers
from provisioning.scim.models import ScimRequest

pytestmark = pytest.mark.django_db
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def error(response, status, scim_type=None):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/scim+json"
    assert response.doc["schemas"] == [ERROR] and response.doc["status"] == str(status)
    assert response.doc.get("scimType") == scim_type
    return response.doc["detail"]


@pytest.mark.parametrize("header", [None, "Bearer ", "Bearer idm_scim_wrong", "Basic dXNlcjpwYXNz", "bearer x"])
def test_missing_or_wrong_token_is_401_with_www_authenticate(db, header):
    headers = {"HTTP_AUTHORIZATION": header} if header else {}
    response = Client().get("/scim/v2/Users", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="idm SCIM", Basic realm="idm SCIM", charset="UTF-8"'
    assert response["Content-Type"] == "application/scim+json"
    assert json.loads(response.content)["detail"] == "A valid bearer token (or HTTP basic credential) is required."
    assert not ScimRequest.objects.exists()


def test_disabled_provider_is_401(scim, provider):
    providers.provider_set_enabled(actor=Actor.system("t"), source=provider[0], enabled=False)
    assert scim.get("/Users").status_code == 401


def test_garbage_wrong_types_and_huge_bodies_are_error_documents(scim, settings):
    error(scim.post("/Users", raw=b"{not json"), 400, "invalidSyntax")
    error(scim.post("/Users", raw=b"\xff\xfe"), 400, "invalidSyntax")
    error(scim.post("/Users", raw=b'{"userName": NaN}'), 400, "invalidSyntax")
    error(scim.post("/Users", raw=b"[" * 5000 + b"]" * 5000), 400, "invalidSyntax")
    error(scim.post("/Users", ["a list"]), 400, "invalidSyntax")
    assert error(scim.post("/Users", {"userName": 42}), 400, "invalidValue") == "userName must be a non-empty string."
    assert error(scim.post("/Users", {"schemas": [CORE_USER]}), 400, "invalidValue") == "userName is required."
    error(scim.post("/Users", {"userName": "a", "active": "maybe"}), 400, "invalidValue")
    error(scim.post("/Users", {"userName": "a", "name": "Ann"}), 400, "invalidValue")
    error(scim.post("/Users", {"userName": "a", "emails": {"value": "x"}}), 400, "invalidValue")
    error(scim.post("/Users", {"userName": "a", "emails": [{"value": 1}]}), 400, "invalidValue")
    error(scim.post("/Groups", {"displayName": ""}), 400, "invalidValue")
    error(scim.post("/Groups", {"displayName": "g", "members": [{"value": None}]}), 400, "invalidValue")
    big = json.dumps({"userName": "a", "title": "x" * 1_100_000}).encode()
    assert error(scim.post("/Users", raw=big), 413) == "The request body is larger than 1048576 bytes."


def test_unknown_schema_uris_and_pascal_case_are_tolerated(scim):
    response = scim.post("/Users", {"schemas": [CORE_USER, "urn:example:unknown"], "UserName": "pat",
                                    "Active": "True", "urn:example:unknown": {"x": 1}, "unknownAttr": 3})
    assert response.status_code == 201, response.doc
    assert response.doc["userName"] == "pat" and response.doc["active"] is True
    assert "urn:example:unknown" not in response.doc and "unknownAttr" not in response.doc


def test_filter_and_paging_errors(scim):
    assert error(scim.get('/Users?filter=nickName eq "x"'), 400, "invalidFilter") == "Unknown attribute nickName."
    error(scim.get("/Users?filter=userName eq"), 400, "invalidFilter")
    error(scim.get('/Users?filter=userName eq "a" and'), 400, "invalidFilter")
    error(scim.get("/Users?filter=active eq \"yes\""), 400, "invalidFilter")
    error(scim.get('/Groups?filter=userName eq "a"'), 400, "invalidFilter")
    # Review 3, L2: a date with month 99 or offset +99:99 was a 500 through the real view.
    error(scim.get('/Users?filter=meta.lastModified gt "9999-99-99T00:00:00Z"'), 400, "invalidFilter")
    error(scim.get('/Users?filter=meta.lastModified gt "2020-01-01T00:00:00%2B99:99"'), 400, "invalidFilter")
    # Review 4, L1: an escaped lone surrogate in a filter string was a 500 (UnicodeEncodeError).
    error(scim.get('/Users?filter=userName eq "\\ud800"'), 400, "invalidFilter")
    error(scim.get('/Groups?filter=displayName eq "\\ud800"'), 400, "invalidFilter")
    error(scim.post("/.search", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                                 "filter": 'userName eq "\\u0000"'}), 400, "invalidFilter")
    assert error(scim.get("/Users?startIndex=one"), 400, "invalidValue") == "startIndex must be an integer."
    error(scim.get("/Users?count=1.5"), 400, "invalidValue")


def test_patch_errors(scim):
    uid = scim.post("/Users", {"userName": "ann"}).doc["id"]
    url = f"/Users/{uid}"
    error(scim.patch(url, {"Operations": [{"op": "add", "path": "title", "value": "x"}]}), 400, "invalidSyntax")
    error(scim.patch(url, {"schemas": [PATCH_OP], "Operations": []}), 400, "invalidSyntax")
    error(scim.patch(url, {"schemas": [PATCH_OP], "Operations": [{"op": "move", "path": "title"}]}), 400,
          "invalidSyntax")
    error(scim.patch(url, {"schemas": [PATCH_OP], "Operations": [{"op": "remove"}]}), 400, "noTarget")
    error(scim.patch(url, {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "title[", "value": 1}]}), 400,
          "invalidPath")
    error(scim.patch(url, {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active",
                                                                   "value": "perhaps"}]}), 400, "invalidValue")
    assert error(scim.patch(url, {"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "id", "value": "other"}]}), 400, "mutability") == "id is read-only."
    many = [{"op": "add", "path": "title", "value": "x"}] * 1001
    error(scim.patch(url, {"schemas": [PATCH_OP], "Operations": many}), 400, "tooMany")
    assert scim.get(url).doc["meta"]["version"] == 'W/"1"'


def test_unknown_paths_and_methods(scim):
    assert error(scim.get("/Nope"), 404) == "No such SCIM endpoint."
    error(scim.get("/Users/does-not-exist"), 404)
    error(scim.get("/Groups/" + "x" * 300), 404)
    error(scim.call("PUT", "/Users", {"userName": "a"}), 405)


def test_me_and_bulk_are_501_as_advertised(scim):
    assert scim.get("/ServiceProviderConfig").doc["bulk"]["supported"] is False
    for path in ("/Me", "/Bulk"):
        assert error(scim.get(path), 501) == "This service provider does not support this endpoint."
    error(scim.post("/Bulk", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"]}), 501)


def test_discovery_documents(scim):
    spc = scim.get("/ServiceProviderConfig").doc
    assert spc["patch"] == {"supported": True} and spc["filter"] == {"supported": True, "maxResults": 1000}
    assert spc["etag"] == spc["sort"] == {"supported": True} and [a["type"] for a in spc["authenticationSchemes"]] == ["oauthbearertoken", "httpbasic"]
    types = scim.get("/ResourceTypes").doc
    assert types["totalResults"] == 2
    user_type = scim.get("/ResourceTypes/User").doc
    assert {k: user_type[k] for k in ("id", "name", "endpoint", "schema")} == {
        "id": "User", "name": "User", "endpoint": "/Users", "schema": CORE_USER}
    assert user_type["schemaExtensions"][0] == {
        "schema": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "required": False}
    assert user_type["meta"] == {"resourceType": "ResourceType",
                                 "location": "http://testserver/scim/v2/ResourceTypes/User"}
    schemas = scim.get("/Schemas").doc
    ids = [s["id"] for s in schemas["Resources"]]
    assert ids == [CORE_USER, "urn:ietf:params:scim:schemas:core:2.0:Group",
                   "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                   "urn:idm:params:scim:schemas:extension:idm:2.0:User"]
    user_schema = scim.get(f"/Schemas/{CORE_USER}").doc
    assert user_schema["attributes"][0]["name"] == "userName"
    assert user_schema["meta"]["location"] == f"http://testserver/scim/v2/Schemas/{CORE_USER}"
    error(scim.get("/Schemas/urn:nope"), 404)
    error(scim.get("/ResourceTypes/Nope"), 404)


def test_post_search(scim):
    ids = [scim.post("/Users", {"userName": f"u{i}"}).doc["id"] for i in range(3)]
    response = scim.post("/Users/.search", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                                            "filter": 'userName sw "u"', "startIndex": 2, "count": 1,
                                            "attributes": ["userName"]})
    assert response.status_code == 200
    assert response.doc["totalResults"] == 3 and [r["id"] for r in response.doc["Resources"]] == [ids[1]]
    assert set(response.doc["Resources"][0]) == {"schemas", "id", "userName"}
    assert scim.post("/.search", {"filter": 'userName eq "u2"'}).doc["Resources"][0]["id"] == ids[2]
    error(scim.post("/Users/.search", {"count": "ten"}), 400, "invalidValue")
    error(scim.get("/Users/.search"), 405)


def test_request_log_has_no_bodies_or_tokens(scim, provider):
    scim.post("/Users", {"userName": "ann", "password": "Secret-Password-1"})
    scim.get('/Users?filter=bad')
    rows = list(ScimRequest.objects.order_by("id").values("method", "path", "status", "scim_type"))
    assert rows == [{"method": "POST", "path": "/scim/v2/Users", "status": 201, "scim_type": ""},
                    {"method": "GET", "path": "/scim/v2/Users?filter=bad", "status": 400,
                     "scim_type": "invalidFilter"}]
    dump = str(list(ScimRequest.objects.values()))
    assert "Secret-Password-1" not in dump and provider[1] not in dump
