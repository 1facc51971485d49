"""Member PATCHes that no mapping rule reads skip the provisioning run (service.refresh_rules).

The fast path must leave what the slow path leaves: the membership (through the identity service,
audited with the provider as actor and the request id) and the user's stored source record with
the new groups. Only a change a rule can see goes through a run with its journal.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent, ExternalIdentity, Role
from provisioning.models import JournalEntry, MappingRule, ProvisioningRun
from provisioning.resolve import stored_record

pytestmark = pytest.mark.django_db
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def new_user(scim, name):
    response = scim.post("/Users", {"userName": name})
    assert response.status_code == 201, response.doc
    return response.doc["id"]


def add_member(scim, gid, sid, request_id):
    response = scim.patch(f"/Groups/{gid}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": sid}]}]}, HTTP_X_REQUEST_ID=request_id)
    assert response.status_code == 204, response.doc
    return response


def stored_groups(username):
    raw = ExternalIdentity.objects.get(user__username=username).raw
    return stored_record(raw).groups


def member_events(username):
    user = User.objects.get(username=username)
    return list(AuditEvent.objects.filter(action="group.member_added", target_id=str(user.pk))
                .values_list("actor_label", "source", "request_id"))


def test_member_change_no_rule_reads_skips_the_run_and_leaves_what_the_run_leaves(scim, provider):
    source, _ = provider
    # A rule on another group: the fast path must still tell "Eng" from "Other".
    rule = MappingRule.objects.create(source=source, kind="role", condition="member_of_group", value="Other")
    rule.roles.set([Role.objects.filter(is_admin_role=False).first()])
    fast, slow = new_user(scim, "fast"), new_user(scim, "slow")
    gid = scim.post("/Groups", {"displayName": "Eng"}).doc["id"]
    # No stored record: the rules cannot compare old and new, so this user takes the slow path.
    ExternalIdentity.objects.filter(user__username="slow").update(raw={})
    runs = ProvisioningRun.objects.count()

    add_member(scim, gid, fast, "fastreq1")
    assert ProvisioningRun.objects.count() == runs  # fast: no run
    add_member(scim, gid, slow, "slowreq1")
    assert ProvisioningRun.objects.count() == runs + 1  # slow: one run...
    slow_run = ProvisioningRun.objects.latest("started_at", "id")
    assert slow_run.counts["unchanged"] == 1 and not slow_run.entries.exists()  # ...that changed nothing

    assert stored_groups("fast") == stored_groups("slow") == {"eng", gid}
    assert member_events("fast") == [("Okta", "scim", "fastreq1")]
    assert member_events("slow") == [("Okta", "scim", "slowreq1")]

    response = scim.patch(f"/Groups/{gid}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "remove", "path": f'members[value eq "{fast}"]'}]})
    assert response.status_code == 204
    assert stored_groups("fast") == frozenset()
    assert ProvisioningRun.objects.count() == runs + 1


def test_member_change_a_rule_reads_is_journaled_with_the_request_id(scim, provider):
    source, _ = provider
    role = Role.objects.filter(is_admin_role=False).first()
    rule = MappingRule.objects.create(source=source, kind="role", condition="member_of_group", value="Helpdesk")
    rule.roles.set([role])
    sid = new_user(scim, "a")
    gid = scim.post("/Groups", {"displayName": "Helpdesk"}).doc["id"]
    add_member(scim, gid, sid, "rolereq1")

    user = User.objects.get(username="a")
    assert user.groups.filter(pk=role.group_id).exists()
    run = ProvisioningRun.objects.filter(source=source, kind="scim_request").latest("started_at")
    entry = JournalEntry.objects.get(run=run, user=user)
    assert entry.subject == "roles" and entry.result == "applied"
    assert AuditEvent.objects.filter(target_id=str(user.pk), field="roles", request_id="rolereq1",
                                     actor_label="Okta").exists()
    assert stored_groups("a") == {"helpdesk", gid}


def test_member_change_no_rule_reads_costs_fewer_queries_than_one_a_rule_reads(scim, provider):
    source, _ = provider
    a, b = new_user(scim, "a"), new_user(scim, "b")
    plain = scim.post("/Groups", {"displayName": "Plain"}).doc["id"]
    watched = scim.post("/Groups", {"displayName": "Watched"}).doc["id"]
    rule = MappingRule.objects.create(source=source, kind="role", condition="member_of_group", value="Watched")
    rule.roles.set([Role.objects.filter(is_admin_role=False).first()])

    def counted(gid, sid):
        with CaptureQueriesContext(connection) as queries:
            add_member(scim, gid, sid, "countreq")
        return len(queries)

    assert counted(plain, a) < counted(watched, b)


def test_every_event_of_a_user_patch_carries_the_request_id(scim, provider):
    """The rules step and the lifecycle's block audit with the request id too, not only the profile step."""
    sid = new_user(scim, "a")
    first = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    response = scim.patch(f"/Users/{sid}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "active", "value": False}]}, HTTP_X_REQUEST_ID="blockreq1")
    assert response.status_code == 200 and response.doc["active"] is False
    events = list(AuditEvent.objects.filter(id__gt=first).values_list("actor_label", "request_id"))
    assert events and set(events) == {("Okta", "blockreq1")}
    assert not User.objects.get(username="a").is_active


def test_member_patch_if_match_is_checked_when_the_lock_is_taken_and_a_miss_changes_nothing(scim):
    """The member-only PATCH takes the group's row lock last (views._members_patch): If-Match is
    compared there, and a stale version rolls the membership, audit and rule refresh back."""
    a, b = new_user(scim, "ima"), new_user(scim, "imb")
    gid = scim.post("/Groups", {"displayName": "Eng"}).doc["id"]
    body = {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": a}]}]}
    stale = scim.patch(f"/Groups/{gid}", body, HTTP_IF_MATCH='W/"7"')
    assert stale.status_code == 412, stale.doc
    assert scim.get(f"/Groups/{gid}").doc["members"] == []
    assert not AuditEvent.objects.filter(action="group.member_added").exists()
    assert not stored_groups("ima")
    ok = scim.patch(f"/Groups/{gid}", body, HTTP_IF_MATCH='"1", W/"9"')
    assert ok.status_code == 204 and ok["ETag"] == 'W/"2"'
    both = scim.patch(f"/Groups/{gid}?attributes=members", {"schemas": [PATCH_OP], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": b}]},
        {"op": "remove", "path": f'members[value eq "{a}"]'}]}, HTTP_IF_MATCH="*")
    assert both.status_code == 200 and [m["value"] for m in both.doc["members"]] == [b]
    assert both["ETag"] == 'W/"3"'
    assert scim.delete(f"/Groups/{gid}").status_code == 204
    gone = scim.patch(f"/Groups/{gid}", body)
    assert gone.status_code == 404, gone.doc
