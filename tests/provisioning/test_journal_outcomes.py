"""The journal records what the identity service really did: a change it refused is journaled as
refused with its code and message, never as applied (role grants a source ends, state changes, the
deactivation sweep, users gone from the source)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from accounts.identity.service import apply_identity_change
from accounts.identity.types import IdentityChange, Mode, UserState
from accounts.models import Role, UserProfile
from accounts.roles import CUSTOMER_CLOUD_ADMIN
from provisioning.inbound import SourceUser, apply_source_users
from provisioning.lifecycle import deactivate_due
from provisioning.models import JournalEntry, MappingRule, RoleGrant, UserBlock
from provisioning.reapply import reapply_rules
from provisioning.rules import SourceRecord


def role_rule(source, group: str, *roles: str) -> MappingRule:
    rule = MappingRule.objects.create(source=source, kind="role", condition="member_of_group", value=group,
                                      saved_by_cloud_admin=True)
    rule.roles.set(Role.objects.filter(slug__in=roles))
    return rule


def make_cloud_admin(user, admin_actor) -> None:
    apply_identity_change(change=IdentityChange(user_id=user.pk, mode=Mode.UPDATE,
                                                roles_add=frozenset({CUSTOMER_CLOUD_ADMIN})), actor=admin_actor)


def entries(run, subject: str) -> list[JournalEntry]:
    return list(run.entries.filter(subject=subject))


def state_of(user) -> str:
    return UserProfile.objects.get(user=user).state


def ann_granted_help_desk_by_source_and_by_hand(source_factory, linked_user, admin_actor):
    """Ann holds help-desk by hand and through the source's rule, and is then made a Cloud Admin,
    whom a source may never change (``target_more_privileged``)."""
    source = source_factory("Okta")
    rule = role_rule(source, "Engineering", "help-desk")
    ann = linked_user(source, "ann", record=SourceRecord.build(groups=["Engineering"]), roles=["help-desk"])
    assert reapply_rules(source=source).status == "succeeded"
    assert RoleGrant.objects.filter(user=ann, role__slug="help-desk", source=source).exists()
    make_cloud_admin(ann, admin_actor)
    return source, rule, ann


def test_refused_change_journals_the_role_grant_as_refused(source_factory, linked_user, admin_actor):
    source, rule, ann = ann_granted_help_desk_by_source_and_by_hand(source_factory, linked_user, admin_actor)
    # The rule now grants console-user instead: the source would add console-user and end its
    # help-desk grant (help-desk stays, held by hand). Ann is a Cloud Admin: the service refuses.
    rule.roles.set(Role.objects.filter(slug="console-user"))

    run = reapply_rules(source=source)

    assert run.counts["refused"] == 1 and run.counts["updated"] == 0
    [grant_entry] = entries(run, "role_grant")
    assert grant_entry.result == JournalEntry.Result.REFUSED
    assert grant_entry.code == "target_more_privileged"
    assert "Customer Cloud Admin" in grant_entry.message
    assert grant_entry.old_value == ["help-desk"]
    [change_entry] = entries(run, "change")
    assert change_entry.result == JournalEntry.Result.REFUSED
    assert not run.entries.filter(result=JournalEntry.Result.APPLIED).exists()
    # And the journal matches the data: the source's grant row is still there.
    assert RoleGrant.objects.filter(user=ann, role__slug="help-desk", source=source).exists()


def test_dry_run_journals_the_same_refusal(source_factory, linked_user, admin_actor):
    source, rule, ann = ann_granted_help_desk_by_source_and_by_hand(source_factory, linked_user, admin_actor)
    rule.roles.set(Role.objects.filter(slug="console-user"))

    run = reapply_rules(source=source, dry_run=True)

    [grant_entry] = entries(run, "role_grant")
    assert (grant_entry.result, grant_entry.code) == (JournalEntry.Result.REFUSED, "target_more_privileged")
    assert not run.entries.filter(result=JournalEntry.Result.PLANNED).exists()


def test_accepted_release_is_journaled_as_applied(source_factory, linked_user):
    source = source_factory("Okta")
    rule = role_rule(source, "Engineering", "help-desk")
    ann = linked_user(source, "ann", record=SourceRecord.build(groups=["Engineering"]), roles=["help-desk"])
    reapply_rules(source=source)
    rule.roles.set(Role.objects.filter(slug="console-user"))

    run = reapply_rules(source=source)

    [grant_entry] = entries(run, "role_grant")
    assert (grant_entry.result, grant_entry.code) == (JournalEntry.Result.APPLIED, "")
    assert not RoleGrant.objects.filter(user=ann, role__slug="help-desk", source=source).exists()


def test_refused_block_is_journaled_as_refused(source_factory, linked_user, admin_actor):
    source = source_factory("Okta")
    ann = linked_user(source, "ann", record=SourceRecord.build(groups=["Leavers"]))
    make_cloud_admin(ann, admin_actor)
    MappingRule.objects.create(source=source, kind="active", condition="member_of_group", value="Leavers")

    for dry_run in (True, False):
        run = reapply_rules(source=source, dry_run=dry_run)
        [state_entry] = entries(run, "state")
        assert state_entry.result == JournalEntry.Result.REFUSED, dry_run
        assert state_entry.code == "target_more_privileged"
        assert state_entry.new_value == "blocked"
        assert run.counts["blocked"] == 0 and run.counts["refused"] == 1
    assert state_of(ann) == UserState.ACTIVE
    assert not UserBlock.objects.filter(user=ann).exists()


def test_accepted_block_is_journaled_as_applied(source_factory, linked_user):
    source = source_factory("Okta")
    bob = linked_user(source, "bob", record=SourceRecord.build(groups=["Leavers"]))
    MappingRule.objects.create(source=source, kind="active", condition="member_of_group", value="Leavers")

    run = reapply_rules(source=source)

    [state_entry] = entries(run, "state")
    assert (state_entry.result, state_entry.user_label) == (JournalEntry.Result.APPLIED, "bob")
    assert state_of(bob) == UserState.BLOCKED


def test_gone_users_are_journaled_by_outcome(source_factory, linked_user, admin_actor):
    """``apply_source_users(complete=True)``: a gone Cloud Admin's block is refused, a gone user's
    applied, and a user already blocked is not journaled as blocked again on the next run."""
    source = source_factory("Okta")
    ann = linked_user(source, "ann")
    bob = linked_user(source, "bob")
    make_cloud_admin(ann, admin_actor)
    carl = SourceUser(external_id="ext-carl", record=SourceRecord.build(attributes={"userName": "carl"}),
                      username="carl", email="carl@example.com")

    run = apply_source_users(source=source, users=[carl], complete=True)

    by_user = {e.user_id: e for e in entries(run, "state")}
    assert by_user[ann.pk].result == JournalEntry.Result.REFUSED
    assert by_user[ann.pk].code == "target_more_privileged"
    assert by_user[bob.pk].result == JournalEntry.Result.APPLIED
    assert by_user[bob.pk].message == "gone from the source"
    assert state_of(ann) == UserState.ACTIVE and state_of(bob) == UserState.BLOCKED
    assert run.counts["blocked"] == 1

    again = apply_source_users(source=source, users=[carl], complete=True)
    assert bob.pk not in {e.user_id for e in entries(again, "state")}


def test_sweep_journals_a_refused_deactivation(source_factory, linked_user, admin_actor):
    """A user blocked by the source who became a Cloud Admin meanwhile: the sweep's deactivation is
    refused by the service and journaled as refused, not dropped."""
    source = source_factory("Okta")
    ann = linked_user(source, "ann", record=SourceRecord.build(groups=["Leavers"]))
    MappingRule.objects.create(source=source, kind="active", condition="member_of_group", value="Leavers")
    reapply_rules(source=source)
    assert state_of(ann) == UserState.BLOCKED
    make_cloud_admin(ann, admin_actor)

    counts = deactivate_due(now=timezone.now() + source.grace_period + timedelta(minutes=1))

    assert counts.deactivated == 0 and counts.refused == 1
    entry = JournalEntry.objects.get(run__kind="lifecycle", user_id=ann.pk)
    assert (entry.result, entry.code) == (JournalEntry.Result.REFUSED, "target_more_privileged")
    assert state_of(ann) == UserState.BLOCKED
