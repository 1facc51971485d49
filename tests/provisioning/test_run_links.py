"""Audit events written during a provisioning run carry the run id: the run page links to its events,
and the audit log links each such event back to the run."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from accounts.models import AuditEvent, Role
from provisioning.inbound import SourceUser, apply_source_users
from provisioning.lifecycle import deactivate_due, source_says_inactive
from provisioning.models import MappingRule, ProvisioningRun
from provisioning.rules import SourceRecord


def person(ext: str, username: str, *groups: str) -> SourceUser:
    return SourceUser(external_id=ext, username=username, email=f"{username}@example.com",
                      record=SourceRecord.build(attributes={"userName": username}, groups=groups))


def test_run_events_link_both_ways(admin_client, source_factory, org_factory):
    source = source_factory("Okta", org_mode="fixed", fixed_org=org_factory("Sales"))
    rule = MappingRule.objects.create(source=source, kind="role", condition="member_of_group", value="Helpdesk")
    rule.roles.set(Role.objects.filter(slug="help-desk"))
    first = apply_source_users(source=source, users=[person("1", "ann"), person("2", "bob")])
    run = apply_source_users(source=source, users=[person("1", "ann", "Helpdesk")])
    events = AuditEvent.objects.filter(job_id=run.run_id)
    # Help Desk is a rise in privilege: links and a temporary password issued before it are void.
    assert sorted(events.values_list("action", "target_label")) == [
        ("user.credentials_voided", "ann"), ("user.role_added", "ann"), ("user.role_removed", "ann"),
        ("user.role_removed", "ann")]
    assert AuditEvent.objects.filter(job_id=first.run_id, action="user.created").count() == 2

    run_page = admin_client.get(f"/provisioning/runs/{run.run_id}/").content.decode()
    assert f'<a class="btn" href="/audit/?actor={run.run_id}">Audit events</a>' in run_page
    audit = admin_client.get("/audit/", {"actor": run.run_id})
    assert audit.status_code == 200
    page = audit.content.decode()
    link = f'<a class="small" href="/provisioning/runs/{run.run_id}/" data-run-link>run</a>'
    assert page.count(link) == 4  # exactly this run's events, each linking back
    assert f"/provisioning/runs/{first.run_id}/" not in page


def test_audit_log_hides_the_run_link_from_viewers_without_the_run_page(client, user_factory, source_factory,
                                                                          org_factory):
    source = source_factory("Okta", org_mode="fixed", fixed_org=org_factory("Sales"))
    run = apply_source_users(source=source, users=[person("1", "ann")])
    client.force_login(user_factory("auditor", roles=["audit-log-viewer"]))
    page = client.get("/audit/", {"actor": run.run_id}).content.decode()
    assert "<code>user.created</code>" in page
    assert "data-run-link" not in page


def test_the_deactivation_sweep_is_a_run(source_factory, linked_user):
    source = source_factory("Okta")
    ann = linked_user(source, "ann")
    now = timezone.now()
    source_says_inactive(source=source, user_ids=[ann.pk], now=now)
    assert deactivate_due(now=now + timedelta(minutes=16)).deactivated == 1
    run = ProvisioningRun.objects.get(kind="lifecycle")
    assert (run.status, run.counts["deactivated"]) == ("succeeded", 1)
    event = AuditEvent.objects.get(action="user.deactivated", target_label="ann")
    assert (event.job_id, event.actor_label) == (run.run_id, "Okta")
    entry = run.entries.get()
    assert (entry.user_label, entry.subject, entry.old_value, entry.new_value) == ("ann", "state", "blocked",
                                                                                   "deactivated")
    deactivate_due(now=now + timedelta(hours=2))  # nothing due: no empty run
    assert ProvisioningRun.objects.filter(kind="lifecycle").count() == 1
