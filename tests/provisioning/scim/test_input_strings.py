"""Review 2026-11-30 F6 and F11: strings the database cannot store are 400 ``invalidValue`` naming the
attribute (not a 500 on PostgreSQL or SQLite), and a 409 does not say who holds a userName."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User

from accounts.models import ExternalIdentity
from provisioning.scim.models import ScimResource

pytestmark = pytest.mark.django_db
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
NUL, SURROGATE = "\u0000", "\ud800"


def user_body(**extra):
    return {"schemas": [CORE_USER], "userName": "ann@example.com", "name": {"givenName": "Ann"}, **extra}


def raw(body) -> bytes:
    # json.dumps escapes both as \u0000 / \ud800, which is how a provider would send them.
    return json.dumps(body).encode()


@pytest.mark.parametrize(("body", "attribute"), [
    (user_body(title="t" + NUL), "title"),
    (user_body(title=SURROGATE), "title"),
    (user_body(name={"givenName": "g" + NUL}), "name.givenName"),
    (user_body(externalId="e" + NUL), "externalId"),
    (user_body(userName="sur" + SURROGATE + "x"), "userName"),
    (user_body(userName="ann" + NUL), "userName"),
    (user_body(emails=[{"value": "a@x.example" + NUL}]), "emails[0].value"),
    (user_body(**{ENTERPRISE: {"department": "d" + SURROGATE}}), f"{ENTERPRISE}.department"),
    (user_body(**{"nick" + NUL: "x"}), "An attribute name"),
])
def test_post_user_with_unstorable_string_is_400_naming_the_attribute(scim, body, attribute):
    response = scim.call("POST", "/Users", raw=raw(body))
    assert response.status_code == 400, response.content
    assert response.doc["scimType"] == "invalidValue"
    assert response.doc["detail"].startswith(attribute)
    assert "cannot be stored" in response.doc["detail"]
    assert not User.objects.filter(username__startswith="ann").exists()
    assert not ScimResource.objects.exists()


def test_patch_and_put_with_unstorable_values_are_refused_and_change_nothing(scim):
    created = scim.post("/Users", user_body(title="Engineer"))
    assert created.status_code == 201
    uid = created.doc["id"]
    patch = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": "x" + NUL}]}
    response = scim.call("PATCH", f"/Users/{uid}", raw=raw(patch))
    assert response.status_code == 400 and response.doc["scimType"] == "invalidValue"
    assert response.doc["detail"].startswith("Operations[0].value ")
    response = scim.call("PUT", f"/Users/{uid}", raw=raw(user_body(title="Eng", name={"familyName": SURROGATE})))
    assert response.status_code == 400 and response.doc["detail"].startswith("name.familyName ")
    assert scim.get(f"/Users/{uid}").doc["title"] == "Engineer"


@pytest.mark.parametrize(("body", "attribute"), [
    ({"schemas": [CORE_GROUP], "displayName": "a" + NUL + "b"}, "displayName"),
    ({"schemas": [CORE_GROUP], "displayName": "Sales", "externalId": SURROGATE}, "externalId"),
    ({"schemas": [CORE_GROUP], "displayName": "Sales", "members": [{"value": "x" + NUL}]}, "members[0].value"),
])
def test_post_group_with_unstorable_string_is_400(scim, body, attribute):
    response = scim.call("POST", "/Groups", raw=raw(body))
    assert response.status_code == 400, response.content
    assert response.doc["scimType"] == "invalidValue"
    assert response.doc["detail"].startswith(attribute + " ")
    assert not ScimResource.objects.exists()


def test_filter_with_nul_is_400_not_500(scim):
    response = scim.get("/Users?filter=userName%20eq%20%22a%00b%22")
    assert response.status_code == 400, response.content
    assert response.doc["scimType"] == "invalidFilter"


def test_409_does_not_say_whether_a_local_user_holds_the_name(scim, user_factory):
    user_factory(username="alice.admin")
    response = scim.post("/Users", {"schemas": [CORE_USER], "userName": "ALICE.ADMIN"})
    assert response.status_code == 409
    assert response.doc["scimType"] == "uniqueness"
    assert response.doc["detail"] == "userName is already taken."


def test_409_does_not_name_another_providers_user(scim, other_scim):
    assert other_scim.post("/Users", {"schemas": [CORE_USER], "userName": "b.one"}).status_code == 201
    response = scim.post("/Users", {"schemas": [CORE_USER], "userName": "B.One"})
    assert (response.status_code, response.doc["scimType"]) == (409, "uniqueness")
    assert response.doc["detail"] == "userName is already taken."
    assert ExternalIdentity.objects.count() == 1
