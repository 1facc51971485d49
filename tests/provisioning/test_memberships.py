"""Directory-group membership operations: one-member changes cost the same at 20k members."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.exceptions import PolicyDenied
from accounts.identity.memberships import group_members_add, group_members_remove, group_members_replace
from accounts.identity.types import Actor
from accounts.models import AuditEvent, DirectoryGroup

OKTA = Actor.provider_actor(source="scim", provider="okta", label="Okta")


def make_group(name: str, members: list[int]) -> DirectoryGroup:
    group = Group.objects.create(name=f"dir:{name}")
    Membership = User.groups.through
    Membership.objects.bulk_create([Membership(group=group, user_id=uid) for uid in members], batch_size=5000)
    return DirectoryGroup.objects.create(group=group, display_name=name, source="scim", provider="okta",
                                         external_id=name)


def _users(count: int) -> list[int]:
    password = make_password(None)
    User.objects.bulk_create([User(username=f"m{i}", password=password) for i in range(count)], batch_size=5000)
    return list(User.objects.filter(username__startswith="m").order_by("pk").values_list("pk", flat=True))


@pytest.fixture
def many_users(db):
    return _users(20_010)


@pytest.fixture
def few_users(db):
    return _users(20)


def queries(call) -> int:
    with CaptureQueriesContext(connection) as ctx:
        call()
    return len(ctx.captured_queries)


def test_one_member_change_costs_the_same_for_10_and_20000_members(many_users):
    small = make_group("small", many_users[:10])
    big = make_group("big", many_users[:20_000])
    newcomer, other = many_users[20_005], many_users[20_006]
    add_small = queries(lambda: group_members_add(actor=OKTA, dgroup=small, user_ids=[newcomer]))
    add_big = queries(lambda: group_members_add(actor=OKTA, dgroup=big, user_ids=[newcomer]))
    assert add_small == add_big
    assert add_big <= 8
    remove_small = queries(lambda: group_members_remove(actor=OKTA, dgroup=small, user_ids=[newcomer]))
    remove_big = queries(lambda: group_members_remove(actor=OKTA, dgroup=big, user_ids=[newcomer]))
    assert remove_small == remove_big <= 8
    assert big.group.user_set.count() == 20_000
    assert not group_members_remove(actor=OKTA, dgroup=big, user_ids=[other]).removed


def test_add_remove_audit_each_membership(few_users):
    dgroup = make_group("eng", few_users[:3])
    result = group_members_add(actor=OKTA, dgroup=dgroup, user_ids=[few_users[0], few_users[5], 10**9])
    assert result.added == [few_users[5]]
    assert result.unknown == [10**9]
    event = AuditEvent.objects.get(action="group.member_added")
    assert (event.target_label, event.field, event.new_value, event.actor_label) == ("m5", "groups", "eng", "Okta")
    result = group_members_remove(actor=OKTA, dgroup=dgroup, user_ids=[few_users[1], few_users[9]])
    assert result.removed == [few_users[1]]
    assert AuditEvent.objects.get(action="group.member_removed").old_value == "eng"


def test_replace_writes_only_the_difference(few_users):
    dgroup = make_group("ops", few_users[:5])
    result = group_members_replace(actor=OKTA, dgroup=dgroup, user_ids=few_users[3:8])
    assert sorted(result.removed) == few_users[:3]
    assert sorted(result.added) == few_users[5:8]
    assert sorted(dgroup.group.user_set.values_list("pk", flat=True)) == few_users[3:8]
    assert AuditEvent.objects.filter(action__startswith="group.member_").count() == 6


def test_dry_run_writes_nothing(few_users):
    dgroup = make_group("dry", few_users[:2])
    result = group_members_replace(actor=OKTA, dgroup=dgroup, user_ids=few_users[1:4], dry_run=True)
    assert (result.added, result.removed) == (few_users[2:4], few_users[:1])
    assert sorted(dgroup.group.user_set.values_list("pk", flat=True)) == few_users[:2]
    assert not AuditEvent.objects.filter(action__startswith="group.member_").exists()


def test_only_the_owning_source_changes_a_group(few_users, admin_actor):
    dgroup = make_group("owned", [])
    other = Actor.provider_actor(source="scim", provider="entra", label="Entra")
    with pytest.raises(PolicyDenied) as info:
        group_members_add(actor=other, dgroup=dgroup, user_ids=[few_users[0]])
    assert (info.value.code, info.value.field) == ("group_not_owner", "groups")
    assert "managed by SCIM provisioning" in info.value.message
    with pytest.raises(PolicyDenied) as info:
        group_members_add(actor=admin_actor, dgroup=dgroup, user_ids=[few_users[0]])
    assert info.value.code == "group_not_owner"
    with pytest.raises(PolicyDenied) as info:
        group_members_remove(actor=admin_actor, dgroup=dgroup, user_ids=[few_users[0]])
    assert info.value.code == "group_not_owner"
    assert not dgroup.group.user_set.exists()


def test_membership_rows_that_appeared_meanwhile_are_skipped_not_an_error(db):
    """``_insert_memberships`` writes rows checked a moment before; a concurrent writer may have
    added one since (the COPY then conflicts): the rows go in again, skipping it."""
    from accounts.identity.memberships import COPY_MIN, _insert_memberships

    users = _users(COPY_MIN + 10)
    group = make_group("raced", users[5:6])
    _insert_memberships(group.group_id, users)
    assert sorted(group.group.user_set.values_list("pk", flat=True)) == sorted(users)
