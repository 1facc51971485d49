"""SCIM resource ids in paths: only the server-assigned format reaches the database (review N5).

On PostgreSQL a NUL in a query parameter is a ``DataError``; before the ``server_id`` converter,
every method on /Users/a%00b and /Groups/a%00b was a 500 there instead of a SCIM 404 document.
"""

import pytest

from tests.provisioning.scim.test_protocol import error

NOT_IDS = ["a%00b", "%00", "0" * 31 + "%00", "A" * 32, "0" * 33, "x%00" * 40]


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
def test_non_ids_are_scim_404_for_every_method(scim, method):
    user = scim.post("/Users", {"userName": "path.ids"})
    group = scim.post("/Groups", {"displayName": "Path ids"})
    assert user.status_code == group.status_code == 201
    assert scim.get(f"/Users/{user.doc['id']}").status_code == 200
    assert scim.get(f"/Groups/{group.doc['id']}").status_code == 200
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": []} \
        if method in ("PATCH", "PUT") else None
    for collection in ("Users", "Groups"):
        for bad in NOT_IDS:
            error(scim.call(method, f"/{collection}/{bad}", body), 404)
