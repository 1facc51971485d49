"""Rules preview over a source's linked users, and the run journal (dry run = same journal, no writes)."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import User

from accounts.identity.types import IdentityChange, Mode
from accounts.models import AuditEvent, ExternalIdentity
from provisioning.journal import apply_journaled, finish_run, start_run
from provisioning.models import JournalEntry, ProvisioningRun, RoleGrant
from provisioning.preview import preview_rules, user_diffs
from provisioning.resolve import RECORD_KEY, stored_record
from provisioning.rules import Condition, ConditionKind, OrgMode, OrgPolicy, Rule, RuleKind, SourceRecord
from tests.provisioning.conftest import provider_actor


def grp(name: str) -> Condition:
    return Condition(ConditionKind.MEMBER_OF_GROUP, value=name)


@pytest.fixture
def source_with_users(source_factory, linked_user, org_factory):
    source = source_factory("Okta")
    sales = org_factory("Sales")
    users = {
        "ann": linked_user(source, "ann", record=SourceRecord.build(groups=["Engineering"]), roles=["console-user"]),
        "bob": linked_user(source, "bob", record=SourceRecord.build(groups=["Sales"])),
        "cat": linked_user(source, "cat", record=SourceRecord.build(groups=["Leavers"])),
    }
    return source, sales, users


def test_link_keeps_the_record(source_with_users):
    source, _, users = source_with_users
    link = ExternalIdentity.objects.get(user=users["ann"])
    assert (link.source, link.provider) == ("scim", source.slug)
    assert stored_record(link.raw) == SourceRecord.build(groups=["engineering"])
    assert link.raw[RECORD_KEY]["groups"] == ["engineering"]
    assert link.last_seen_at is not None


def test_preview_counts_and_samples(source_with_users):
    source, sales, users = source_with_users
    rules = [
        Rule(RuleKind.ROLE, grp("Engineering"), roles=frozenset({"help-desk"}), rule_id=1),
        Rule(RuleKind.ORG, grp("Sales"), org_id=sales.pk),
        Rule(RuleKind.ACTIVE, grp("Leavers")),
    ]
    preview = preview_rules(source=source, rules=rules, org_policy=OrgPolicy(mode=OrgMode.RULES))
    assert preview.users == 3
    assert preview.without_record == 0
    assert preview.counts["org"] == 1
    assert preview.counts["inactive"] == 1
    # ann gains help-desk; bob and cat get the org defaults they already have (no change).
    assert preview.counts["gain"] == 1
    assert [d.username for d in preview.samples["gain"]] == ["ann"]
    assert preview.samples["gain"][0].gain == {"help-desk"}
    assert preview.samples["org"][0].username == "bob"
    assert preview.samples["org"][0].org_after == "Default Organization/Sales"
    assert preview.samples["inactive"][0].username == "cat"
    assert preview.counts["lose"] == 0


def test_preview_loses_only_source_granted_roles(source_with_users):
    source, _, users = source_with_users
    ann = users["ann"]
    help_desk = ann.groups.model.objects.get(name="role:help-desk")
    ann.groups.add(help_desk)  # test set-up only: the state a source grant leaves behind
    RoleGrant.objects.create(user=ann, role=help_desk.role, source=source)
    # console-user is held by hand: the new rules do not grant it, but it is not "lost".
    rules = [Rule(RuleKind.ROLE, grp("Engineering"), roles=frozenset({"desktop-user"}))]
    diffs = {d.username: d for d in user_diffs(source=source, rules=rules, org_policy=OrgPolicy()) if d}
    assert diffs["ann"].lose == {"help-desk"}
    assert diffs["ann"].gain == {"desktop-user"}


def test_preview_counts_users_without_record(source_factory, linked_user):
    source = source_factory()
    user = linked_user(source, "dan")
    ExternalIdentity.objects.filter(user=user).update(raw={})
    preview = preview_rules(source=source, rules=[], org_policy=OrgPolicy())
    assert (preview.users, preview.without_record, preview.changed) == (1, 1, 0)


def test_preview_reports_a_broken_record(source_factory, linked_user):
    source = source_factory()
    user = linked_user(source, "eve")
    ExternalIdentity.objects.filter(user=user).update(raw={RECORD_KEY: ["not", "an", "object"]})
    preview = preview_rules(source=source, rules=[], org_policy=OrgPolicy())
    assert preview.counts["error"] == 1
    assert preview.samples["error"][0].error == "record_invalid"


def test_preview_of_attribute_org_that_would_be_created(source_factory, linked_user, root_org):
    source = source_factory()
    linked_user(source, "fay", record=SourceRecord.build(attributes={"dept": "Research"}))
    policy = OrgPolicy(mode=OrgMode.ATTRIBUTE, attribute="dept", create_under_id=root_org.pk)
    preview = preview_rules(source=source, rules=[], org_policy=policy)
    assert preview.samples["org"][0].org_after == "new: Research"


def _entries(run):
    return [(e.user_label, e.subject, e.old_value, e.new_value, e.code, e.ref)
            for e in JournalEntry.objects.filter(run=run).order_by("id")]


def test_dry_run_journals_the_same_changes_without_writing(source_factory, user_factory, system_actor):
    user_factory("journal1", email="j1@example.com")
    source = source_factory()
    actor = system_actor
    updates = [IdentityChange(username="journal1", email="new@example.com", first_name="Jo", mode=Mode.UPDATE,
                              ref="u1"),
               IdentityChange(username="bad name!", mode=Mode.CREATE, ref="u2")]
    dry = start_run(kind=ProvisioningRun.Kind.SYNC, actor=actor, source=source, dry_run=True)
    dry_counts = apply_journaled(changes=updates, actor=actor, run=dry, dry_run=True)
    assert User.objects.get(username="journal1").email == "j1@example.com"
    assert not AuditEvent.objects.filter(job_id=dry.run_id).exists()
    real = start_run(kind=ProvisioningRun.Kind.SYNC, actor=actor, source=source)
    real_counts = apply_journaled(changes=updates, actor=actor, run=real)
    assert dry_counts == real_counts == {"created": 0, "updated": 1, "unchanged": 0, "refused": 1}
    assert _entries(dry) == _entries(real)
    assert set(JournalEntry.objects.filter(run=dry).values_list("result", flat=True)) == {"planned", "refused"}
    assert set(JournalEntry.objects.filter(run=real).values_list("result", flat=True)) == {"applied", "refused"}
    email = JournalEntry.objects.get(run=real, subject="email")
    assert (email.user_label, email.old_value, email.new_value, email.ref) == ("journal1", "j1@example.com",
                                                                               "new@example.com", "u1")
    refused = JournalEntry.objects.get(run=real, result="refused")
    assert refused.code == "username_invalid"
    assert refused.message == "Usernames may contain only letters, digits and @ . + - _"
    assert refused.ref == "u2"
    # The audit events of the real run carry its run id.
    assert AuditEvent.objects.filter(job_id=real.run_id, field="email").count() == 1
    real.refresh_from_db()
    assert real.progress_done == 2


def test_finish_run_sets_status(source_factory):
    source = source_factory()
    run = start_run(kind=ProvisioningRun.Kind.RULES_REAPPLY, actor=provider_actor(source), source=source)
    assert run.status == "running"
    finish_run(run, counts={"updated": 3})
    run.refresh_from_db()
    assert (run.status, run.counts, run.finished_at is not None) == ("succeeded", {"updated": 3}, True)
    finish_run(run, counts={}, error="directory unreachable")
    assert ProvisioningRun.objects.get(pk=run.pk).status == "failed"


def test_journal_page_filters_and_csv(admin_client, source_factory, user_factory, system_actor):
    user_factory("journal1", email="j1@example.com")
    source = source_factory()
    actor = system_actor
    run = start_run(kind=ProvisioningRun.Kind.SCIM_REQUEST, actor=actor, source=source)
    apply_journaled(changes=[IdentityChange(username="journal1", email="=cmd@example.com", last_name="Q",
                                            mode=Mode.UPDATE, ref="r1")], actor=actor, run=run)
    page = admin_client.get(f"/provisioning/runs/{run.run_id}/?subject=email")
    assert page.status_code == 200
    body = page.content.decode()
    assert "=cmd@example.com" in body
    assert "last_name" not in body
    export = admin_client.get(f"/provisioning/runs/{run.run_id}/journal.csv?result=applied")
    assert export.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert rows[0] == ["run", "user", "subject", "old_value", "new_value", "result", "code", "message", "ref"]
    by_subject = {r[2]: r for r in rows[1:]}
    assert set(by_subject) == {"email", "last_name"}
    assert by_subject["email"][4] == "'=cmd@example.com"  # formula-safe
    assert admin_client.get("/provisioning/runs/nope/").status_code == 404
    assert admin_client.get(f"/provisioning/runs/{run.run_id}/?subject=a%20b").status_code == 200
