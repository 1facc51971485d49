"""The writer's bulk statements (accounts/identity/bulkio.py): PostgreSQL COPY must store exactly what
Django's bulk_create / bulk_update store, raise Django's IntegrityError, and show in the query log.
On SQLite the same tests run Django's own helpers (the fallback), so both backends must agree."""

from __future__ import annotations

import copy

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.identity import bulkio
from accounts.identity.audit import build_event
from accounts.identity.service import apply_identity_changes
from accounts.identity.types import Actor, IdentityChange, UserState
from accounts.models import AuditEvent, Role, UserProfile
from provisioning.models import RoleGrant

pytestmark = pytest.mark.django_db

TRICKY = 'tab\there, back\\slash, new\nline, "quotes", \u00e9\u4e2d, \\N'


def _events(actor_user) -> list[AuditEvent]:
    actor = Actor(type="user", label="alice (console)", user=actor_user, ip="10.1.2.3", request_id="req-1")
    return [
        build_event(actor=actor, action="user.created", target_type="user", target_id=7, target_label="bob",
                    new={"username": "bob", "roles": ["Help Desk"], "nested": {"a": [1, 2.5, None, True]}}),
        build_event(actor=Actor.system("tests"), action="user.updated", target_type="user", target_id="8",
                    target_label=TRICKY, field="first_name", old=TRICKY, new=None, message=TRICKY),
        build_event(actor=Actor.system("tests"), action="user.password_changed", field="password", old=None,
                    new="secret"),
    ]


def _stored(pks) -> list[dict]:
    rows = AuditEvent.objects.filter(pk__in=pks).order_by("pk").values()
    return [{k: v for k, v in row.items() if k not in ("id", "created_at")} for row in rows]


def test_insert_objects_stores_what_bulk_create_stores(user_factory):
    alice = user_factory("alice")
    ours, django_s = _events(alice), _events(alice)
    bulkio.insert_objects(AuditEvent, ours)
    AuditEvent.objects.bulk_create(django_s)

    assert all(e.pk is not None and not e._state.adding and e.created_at is not None for e in ours)
    assert len({e.pk for e in ours + django_s}) == 6
    assert _stored([e.pk for e in ours]) == _stored([e.pk for e in django_s])
    first, second, third = _stored([e.pk for e in ours])
    assert first["new_value"]["nested"] == {"a": [1, 2.5, None, True]}
    assert first["actor_id"] == alice.pk and first["ip_address"] == "10.1.2.3" and first["target_id"] == "7"
    assert second["target_label"] == TRICKY and second["old_value"] == TRICKY and second["new_value"] is None
    assert third["new_value"] == "(changed)"


def test_insert_objects_duplicate_username_is_an_integrity_error(user_factory):
    user_factory("carol")
    with pytest.raises(IntegrityError), transaction.atomic():
        bulkio.insert_objects(User, [User(username="dave"), User(username="carol")])
    assert not User.objects.filter(username="dave").exists()


def test_insert_rows_fills_defaults_and_auto_now_add(user_factory):
    erin = user_factory("erin")
    role = Role.objects.get(slug="help-desk")
    bulkio.insert_rows(RoleGrant, ("user_id", "role_id", "source_id", "granted_by_label"),
                       [(erin.pk, role.pk, None, TRICKY)])
    grant = RoleGrant.objects.get(user=erin, role=role)
    assert grant.source_id is None and grant.granted_by_label == TRICKY and grant.granted_at is not None


def test_update_objects_many_writes_only_the_given_fields(user_factory):
    n = bulkio.COPY_UPDATE_MIN + 10  # over the threshold: the COPY + UPDATE FROM path on PostgreSQL
    users = [user_factory(f"upd{i}", first_name="Old", last_name="Keep") for i in range(n)]
    changed = []
    for i, user in enumerate(users):
        user = copy.copy(user)
        user.email = f"upd{i}@new.example.org"
        user.first_name = f"{TRICKY} {i}"
        user.last_name = "NOT WRITTEN"
        changed.append(user)
    bulkio.update_objects(User, changed, ("email", "first_name"))
    stored = {u.username: u for u in User.objects.filter(username__startswith="upd")}
    assert len(stored) == n
    for i in range(n):
        row = stored[f"upd{i}"]
        assert (row.email, row.first_name, row.last_name) == (f"upd{i}@new.example.org", f"{TRICKY} {i}", "Keep")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL only")
def test_copy_statements_are_in_the_query_log(root_org, system_actor):
    changes = [IdentityChange(username=f"logged{i}", org_id=root_org.pk, roles=frozenset({"help-desk"}))
               for i in range(3)]
    with CaptureQueriesContext(connection) as ctx:
        result = apply_identity_changes(changes=changes, actor=system_actor)
    assert result.counts()["created"] == 3
    copies = sorted(q["sql"].split(" (")[0] for q in ctx.captured_queries if q["sql"].startswith("COPY"))
    assert copies == ['COPY "accounts_auditevent"', 'COPY "accounts_userprofile"', 'COPY "auth_user"',
                      'COPY "auth_user_groups"', 'COPY "provisioning_rolegrant"']
    assert all(q["sql"].endswith("-- 3 rows") for q in ctx.captured_queries if q["sql"].startswith("COPY"))


def test_bulk_service_round_trip_over_the_copy_thresholds(root_org, system_actor):
    n = bulkio.COPY_UPDATE_MIN + 20
    created = apply_identity_changes(actor=system_actor, changes=[
        IdentityChange(username=f"rt{i}", email=f"rt{i}@example.com", first_name=TRICKY, org_id=root_org.pk,
                       roles=frozenset({"help-desk", "console-user"}) if i % 2 else frozenset({"help-desk"}))
        for i in range(n)])
    assert created.counts() == {"created": n, "updated": 0, "unchanged": 0, "refused": 0}
    users = User.objects.filter(username__startswith="rt")
    assert users.count() == n and {u.first_name for u in users} == {TRICKY}
    assert UserProfile.objects.filter(user__in=users, state=UserState.INVITED).count() == n
    assert User.groups.through.objects.filter(user__in=users).count() == n + n // 2
    assert RoleGrant.objects.filter(user__in=users, source__isnull=True).count() == n + n // 2
    assert AuditEvent.objects.filter(action="user.created", target_label__startswith="rt").count() == n

    updated = apply_identity_changes(actor=system_actor, changes=[
        IdentityChange(username=f"rt{i}", email=f"rt{i}@changed.example.org", state=UserState.BLOCKED)
        for i in range(n)])
    assert updated.counts() == {"created": 0, "updated": n, "unchanged": 0, "refused": 0}
    assert set(User.objects.filter(username__startswith="rt").values_list("email", "is_active")) == {
        (f"rt{i}@changed.example.org", False) for i in range(n)}
    profiles = UserProfile.objects.filter(user__username__startswith="rt")
    assert profiles.filter(state=UserState.BLOCKED, blocked_at__isnull=False).count() == n
    assert AuditEvent.objects.filter(action="user.blocked", target_label__startswith="rt").count() == n
    emails = AuditEvent.objects.filter(action="user.updated", field="email", target_label__startswith="rt")
    assert sorted(emails.values_list("old_value", "new_value")) == sorted(
        (f"rt{i}@example.com", f"rt{i}@changed.example.org") for i in range(n))

    again = apply_identity_changes(actor=system_actor, changes=[
        IdentityChange(username=f"rt{i}", email=f"rt{i}@changed.example.org", state=UserState.BLOCKED)
        for i in range(n)])
    assert again.counts()["unchanged"] == n
