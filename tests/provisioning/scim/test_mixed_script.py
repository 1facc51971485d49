"""Second review N9 through SCIM: a provider cannot create "аdmin" (Cyrillic "а") beside "admin"."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from provisioning.scim.models import ScimResource

pytestmark = pytest.mark.django_db


def test_post_and_patch_of_a_mixed_script_username_are_400(scim):
    assert scim.post("/Users", {"userName": "admin.ops"}).status_code == 201
    response = scim.post("/Users", {"userName": "\u0430dmin.ops"})
    assert response.status_code == 400, response.content
    assert response.doc["scimType"] == "invalidValue" and "alphabet" in response.doc["detail"]
    assert list(User.objects.values_list("username", flat=True)) == ["admin.ops"]
    other = scim.post("/Users", {"userName": "\u0430\u0434\u043c\u0438\u043d"})  # Cyrillic only: allowed
    assert other.status_code == 201
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "replace", "path": "userName", "value": "\u0430\u0434\u043c\u0438n"}]}
    assert scim.patch(f"/Users/{other.doc['id']}", patch).status_code == 400
    assert ScimResource.objects.count() == 2
