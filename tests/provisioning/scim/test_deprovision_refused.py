"""Review F4: a deprovisioning the identity service refuses is a SCIM error, never a success.

A provider may not block a Customer Cloud Admin (granted by hand to a user the provider owns). Before
the fix, PATCH active=false answered 200 and DELETE 204 (the resource then 404) while the user stayed
active; the journal said "applied". Now both are refused with a SCIM error document and nothing of
the request is kept: the user is active, the SCIM resource is still there and active.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from accounts.identity.service import apply_identity_change
from accounts.identity.types import Actor, IdentityChange, Mode
from accounts.models import AuditEvent
from provisioning.scim.models import ScimResource

pytestmark = pytest.mark.django_db
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


@pytest.fixture
def cloud_admin_owned_by_provider(admin_user, scim):
    response = scim.post("/Users", {"schemas": [USER], "userName": "a.one",
                                    "emails": [{"value": "a.one@corp.example", "primary": True}]})
    assert response.status_code == 201, response.doc
    user = User.objects.get(username="a.one")
    apply_identity_change(change=IdentityChange(user_id=user.pk, mode=Mode.UPDATE,
                                                roles_add=frozenset({"customer-cloud-admin"})),
                          actor=Actor.for_user(admin_user))
    return response.doc["id"], user


def _assert_untouched(scim, scim_id, user):
    user.refresh_from_db()
    assert user.is_active and user.profile.state == "active"
    assert not AuditEvent.objects.filter(action="user.blocked", target_id=str(user.pk)).exists()
    resource = ScimResource.objects.get(scim_id=scim_id)
    assert resource.active is True and resource.deleted_at is None
    got = scim.get(f"/Users/{scim_id}")
    assert got.status_code == 200 and got.doc["active"] is True


def test_patch_active_false_refused_for_a_cloud_admin(scim, cloud_admin_owned_by_provider):
    scim_id, user = cloud_admin_owned_by_provider
    response = scim.patch(f"/Users/{scim_id}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "active", "value": False}]})
    assert response.status_code == 400, response.doc
    assert response.doc["schemas"] == [ERROR] and response.doc["status"] == "400"
    assert response.doc["scimType"] == "mutability" and "Cloud Admin" in response.doc["detail"]
    _assert_untouched(scim, scim_id, user)


def test_delete_refused_for_a_cloud_admin(scim, cloud_admin_owned_by_provider):
    scim_id, user = cloud_admin_owned_by_provider
    response = scim.delete(f"/Users/{scim_id}")
    assert response.status_code == 400, response.content
    assert response.doc["scimType"] == "mutability"
    _assert_untouched(scim, scim_id, user)


def test_put_active_false_refused_for_a_cloud_admin(scim, cloud_admin_owned_by_provider):
    scim_id, user = cloud_admin_owned_by_provider
    current = scim.get(f"/Users/{scim_id}").doc
    body = {"schemas": [USER], "userName": current["userName"], "active": False,
            "emails": current.get("emails", [])}
    response = scim.put(f"/Users/{scim_id}", body)
    assert response.status_code == 400, response.doc
    _assert_untouched(scim, scim_id, user)


def test_a_plain_user_is_still_deprovisioned(scim):
    created = scim.post("/Users", {"schemas": [USER], "userName": "b.two",
                                   "emails": [{"value": "b.two@corp.example", "primary": True}]})
    scim_id = created.doc["id"]
    assert scim.delete(f"/Users/{scim_id}").status_code == 204
    user = User.objects.get(username="b.two")
    assert user.profile.state == "blocked"
    assert scim.get(f"/Users/{scim_id}").status_code == 404
