"""apply_source_users: what a SCIM or LDAP front door calls with what the source says."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from accounts.identity.types import UserState
from accounts.models import AuditEvent, ExternalIdentity, Role
from provisioning.inbound import SourceUser, apply_source_users
from provisioning.models import JournalEntry, MappingRule, RoleGrant, UserBlock
from provisioning.resolve import stored_record
from provisioning.rules import SourceRecord


def roles_of(username: str) -> set[str]:
    return set(Group.objects.filter(user__username=username, role__isnull=False).values_list("role__slug", flat=True))


def person(ext: str, username: str, *groups: str, active: bool | None = True, **attributes) -> SourceUser:
    return SourceUser(external_id=ext, username=username, email=f"{username}@example.com", first_name=username.title(),
                      record=SourceRecord.build(attributes={"userName": username, **attributes}, groups=groups,
                                                active=active))


@pytest.fixture
def source(source_factory, org_factory):
    sales = org_factory("Sales")
    source = source_factory("Okta", org_mode="fixed", fixed_org=sales)
    rule = MappingRule.objects.create(source=source, kind="role", condition="member_of_group", value="Helpdesk")
    rule.roles.set(Role.objects.filter(slug="help-desk"))
    return source


def test_creates_users_where_the_rules_say(source):
    run = apply_source_users(source=source, users=[person("1", "ann", "Helpdesk"), person("2", "bob")])
    assert run.status == "succeeded"
    assert run.counts["created"] == 2
    ann = User.objects.get(username="ann")
    ann.profile.refresh_from_db()
    assert ann.profile.org.name == "Sales"
    assert roles_of("ann") == {"help-desk"}
    assert roles_of("bob") == {"console-user", "desktop-user"}  # no rule matched: Sales' defaults
    assert RoleGrant.objects.get(user=ann).source == source
    link = ExternalIdentity.objects.get(user=ann)
    assert (link.provider, link.external_id) == (source.slug, "1")
    assert ann.profile.owner_source == source  # the real reference, shown and linked on the user page
    assert stored_record(link.raw).groups == {"helpdesk"}
    assert JournalEntry.objects.filter(run=run, subject="created").count() == 2
    assert AuditEvent.objects.filter(job_id=run.run_id, action="user.created").count() == 2


def test_updates_roles_and_fixed_org_is_for_new_users_only(source, org_factory):
    apply_source_users(source=source, users=[person("1", "ann", "Helpdesk")])
    source.fixed_org = org_factory("Elsewhere")
    source.save()
    run = apply_source_users(source=source, users=[person("1", "ann", surname="x"), person("2", "bob")])
    ann, bob = User.objects.get(username="ann"), User.objects.get(username="bob")
    assert ann.profile.org.name == "Sales"  # fixed mode never moves a user it already placed
    assert bob.profile.org.name == "Elsewhere"
    assert roles_of("ann") == {"console-user", "desktop-user"}  # Helpdesk gone -> the org's defaults
    assert not RoleGrant.objects.filter(user=ann, role__slug="help-desk").exists()
    assert run.counts["rules_updated"] == 1
    assert stored_record(ExternalIdentity.objects.get(user=ann).raw).values("surname") == ("x",)


def test_inactive_then_active_again(source):
    apply_source_users(source=source, users=[person("1", "ann")])
    run = apply_source_users(source=source, users=[person("1", "ann", active=False)])
    ann = User.objects.get(username="ann")
    assert ann.profile.state == UserState.BLOCKED
    assert run.counts["blocked"] == 1
    assert UserBlock.objects.get(user=ann).reason == "inactive by the source's rules"
    run = apply_source_users(source=source, users=[person("1", "ann", active=True)])
    ann.profile.refresh_from_db()
    assert ann.profile.state == UserState.ACTIVE
    assert run.counts["reactivated"] == 1


def test_complete_run_blocks_users_gone_from_the_source(source):
    apply_source_users(source=source, users=[person("1", "ann"), person("2", "bob")])
    run = apply_source_users(source=source, users=[person("1", "ann")], complete=True)
    assert run.counts["gone"] == 1
    bob = User.objects.get(username="bob")
    assert bob.profile.state == UserState.BLOCKED
    assert UserBlock.objects.get(user=bob).reason == "gone from the source"
    assert JournalEntry.objects.get(run=run, user=bob, subject="state").message == "gone from the source"


def test_dry_run_journals_and_writes_nothing(source):
    apply_source_users(source=source, users=[person("1", "ann")])
    run = apply_source_users(source=source, users=[person("1", "ann", "Helpdesk"), person("2", "bob")], dry_run=True)
    assert not User.objects.filter(username="bob").exists()
    assert roles_of("ann") == {"console-user", "desktop-user"}
    assert stored_record(ExternalIdentity.objects.get(user__username="ann").raw).groups == frozenset()
    results = set(JournalEntry.objects.filter(run=run).values_list("user_label", "subject", "result"))
    assert ("bob", "created", "planned") in results
    assert ("ann", "roles", "planned") in results
    assert not AuditEvent.objects.filter(job_id=run.run_id).exists()


def test_refusal_is_journaled_with_its_code(source, user_factory):
    user_factory("carl")  # a local user with the same name: the source may not take it silently
    run = apply_source_users(source=source, users=[person("9", "carl")])
    entry = JournalEntry.objects.get(run=run, result="refused")
    assert entry.code == "username_taken"
    assert run.counts["refused"] == 1


def test_console_shows_the_owner(admin_client, source):
    apply_source_users(source=source, users=[person("1", "ann"), person("2", "bob")])
    detail = admin_client.get(f"/provisioning/sources/{source.pk}/").content.decode()
    assert "<dt>Users owned</dt><dd>2</dd>" in detail
    ann = User.objects.get(username="ann")
    page = admin_client.get(f"/users/{ann.pk}/").content.decode()
    assert f'<a href="/provisioning/sources/{source.pk}/">Okta</a>' in page


def test_service_refreshes_a_matched_links_record_and_owner_without_audit(source):
    from datetime import timedelta

    from accounts.models import AuditEvent, ExternalIdentity, UserProfile
    from provisioning.resolve import stored_record

    apply_source_users(source=source, users=[person("1", "ann", "Helpdesk")])
    link = ExternalIdentity.objects.get(external_id="1")
    old_seen = link.last_seen_at - timedelta(days=3)
    ExternalIdentity.objects.filter(pk=link.pk).update(last_seen_at=old_seen)
    UserProfile.objects.filter(user=link.user).update(owner_source=None)
    linked_events = AuditEvent.objects.filter(action="user.linked").count()
    apply_source_users(source=source, users=[person("1", "ann", "Helpdesk", "Sales")])
    link.refresh_from_db()
    assert "sales" in stored_record(link.raw).groups
    assert link.last_seen_at > old_seen + timedelta(days=2)
    assert UserProfile.objects.get(user=link.user).owner_source == source
    # Seen again is bookkeeping, not an identity change: no new "user.linked" event.
    assert AuditEvent.objects.filter(action="user.linked").count() == linked_events
