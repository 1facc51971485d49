"""Re-applying a source's rules: grant origins, org modes, lifecycle, journal, dry run, console task."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from accounts.identity.service import apply_identity_change
from accounts.identity.types import IdentityChange, Mode, UserState
from accounts.models import AuditEvent, ExternalIdentity, Organization, Role
from provisioning.models import JournalEntry, MappingRule, ProvisioningRun, RoleGrant, UserBlock
from provisioning.reapply import reapply_rules
from provisioning.resolve import link_raw
from provisioning.rules import SourceRecord


def roles_of(user) -> set[str]:
    return set(Group.objects.filter(user=user, role__isnull=False).values_list("role__slug", flat=True))


def add_rule(source, *, kind="role", condition="member_of_group", value="Engineering", roles=(), org=None,
             position=0, cloud_admin=True):
    rule = MappingRule.objects.create(source=source, kind=kind, condition=condition, value=value, target_org=org,
                                      position=position, saved_by_cloud_admin=cloud_admin)
    rule.roles.set(Role.objects.filter(slug__in=roles))
    return rule


@pytest.fixture
def setup(source_factory, linked_user):
    source = source_factory("Okta")
    eng = SourceRecord.build(groups=["Engineering"])
    users = {
        "ann": linked_user(source, "ann", record=eng, roles=["console-user"]),
        "bob": linked_user(source, "bob", record=SourceRecord.build(groups=["Sales"]), roles=["console-user"]),
    }
    return source, users


def test_reapply_grants_roles_and_records_their_origin(setup):
    source, users = setup
    add_rule(source, roles=["help-desk"])
    run = reapply_rules(source=source)
    assert run.status == "succeeded"
    assert roles_of(users["ann"]) == {"console-user", "help-desk"}
    grant = RoleGrant.objects.get(user=users["ann"], role__slug="help-desk")
    assert grant.source == source
    # bob matched no rule: the org's default roles (console-user, desktop-user), granted by the source.
    assert roles_of(users["bob"]) == {"console-user", "desktop-user"}
    assert set(RoleGrant.objects.filter(user=users["bob"], source=source).values_list("role__slug", flat=True)) == {
        "console-user", "desktop-user"}
    assert run.counts["updated"] == 2
    entry = JournalEntry.objects.get(run=run, user=users["ann"], subject="roles")
    assert entry.result == "applied"
    assert entry.old_value == ["console-user"]
    assert entry.new_value == {"add": ["help-desk"], "remove": []}
    event = AuditEvent.objects.get(job_id=run.run_id, target_label="ann", field="roles")
    assert event.actor_label == "Okta"


def test_source_removes_only_what_it_granted(setup, admin_actor):
    source, users = setup
    rule = add_rule(source, roles=["help-desk"])
    reapply_rules(source=source)
    ann = users["ann"]
    # An admin also grants Audit Log Viewer by hand: the writer records a manual grant row.
    apply_identity_change(change=IdentityChange(user_id=ann.pk, roles_add=frozenset({"audit-log-viewer"}),
                                                mode=Mode.UPDATE), actor=admin_actor)
    rule.roles.set([Group.objects.get(name="role:desktop-user").role])
    run = reapply_rules(source=source)
    assert roles_of(ann) == {"console-user", "desktop-user", "audit-log-viewer"}
    assert not RoleGrant.objects.filter(user=ann, role__slug="help-desk").exists()
    assert RoleGrant.objects.get(user=ann, role__slug="audit-log-viewer").source is None
    lost = JournalEntry.objects.get(run=run, user=ann, subject="roles")
    assert lost.new_value == {"add": ["desktop-user"], "remove": ["help-desk"]}


def test_manual_role_also_granted_by_source_survives_the_source(setup):
    source, users = setup
    rule = add_rule(source, roles=["console-user"])
    reapply_rules(source=source)
    ann = users["ann"]
    # console-user was held before the rule: the source recorded its own grant without changing roles.
    assert RoleGrant.objects.filter(user=ann, source=source, role__slug="console-user").exists()
    assert RoleGrant.objects.get(user=ann, source=None, role__slug="console-user")  # held by hand before
    rule.value = "Nobody"
    rule.save()
    reapply_rules(source=source)
    # Now default roles apply; console-user is among them, so nothing is lost either way.
    assert "console-user" in roles_of(ann)


def test_org_rules_and_created_org(setup, org_factory, root_org):
    source, users = setup
    sales = org_factory("Sales")
    source.org_mode = "rules"
    source.save()
    add_rule(source, kind="org", value="Sales", org=sales)
    reapply_rules(source=source)
    users["bob"].profile.refresh_from_db()
    assert users["bob"].profile.org == sales
    users["ann"].profile.refresh_from_db()
    assert users["ann"].profile.org == root_org
    # Attribute mode: a missing org is created under the chosen parent, once.
    source.org_mode, source.org_attribute, source.org_create_under = "attribute", "groups_as_org", root_org
    source.save()
    for name in ("ann", "bob"):
        ExternalIdentity.objects.filter(user=users[name]).update(
            raw=link_raw(SourceRecord.build(attributes={"groups_as_org": "Research"})))
    run = reapply_rules(source=source)
    research = Organization.objects.get(name="Research")
    assert research.parent == root_org
    assert set(research.profiles.values_list("user__username", flat=True)) == {"ann", "bob"}
    assert JournalEntry.objects.filter(run=run, subject="org_created").count() == 1


def test_inactive_rule_blocks_and_back_again(setup):
    source, users = setup
    add_rule(source, kind="active", value="Sales")
    run = reapply_rules(source=source)
    bob = users["bob"]
    bob.profile.refresh_from_db()
    assert bob.profile.state == UserState.BLOCKED
    assert UserBlock.objects.get(user=bob).source == source
    assert run.counts["blocked"] == 1
    assert JournalEntry.objects.get(run=run, user=bob, subject="state").new_value == "blocked"
    MappingRule.objects.filter(kind="active").delete()
    run = reapply_rules(source=source)
    bob.profile.refresh_from_db()
    assert bob.profile.state == UserState.ACTIVE
    assert run.counts["reactivated"] == 1


def test_dry_run_journals_without_writing(setup):
    source, users = setup
    add_rule(source, roles=["help-desk"])
    dry = reapply_rules(source=source, dry_run=True)
    assert roles_of(users["ann"]) == {"console-user"}
    assert not RoleGrant.objects.filter(source=source).exists()
    assert not AuditEvent.objects.filter(job_id=dry.run_id).exists()
    real = reapply_rules(source=source)

    def journal(run):
        return sorted((e.user_label, e.subject, str(e.old_value), str(e.new_value)) for e in run.entries.all())

    assert journal(dry) == journal(real)
    assert set(dry.entries.values_list("result", flat=True)) == {"planned"}
    assert dry.dry_run is True


def test_unchanged_users_are_counted_not_written(setup):
    source, users = setup
    add_rule(source, roles=["help-desk"])
    reapply_rules(source=source)
    again = reapply_rules(source=source)
    assert again.counts["updated"] == 0
    assert again.counts["unchanged"] == 2
    assert not again.entries.exists()


def test_console_reapply_runs_the_task(admin_client, setup, django_capture_on_commit_callbacks):
    from idm.celery import app

    source, users = setup
    add_rule(source, roles=["help-desk"])
    old = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(f"/provisioning/sources/{source.pk}/reapply/")
    finally:
        app.conf.task_always_eager = old
    run = ProvisioningRun.objects.get(kind="rules_reapply")
    assert response.status_code == 302
    assert response["Location"] == f"/provisioning/runs/{run.run_id}/"
    assert run.status == "succeeded"
    assert (run.progress_done, run.progress_total) == (2, 2)
    assert "help-desk" in roles_of(users["ann"])
    page = admin_client.get(response["Location"]).content.decode()
    assert '<progress max="2" value="2">' in page
    assert AuditEvent.objects.filter(action="provisioning_rules_reapply_started").count() == 1


def test_user_page_shows_each_roles_origin(admin_client, setup):
    source, users = setup
    add_rule(source, roles=["help-desk"])
    reapply_rules(source=source)
    ann = users["ann"]
    RoleGrant.objects.filter(user=ann, role__slug="console-user", source=source).delete()
    page = admin_client.get(f"/users/{ann.pk}/").content.decode()
    assert '<span class="muted small" data-role-origin="help-desk">Okta</span>' in page
    assert '<span class="muted small" data-role-origin="console-user">manual</span>' in page
