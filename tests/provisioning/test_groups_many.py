"""Many directory groups and memberships in one call (a directory sync's group mirror, issue 10):
``groups_create`` and ``groups_members_replace`` write what the one-group calls write -- names,
owner, one audit event per group and per membership change -- all or nothing, in a number of
statements that does not grow with the number of groups; ``audit.save_event_rows`` writes the same
audit values as ``build_event`` + ``save_events``."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.exceptions import ConflictError, PolicyDenied, ValidationFailed
from accounts.identity import audit
from accounts.identity.audit import build_event, events_saved, save_event_rows, save_events
from accounts.identity.groups import GROUP_NAME_MAX, NewGroup, group_create, groups_create
from accounts.identity.memberships import group_members_replace, groups_members_replace
from accounts.identity.types import Actor
from accounts.models import AuditEvent, DirectoryGroup
from tests.provisioning.conftest import provider_actor

AUDIT_COLUMNS = ("actor_id", "actor_label", "actor_type", "action", "target_type", "target_id", "target_label",
                 "field", "old_value", "new_value", "source", "request_id", "job_id", "ip_address", "message")


@pytest.fixture
def okta(source_factory):
    return source_factory("Okta", slug="okta")


@pytest.fixture
def actor(okta):
    return provider_actor(okta)


def users(count: int, prefix: str = "u") -> list[int]:
    password = make_password(None)
    User.objects.bulk_create([User(username=f"{prefix}{i}", password=password) for i in range(count)])
    return list(User.objects.filter(username__startswith=prefix).order_by("pk").values_list("pk", flat=True))


def queries(call) -> int:
    with CaptureQueriesContext(connection) as ctx:
        call()
    return len(ctx.captured_queries)


def nothing_written() -> bool:
    return not (DirectoryGroup.objects.exists() or Group.objects.filter(name__startswith="dir:").exists()
                or AuditEvent.objects.filter(action__startswith="group.").exists())


def test_groups_create_writes_each_group_as_group_create_does(okta, actor):
    specs = [NewGroup(f"Team {i}", f"g{i}") for i in range(60)] + [NewGroup("  Padded  "), NewGroup("G" * 255, "long")]
    created = groups_create(actor=actor, groups=specs)
    assert [g.display_name for g in created] == [f"Team {i}" for i in range(60)] + ["Padded", "G" * 255]
    assert [g.external_id for g in created] == [f"g{i}" for i in range(60)] + ["", "long"]
    stored = {g.pk: g for g in DirectoryGroup.objects.select_related("group")}
    assert set(stored) == {g.pk for g in created}
    for dgroup in created:
        row = stored[dgroup.pk]
        assert (row.display_name, row.external_id, row.source, row.provider, row.owner_source_id, row.group_id) == (
            dgroup.display_name, dgroup.external_id, "scim", "okta", okta.pk, dgroup.group_id)
        assert row.group.name.startswith(f"dir:scim:okta:{dgroup.display_name}"[:40])
        assert len(row.group.name) <= GROUP_NAME_MAX
    assert len({g.group.name for g in stored.values()}) == len(created)  # unique backing names
    events = {e.target_id: e for e in AuditEvent.objects.filter(action="group.created")}
    assert len(events) == len(created)
    single = group_create(actor=actor, display_name="Single", external_id="one")
    reference = AuditEvent.objects.get(action="group.created", target_id=str(single.pk))
    for dgroup in created:
        event = events[str(dgroup.pk)]
        assert (event.target_type, event.target_label, event.actor_label, event.actor_type, event.source) == (
            "group", dgroup.display_name, "Okta", "provider", "scim")
        assert event.new_value == {"display_name": dgroup.display_name, "external_id": dgroup.external_id}
        assert (event.old_value, event.field) == (reference.old_value, reference.field) == (None, "")


@pytest.mark.parametrize("taken", ["existing", "twice"])
def test_groups_create_refuses_every_group_when_one_external_id_is_taken(actor, taken):
    if taken == "existing":
        group_create(actor=actor, display_name="Old", external_id="g7")
    specs = [NewGroup(f"Team {i}", f"g{i}") for i in range(60)]
    if taken == "twice":
        specs.append(NewGroup("Again", "g7"))
    before = (DirectoryGroup.objects.count(), AuditEvent.objects.count())
    with pytest.raises(ConflictError) as err:
        groups_create(actor=actor, groups=specs)
    assert (err.value.code, err.value.field) == ("group_exists", "externalId")
    assert "'g7'" in err.value.message
    assert (DirectoryGroup.objects.count(), AuditEvent.objects.count()) == before


def test_another_provider_may_use_the_same_external_ids(actor, source_factory):
    groups_create(actor=actor, groups=[NewGroup("A", "g1"), NewGroup("B", "g2")])
    entra = provider_actor(source_factory("Entra", slug="entra"))
    created = groups_create(actor=entra, groups=[NewGroup("A", "g1"), NewGroup("B", "g2")])
    assert {(g.provider, g.external_id) for g in created} == {("entra", "g1"), ("entra", "g2")}
    assert DirectoryGroup.objects.count() == 4


def test_groups_create_refuses_every_group_when_one_name_is_invalid(actor):
    with pytest.raises(ValidationFailed) as err:
        groups_create(actor=actor, groups=[NewGroup("Fine", "a"), NewGroup("   ", "b")])
    assert (err.value.code, err.value.field) == ("group_name_required", "displayName")
    with pytest.raises(ValidationFailed) as err:
        groups_create(actor=actor, groups=[NewGroup("Fine", "a"), NewGroup("x" * 256, "b")])
    assert err.value.code == "group_name_too_long"
    with pytest.raises(ValidationFailed) as err:
        groups_create(actor=actor, groups=[NewGroup("Fine", "a"), NewGroup("ok", "x" * 256)])
    assert err.value.code == "external_id_invalid"
    assert nothing_written()


def test_groups_create_dry_run_checks_everything_and_writes_nothing(actor):
    planned = groups_create(actor=actor, groups=[NewGroup(f"T{i}", f"g{i}") for i in range(60)], dry_run=True)
    assert [g.display_name for g in planned] == [f"T{i}" for i in range(60)]
    assert all(g.pk is None for g in planned)
    assert nothing_written()
    group_create(actor=actor, display_name="Old", external_id="g3")
    with pytest.raises(ConflictError):
        groups_create(actor=actor, groups=[NewGroup("T3", "g3")], dry_run=True)
    assert DirectoryGroup.objects.count() == 1


def test_groups_create_statements_do_not_grow_with_the_groups(actor):
    few = queries(lambda: groups_create(actor=actor, groups=[NewGroup(f"A{i}", f"a{i}") for i in range(60)]))
    many = queries(lambda: groups_create(actor=actor, groups=[NewGroup(f"B{i}", f"b{i}") for i in range(400)]))
    assert many <= few + 8  # SQLite splits its inserts by its parameter limit; PostgreSQL: equal
    assert many <= 20
    assert DirectoryGroup.objects.count() == 460


def test_groups_members_replace_audits_every_change_of_every_group(actor):
    ids = users(12)
    red, blue, green = groups_create(actor=actor, groups=[NewGroup("red", "r"), NewGroup("blue", "b"),
                                                          NewGroup("green", "g")])
    group_members_replace(actor=actor, dgroup=red, user_ids=ids[:4])
    group_members_replace(actor=actor, dgroup=blue, user_ids=ids[4:6])
    before = set(AuditEvent.objects.values_list("pk", flat=True))
    results = groups_members_replace(actor=actor, members=[
        (red, ids[2:6] + [10**9]), (blue, []), (green, ids[6:12])])
    assert (results[red.pk].added, results[red.pk].removed, results[red.pk].unknown) == (ids[4:6], ids[:2], [10**9])
    assert (results[blue.pk].added, results[blue.pk].removed) == ([], ids[4:6])
    assert (results[green.pk].added, results[green.pk].removed) == (ids[6:12], [])
    members = {g.display_name: sorted(g.group.user_set.values_list("pk", flat=True)) for g in (red, blue, green)}
    assert members == {"red": ids[2:6], "blue": [], "green": ids[6:12]}
    events = AuditEvent.objects.exclude(pk__in=before)
    got = sorted((e.action, int(e.target_id), e.target_label, e.old_value, e.new_value, e.field, e.target_type,
                  e.actor_label) for e in events)
    names = dict(User.objects.values_list("pk", "username"))
    expected = sorted(
        [("group.member_added", uid, names[uid], None, "red", "groups", "user", "Okta") for uid in ids[4:6]]
        + [("group.member_removed", uid, names[uid], "red", None, "groups", "user", "Okta") for uid in ids[:2]]
        + [("group.member_removed", uid, names[uid], "blue", None, "groups", "user", "Okta") for uid in ids[4:6]]
        + [("group.member_added", uid, names[uid], None, "green", "groups", "user", "Okta") for uid in ids[6:12]])
    assert got == expected


def test_groups_members_replace_dry_run_writes_nothing(actor):
    ids = users(5)
    red, blue = groups_create(actor=actor, groups=[NewGroup("red", "r"), NewGroup("blue", "b")])
    group_members_replace(actor=actor, dgroup=red, user_ids=ids[:2])
    before = AuditEvent.objects.count()
    results = groups_members_replace(actor=actor, members=[(red, ids[1:3]), (blue, ids[3:])], dry_run=True)
    assert (results[red.pk].added, results[red.pk].removed, results[blue.pk].added) == (ids[2:3], ids[:1], ids[3:])
    assert sorted(red.group.user_set.values_list("pk", flat=True)) == ids[:2]
    assert not blue.group.user_set.exists()
    assert AuditEvent.objects.count() == before


def test_one_group_of_another_owner_refuses_the_whole_replace(actor, source_factory, admin_actor):
    ids = users(4)
    mine = groups_create(actor=actor, groups=[NewGroup("mine", "m")])[0]
    theirs = group_create(actor=provider_actor(source_factory("Entra", slug="entra")), display_name="theirs")
    before = AuditEvent.objects.count()
    for who in (actor, admin_actor):
        with pytest.raises(PolicyDenied) as err:
            groups_members_replace(actor=who, members=[(mine, ids[:2]), (theirs, ids[2:])])
        assert err.value.code == "group_not_owner"
    assert not mine.group.user_set.exists() and not theirs.group.user_set.exists()
    assert AuditEvent.objects.count() == before


def test_a_failure_while_writing_leaves_every_group_as_it_was(actor, monkeypatch):
    ids = users(80)
    red, blue = groups_create(actor=actor, groups=[NewGroup("red", "r"), NewGroup("blue", "b")])
    group_members_replace(actor=actor, dgroup=red, user_ids=ids[:10])
    before = AuditEvent.objects.count()

    def broken(**kwargs):
        raise RuntimeError("audit store down")

    monkeypatch.setattr("accounts.identity.memberships.save_event_rows", broken)
    with pytest.raises(RuntimeError):
        groups_members_replace(actor=actor, members=[(red, ids[5:70]), (blue, ids)])
    assert sorted(red.group.user_set.values_list("pk", flat=True)) == ids[:10]
    assert not blue.group.user_set.exists()
    assert AuditEvent.objects.count() == before


def test_groups_members_replace_statements_do_not_grow_with_the_groups(actor):
    ids = users(120)
    two = groups_create(actor=actor, groups=[NewGroup(f"a{i}", f"a{i}") for i in range(2)])
    twenty = groups_create(actor=actor, groups=[NewGroup(f"b{i}", f"b{i}") for i in range(20)])
    # 60 memberships in each call, so both take the same insert path (COPY on PostgreSQL).
    small = queries(lambda: groups_members_replace(actor=actor, members=[(g, ids[:30]) for g in two]))
    large = queries(lambda: groups_members_replace(actor=actor, members=[(g, ids[i * 3:i * 3 + 3])
                                                                         for i, g in enumerate(twenty)]))
    assert large == small
    assert sum(g.group.user_set.count() for g in twenty) == 60


def test_save_event_rows_writes_what_build_event_writes(actor):
    ip_actor = Actor(label=actor.label, type=actor.type, source=actor.source, provider=actor.provider,
                     request_id="req-1", job_id="job-1", ip="::ffff:10.0.0.1", enforce_scope=False)
    specs = [("group.member_added", 7, "ann\tlee\\x", None, "red \"team\"\n"),
             ("group.updated", "", "x" * 300, {"a": [1, 2]}, {"é": True}),
             ("user.updated", 9, "bob", "old secret", "new secret")]
    for n in (1, 60):  # fewer than ROWS_COPY_MIN: bulk_create; more: COPY on PostgreSQL
        rows = (specs * n)[:max(n, len(specs))]
        for field in ("groups", "password"):
            marker = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
            save_events([build_event(actor=ip_actor, action=a, target_type="user", target_id=t, target_label=label,
                                     field=field, old=old, new=new) for a, t, label, old, new in rows])
            middle = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
            save_event_rows(actor=ip_actor, target_type="user", field=field, events=rows)
            reference = list(AuditEvent.objects.filter(pk__gt=marker, pk__lte=middle).order_by("pk")
                             .values_list(*AUDIT_COLUMNS))
            fast = list(AuditEvent.objects.filter(pk__gt=middle).order_by("pk").values_list(*AUDIT_COLUMNS))
            assert fast == reference and len(fast) == len(rows)
    assert AuditEvent.objects.filter(field="password", new_value="(changed)").exists()
    assert audit.ROWS_COPY_MIN <= 60


def test_save_event_rows_tells_the_listeners(actor):
    seen = []

    def listener(sender, events, **kwargs):
        seen.extend((e.action, e.target_label, e.new_value, e.actor_label, e.source) for e in events)

    events_saved.connect(listener)
    try:
        save_event_rows(actor=actor, target_type="user", field="roles",
                        events=[("user.role_added", 1, "ann", None, "Admin")])
    finally:
        events_saved.disconnect(listener)
    assert seen == [("user.role_added", "ann", "Admin", "Okta", "scim")]


def test_save_event_rows_reads_a_generator_chunk_by_chunk(actor, monkeypatch):
    monkeypatch.setattr(audit, "COPY_CHUNK", 60)
    told = []

    def listener(sender, events, **kwargs):
        told.append(len(events))

    events_saved.connect(listener)
    try:
        written = save_event_rows(actor=actor, target_type="user", field="groups", events=(
            ("group.member_added", i, f"user{i}", None, "red") for i in range(130)))
    finally:
        events_saved.disconnect(listener)
    assert written == 130 and told == [60, 60, 10]
    stored = AuditEvent.objects.filter(action="group.member_added")
    assert sorted(int(t) for t in stored.values_list("target_id", flat=True)) == list(range(130))
    assert set(stored.values_list("new_value", flat=True)) == {"red"}
