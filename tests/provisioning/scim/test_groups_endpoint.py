"""/scim/v2/Groups: create, members by difference, rename, delete, rules re-evaluated on membership."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent, DirectoryGroup, Role
from provisioning.models import MappingRule
from provisioning.scim.models import ScimResource

pytestmark = pytest.mark.django_db
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def user_ids(scim, *names):
    out = []
    for name in names:
        response = scim.post("/Users", {"schemas": [CORE_USER], "userName": name})
        assert response.status_code == 201, response.doc
        out.append(response.doc["id"])
    return out


def members_of(display_name):
    dgroup = DirectoryGroup.objects.get(display_name=display_name)
    return sorted(User.objects.filter(groups=dgroup.group).values_list("username", flat=True))


def test_create_with_members_and_read_back(scim, provider):
    source, _ = provider
    a, b = user_ids(scim, "a", "b")
    response = scim.post("/Groups", {"schemas": [CORE_GROUP], "displayName": "Engineering", "externalId": "g-1",
                                     "members": [{"value": a}, {"value": b}]})
    assert response.status_code == 201, response.doc
    gid = response.doc["id"]
    assert response.doc["members"] == [
        {"value": a, "display": "a", "type": "User", "$ref": f"http://testserver/scim/v2/Users/{a}"},
        {"value": b, "display": "b", "type": "User", "$ref": f"http://testserver/scim/v2/Users/{b}"},
    ]
    assert members_of("Engineering") == ["a", "b"]
    dgroup = DirectoryGroup.objects.get(display_name="Engineering")
    assert (dgroup.source, dgroup.provider, dgroup.external_id) == ("scim", source.slug, "g-1")
    assert AuditEvent.objects.filter(action="group.member_added").count() == 2
    slim = scim.get(f"/Groups/{gid}?excludedAttributes=members").doc
    assert "members" not in slim and slim["displayName"] == "Engineering"
    listed = scim.get('/Groups?filter=displayName eq "engineering"&excludedAttributes=members').doc
    assert listed["totalResults"] == 1 and "members" not in listed["Resources"][0]
    by_member = scim.get(f'/Groups?filter=members.value eq "{b}"').doc
    assert [g["id"] for g in by_member["Resources"]] == [gid]


def test_patch_members_add_remove_and_rename(scim):
    a, b, c = user_ids(scim, "a", "b", "c")
    gid = scim.post("/Groups", {"displayName": "Eng", "members": [{"value": a}]}).doc["id"]
    add = scim.patch(f"/Groups/{gid}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": b}, {"value": c}]}]})
    assert add.status_code == 204 and add.content == b"" and add["ETag"] == 'W/"2"'
    assert members_of("Eng") == ["a", "b", "c"]
    remove = scim.patch(f"/Groups/{gid}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "remove", "path": f'members[value eq "{a}"]'},
        {"op": "replace", "value": {"id": gid, "displayName": "Eng EU"}}]})
    assert remove.status_code == 204 and remove["ETag"] == 'W/"3"'
    assert scim.get(f"/Groups/{gid}").doc["displayName"] == "Eng EU" and members_of("Eng EU") == ["b", "c"]
    replace = scim.patch(f"/Groups/{gid}?excludedAttributes=members", {"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "members", "value": [{"value": a}]}]})
    assert replace.status_code == 200 and replace.doc["meta"]["version"] == 'W/"4"' and "members" not in replace.doc
    assert members_of("Eng EU") == ["a"]


def test_member_only_patch_cost_does_not_grow_with_the_group(scim):
    ids = user_ids(scim, *[f"u{i}" for i in range(32)])
    small = scim.post("/Groups", {"displayName": "Small", "members": [{"value": i} for i in ids[:2]]}).doc["id"]
    big = scim.post("/Groups", {"displayName": "Big", "members": [{"value": i} for i in ids[2:31]]}).doc["id"]

    def patch_counting(gid, add, remove):
        body = {"schemas": [PATCH_OP], "Operations": [
            {"op": "add", "path": "members", "value": [{"value": add}]},
            {"op": "remove", "path": f'members[value eq "{remove}"]'},
            {"op": "remove", "path": "members", "value": [{"value": "not-a-member"}]}]}
        with CaptureQueriesContext(connection) as queries:
            response = scim.patch(f"/Groups/{gid}", body)
        assert response.status_code == 204
        return len(queries)

    assert patch_counting(small, ids[31], ids[0]) == patch_counting(big, ids[31], ids[2])
    assert members_of("Small") == ["u1", "u31"]
    assert members_of("Big") == sorted(f"u{i}" for i in range(3, 32))
    unknown_add = scim.patch(f"/Groups/{big}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": "nobody"}]}]})
    assert unknown_add.status_code == 400 and unknown_add.doc["scimType"] == "invalidValue"


def test_unknown_member_is_invalid_value_and_nothing_changes(scim, other_scim):
    (a,) = user_ids(scim, "a")
    (foreign,) = user_ids(other_scim, "x")
    gid = scim.post("/Groups", {"displayName": "Eng", "members": [{"value": a}]}).doc["id"]
    response = scim.patch(f"/Groups/{gid}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "value": {"displayName": "Renamed"}},
        {"op": "add", "path": "members", "value": [{"value": foreign}]}]})
    assert response.status_code == 400 and response.doc["scimType"] == "invalidValue"
    assert response.doc["detail"] == f"No user with id {foreign} (members must be this provider's users)."
    assert members_of("Eng") == ["a"]  # the rename was rolled back with it
    assert other_scim.get(f"/Groups/{gid}").status_code == 404


def test_put_replaces_members(scim):
    a, b = user_ids(scim, "a", "b")
    gid = scim.post("/Groups", {"displayName": "Eng", "members": [{"value": a}]}).doc["id"]
    response = scim.put(f"/Groups/{gid}", {"schemas": [CORE_GROUP], "displayName": "Eng",
                                           "members": [{"value": b}]})
    assert response.status_code == 200 and members_of("Eng") == ["b"]


def test_delete_group_removes_memberships_and_answers_404_after(scim):
    (a,) = user_ids(scim, "a")
    gid = scim.post("/Groups", {"displayName": "Eng", "members": [{"value": a}]}).doc["id"]
    assert scim.delete(f"/Groups/{gid}").status_code == 204
    assert not DirectoryGroup.objects.filter(display_name="Eng").exists()
    assert not ScimResource.objects.filter(scim_id=gid).exists()
    assert scim.get(f"/Groups/{gid}").status_code == 404
    assert not User.objects.get(username="a").groups.filter(directory_group__isnull=False).exists()


def test_membership_change_re_evaluates_role_rules(scim, provider):
    source, _ = provider
    role = Role.objects.filter(is_admin_role=False).first()
    rule = MappingRule.objects.create(source=source, kind="role", condition="member_of_group", value="Helpdesk")
    rule.roles.set([role])
    (a,) = user_ids(scim, "a")
    gid = scim.post("/Groups", {"displayName": "Helpdesk"}).doc["id"]
    user = User.objects.get(username="a")
    assert not user.groups.filter(pk=role.group_id).exists()
    scim.patch(f"/Groups/{gid}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": a}]}]})
    assert user.groups.filter(pk=role.group_id).exists()
    scim.patch(f"/Groups/{gid}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "remove", "path": "members", "value": [{"value": a}]}]})
    assert not user.groups.filter(pk=role.group_id).exists()
