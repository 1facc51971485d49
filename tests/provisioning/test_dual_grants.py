"""A role granted both by a source and by another grant (by hand, or by a second source) outlives the
source: when the source stops granting it, only the source's grant row goes."""

from __future__ import annotations

from django.contrib.auth.models import Group, User

from accounts.identity.service import apply_identity_change
from accounts.identity.types import IdentityChange, Mode
from accounts.models import AuditEvent, Role
from provisioning.inbound import SourceUser, apply_source_users
from provisioning.models import JournalEntry, MappingRule, RoleGrant
from provisioning.preview import preview_rules
from provisioning.reapply import reapply_rules
from provisioning.rules import SourceRecord
from tests.provisioning.conftest import provider_actor


def roles_of(user) -> set[str]:
    return set(Group.objects.filter(user=user, role__isnull=False).values_list("role__slug", flat=True))


def grants(user) -> set[tuple[str, str | None]]:
    return set(RoleGrant.objects.filter(user=user).values_list("role__slug", "source__slug"))


def role_rule(source, group: str, *roles: str) -> MappingRule:
    rule = MappingRule.objects.create(source=source, kind="role", condition="member_of_group", value=group,
                                      saved_by_cloud_admin=True)
    rule.roles.set(Role.objects.filter(slug__in=roles))
    return rule


def grant_by_hand(user, role: str, admin_actor) -> None:
    apply_identity_change(change=IdentityChange(user_id=user.pk, mode=Mode.UPDATE, roles_add=frozenset({role})),
                          actor=admin_actor)


def test_reapply_keeps_a_role_also_granted_by_hand(source_factory, linked_user, admin_actor):
    source = source_factory("Okta")
    ann = linked_user(source, "ann", record=SourceRecord.build(groups=["Helpdesk"]), roles=["console-user"])
    rule = role_rule(source, "Helpdesk", "help-desk")
    reapply_rules(source=source)
    grant_by_hand(ann, "help-desk", admin_actor)
    # Granting by hand a role the source already gave records a manual row (audited), roles unchanged.
    assert grants(ann) >= {("help-desk", source.slug), ("help-desk", None)}
    event = AuditEvent.objects.get(action="user.role_granted_by_hand", target_label="ann")
    assert (event.field, event.new_value, event.actor_label) == ("roles", "Help Desk", "admin")

    rule.value = "Nobody"
    rule.save()
    preview = preview_rules(source=source, rules=source.rule_set(), org_policy=source.org_policy())
    assert preview.counts["lose"] == 0  # the preview shows what the run will do: help-desk stays
    run = reapply_rules(source=source)

    assert "help-desk" in roles_of(ann)
    assert ("help-desk", None) in grants(ann)
    assert ("help-desk", source.slug) not in grants(ann)
    entry = JournalEntry.objects.get(run=run, user=ann, subject="role_grant")
    assert (entry.old_value, entry.new_value, entry.result) == (["help-desk"], None, "applied")
    assert not AuditEvent.objects.filter(job_id=run.run_id, action="user.role_removed").exists()
    # A second run has nothing left to do.
    again = reapply_rules(source=source)
    assert again.counts["updated"] == 0
    assert not again.entries.exists()


def test_reapply_still_removes_a_role_only_the_source_granted(source_factory, linked_user):
    source = source_factory("Okta")
    ann = linked_user(source, "ann", record=SourceRecord.build(groups=["Helpdesk"]), roles=["console-user"])
    rule = role_rule(source, "Helpdesk", "help-desk")
    reapply_rules(source=source)
    rule.value = "Nobody"
    rule.save()
    run = reapply_rules(source=source)
    assert "help-desk" not in roles_of(ann)
    assert not RoleGrant.objects.filter(user=ann, role__slug="help-desk").exists()
    entry = JournalEntry.objects.get(run=run, user=ann, subject="roles")
    assert entry.new_value["remove"] == ["help-desk"]
    assert AuditEvent.objects.filter(job_id=run.run_id, action="user.role_removed", target_label="ann").count() == 1


def test_role_granted_by_two_sources_stays_until_both_stop(source_factory, linked_user):
    okta, ldap = source_factory("Okta"), source_factory("Directory", kind="ldap")
    ann = linked_user(okta, "ann", record=SourceRecord.build(groups=["Helpdesk"]), roles=["console-user"])
    # The directory also grants help-desk (its grant row, as its writer records it).
    RoleGrant.objects.create(user=ann, role=Role.objects.get(slug="help-desk"), source=ldap)
    okta_rule = role_rule(okta, "Helpdesk", "help-desk")
    reapply_rules(source=okta)
    assert grants(ann) >= {("help-desk", okta.slug), ("help-desk", ldap.slug)}
    okta_rule.delete()
    reapply_rules(source=okta)
    assert "help-desk" in roles_of(ann)
    assert ("help-desk", okta.slug) not in grants(ann)
    assert ("help-desk", ldap.slug) in grants(ann)


def test_apply_source_users_keeps_a_role_also_granted_by_hand(source_factory, org_factory, admin_actor):
    source = source_factory("Okta", org_mode="fixed", fixed_org=org_factory("Sales"))
    role_rule(source, "Helpdesk", "help-desk")

    def ann(*groups: str) -> SourceUser:
        return SourceUser(external_id="1", username="ann", email="ann@example.com",
                          record=SourceRecord.build(attributes={"userName": "ann"}, groups=groups))

    apply_source_users(source=source, users=[ann("Helpdesk")])
    user = User.objects.get(username="ann")
    grant_by_hand(user, "help-desk", admin_actor)
    run = apply_source_users(source=source, users=[ann()])
    # No role rule matches now: the org's defaults come, help-desk stays (held by hand).
    assert roles_of(user) == {"help-desk", "console-user", "desktop-user"}
    assert grants(user) == {("help-desk", None), ("console-user", source.slug), ("desktop-user", source.slug)}
    assert JournalEntry.objects.get(run=run, user=user, subject="role_grant").old_value == ["help-desk"]
    roles_entry = JournalEntry.objects.get(run=run, user=user, subject="roles")
    assert roles_entry.new_value == {"add": ["console-user", "desktop-user"], "remove": []}


def test_service_refuses_a_provider_removing_a_role_another_grant_holds(source_factory, linked_user, admin_actor):
    """The planner enforces the rule for every provider change, not only for re-applications."""
    source = source_factory("Okta")
    ann = linked_user(source, "ann", roles=["console-user"])  # console-user: a manual grant
    apply_identity_change(change=IdentityChange(user_id=ann.pk, mode=Mode.UPDATE,
                                                roles_add=frozenset({"help-desk"})), actor=provider_actor(source))
    result = apply_identity_change(change=IdentityChange(
        user_id=ann.pk, mode=Mode.UPDATE, roles_remove=frozenset({"console-user", "help-desk"})),
        actor=provider_actor(source))
    assert result.status == "updated"
    assert result.changed_fields == ["roles"]
    assert roles_of(ann) == {"console-user"}  # help-desk (the source's only) went; the manual grant stays
    assert grants(ann) == {("console-user", None)}
    # An admin removing it removes the role and every grant row.
    apply_identity_change(change=IdentityChange(user_id=ann.pk, mode=Mode.UPDATE,
                                                roles_remove=frozenset({"console-user"})), actor=admin_actor)
    assert roles_of(ann) == set()
    assert grants(ann) == set()


def test_release_of_a_role_nothing_else_holds_any_more_removes_it(source_factory, linked_user, admin_actor):
    """The preview planned a release (a manual grant existed); an admin removed the manual grant
    meanwhile: when the source's change arrives, nothing holds the role, so it goes."""
    source = source_factory("Okta")
    ann = linked_user(source, "ann", roles=["console-user"])
    apply_identity_change(change=IdentityChange(user_id=ann.pk, mode=Mode.UPDATE,
                                                roles_add=frozenset({"help-desk"})), actor=provider_actor(source))
    result = apply_identity_change(change=IdentityChange(user_id=ann.pk, mode=Mode.UPDATE,
                                                         grants_release=frozenset({"help-desk"})),
                                   actor=provider_actor(source))
    assert (result.status, result.changed_fields) == ("updated", ["roles"])
    assert roles_of(ann) == {"console-user"}
    assert grants(ann) == {("console-user", None)}
    # A release of a role another grant holds leaves the role and writes no audit event.
    events = AuditEvent.objects.count()
    apply_identity_change(change=IdentityChange(user_id=ann.pk, mode=Mode.UPDATE, roles_add=frozenset({"console-user"})),
                          actor=provider_actor(source))
    assert grants(ann) == {("console-user", None), ("console-user", source.slug)}
    result = apply_identity_change(change=IdentityChange(user_id=ann.pk, mode=Mode.UPDATE,
                                                         grants_release=frozenset({"console-user"})),
                                   actor=provider_actor(source))
    assert result.status == "unchanged"
    assert roles_of(ann) == {"console-user"}
    assert grants(ann) == {("console-user", None)}
    assert AuditEvent.objects.count() == events
