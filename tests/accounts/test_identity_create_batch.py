"""Bulk creation judges each org and each set of asked roles once per batch (``BatchState.memo``):
every row must still get its own org's defaults, warnings and refusals, in the same order of checks
as a row planned alone. Plus the cheaper helpers of the create path (email fast path, ``new_instance``,
column-wise COPY values), each held to what Django itself does."""

from __future__ import annotations

import gc

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

from accounts.exceptions import ValidationFailed
from accounts.identity import bulkio
from accounts.identity.audit import events_saved
from accounts.identity.orgs import org_update_settings
from accounts.identity.service import apply_identity_change, apply_identity_changes
from accounts.identity.types import Actor, IdentityChange, Mode, Source, UserState
from accounts.identity.validators import validate_email
from accounts.models import AuditEvent, Role, UserProfile

pytestmark = pytest.mark.django_db


def _roles(username: str) -> set[str]:
    return set(User.objects.get(username=username).groups.filter(role__isnull=False)
               .values_list("role__slug", flat=True))


def test_each_row_of_a_batch_gets_its_own_orgs_roles_warnings_and_refusals(org_factory, system_actor,
                                                                            user_factory):
    ops = org_factory("Ops")
    org_update_settings(actor=system_actor, org=ops, inherit_default_roles=False,
                        default_roles=list(Role.objects.filter(slug__in=["user-modify", "help-desk"])))
    ops_team = org_factory("Ops team", parent=ops)
    org_update_settings(actor=system_actor, org=ops_team, inherit_default_roles=False,
                        default_roles=list(Role.objects.filter(slug__in=["console-user"])))
    other = org_factory("Elsewhere")
    org_admin = user_factory("oa", org=ops, roles=["org-admin"])

    def row(ref, username, org, **kw):
        return IdentityChange(username=username, org_id=org.pk, mode=Mode.CREATE, ref=ref, **kw)

    result = apply_identity_changes(actor=Actor.for_user(org_admin), changes=[
        row(1, "ops1", ops),                                     # defaults: Help Desk skipped, warned
        row(2, "ops2", ops),                                     # the same again: warned again
        row(3, "out1", other),                                   # out of the admin's scope
        row(4, "out2", other),                                   # refused again, not remembered
        row(5, "ops3", ops, roles=frozenset({"help-desk"})),     # explicit role the admin may not give
        row(6, "ops4", ops, roles=frozenset({"user-modify"})),   # explicit role the admin holds
        row(7, "team1", ops_team),                               # another org: its own defaults
        row(8, "ops5", ops, roles=frozenset({"user-modify", "console-user"}),
            roles_remove=frozenset({"console-user"})),           # same org, other references, same roles
        row(9, "bad1", ops, email="not-an-email", roles=frozenset({"no-such-role"})),  # email judged first
        row(10, "bad2", ops, roles=frozenset({"no-such-role"})),
        row(11, "bad3", ops, roles=frozenset({"no-such-role"})),
        row(12, "ops6", ops),                                    # defaults after all of the above
    ])
    outcome = {r.ref: (r.status, r.error.code if r.error else None) for r in result.results}
    assert outcome == {
        1: ("created", None), 2: ("created", None), 3: ("refused", "out_of_scope"),
        4: ("refused", "out_of_scope"), 5: ("refused", "role_not_assignable"), 6: ("created", None),
        7: ("created", None), 8: ("created", None), 9: ("refused", "email_invalid"),
        10: ("refused", "unknown_role"), 11: ("refused", "unknown_role"), 12: ("created", None),
    }
    warned = {r.ref for r in result.results if r.warnings}
    assert warned == {1, 2, 12}
    assert all("Help Desk" in r.warnings[0] for r in result.results if r.warnings)
    assert _roles("ops1") == _roles("ops2") == _roles("ops6") == {"user-modify"}
    assert _roles("ops4") == _roles("ops5") == {"user-modify"}
    assert _roles("team1") == {"console-user"}
    assert not User.objects.filter(username__in=["out1", "out2", "ops3", "bad1", "bad2", "bad3"]).exists()
    audited = dict(AuditEvent.objects.filter(action="user.created", target_label__in=["ops1", "team1"])
                   .values_list("target_label", "new_value__roles"))
    assert audited == {"ops1": ["User Modify"], "team1": ["Console User"]}


def test_a_provider_is_refused_cloud_admin_on_every_row(root_org):
    okta = Actor.provider_actor(source=Source.SCIM, provider="okta", label="okta")
    changes = [IdentityChange(username=f"p{i}", org_id=root_org.pk, roles=frozenset({"customer-cloud-admin"}),
                              ref=i) for i in range(3)]
    changes.append(IdentityChange(username="p-ok", org_id=root_org.pk, roles=frozenset({"help-desk"}), ref=3))
    result = apply_identity_changes(actor=okta, changes=changes)
    assert [(r.status, r.error.code if r.error else None) for r in result.results] == [
        ("refused", "role_not_assignable")] * 3 + [("created", None)]


@pytest.mark.parametrize("address", [
    "user0@example.com", "A_b+c-d@Sub.Example.ORG", "first.last@host-1.example.co",
    "a..b@example.com", ".a@example.com", "a.@example.com", "a@-b.com", "a@b-.com", "a@b.c", "a@b.com.",
    "a@" + "b" * 64 + ".com", "a@b." + "c" * 64, "a@example.com\n", "a b@example.com", "\u00fc@example.com",
    "a@b\u00fccher.example", "a@xn--bcher-kva.example", "a@localhost", "a@127.0.0.1", "a@[127.0.0.1]",
    '"quoted"@example.com', "o'brien@example.com", "a@b@example.com", "a@example.c0m", "a@ex_ample.com",
])
def test_validate_email_accepts_exactly_what_djangos_validator_accepts(address):
    try:
        EmailValidator()(address)
        valid = True
    except ValidationError:
        valid = False
    if valid:
        assert validate_email(address) == address.rsplit("@", 1)[0] + "@" + address.rsplit("@", 1)[1].lower()
    else:
        with pytest.raises(ValidationFailed) as err:
            validate_email(address)
        assert err.value.code in ("email_invalid", "email_spaces")


def test_new_instance_matches_model_init():
    ours = bulkio.new_instance(UserProfile, org_id=5, notes="n", source=Source.LDAP)
    theirs = UserProfile(org_id=5, notes="n", source=Source.LDAP)
    volatile = {"_state", "created_at", "updated_at"}
    assert {k: v for k, v in vars(ours).items() if k not in volatile} == {
        k: v for k, v in vars(theirs).items() if k not in volatile}
    assert list(vars(ours)) == [k for k in vars(theirs)]  # the same fields, in the same order
    assert ours._state.adding and ours.pk is None
    with pytest.raises(TypeError, match="no_such_field"):
        bulkio.new_instance(UserProfile, org_id=5, no_such_field=1)


def test_copy_columns_store_enum_members_and_plain_strings_alike(root_org):
    users = [User.objects.create(username=f"col{i}") for i in range(4)]
    states = [UserState.BLOCKED, "blocked", UserState.ACTIVE, "active"]
    sources = [Source.LDAP, "ldap", Source.LOCAL, "local"]
    profiles = [bulkio.new_instance(UserProfile, user_id=u.pk, org_id=root_org.pk, state=st, source=so,
                                    notes=None if i == 3 else f"note {i}")
                for i, (u, st, so) in enumerate(zip(users, states, sources, strict=True))]
    profiles[3].notes = ""  # NOT NULL: a None in a str column would be refused by the database
    bulkio.insert_objects(UserProfile, profiles)
    stored = list(UserProfile.objects.filter(user__in=users).order_by("user_id").values_list("state", "source",
                                                                                             "notes"))
    assert stored == [("blocked", "ldap", "note 0"), ("blocked", "ldap", "note 1"), ("active", "local", "note 2"),
                      ("active", "local", "")]
    assert all(type(value) is str for row in stored for value in row)


def test_the_collector_is_off_during_a_batch_and_back_on_after_it(root_org, system_actor):
    seen = []

    def receiver(sender, events, **kwargs):
        seen.append(gc.isenabled())
        if any(e.target_label == "boom" for e in events):
            raise RuntimeError("receiver failed")

    changes = [IdentityChange(username=f"gc{i}", org_id=root_org.pk, ref=i) for i in range(3)]
    events_saved.connect(receiver)
    try:
        assert gc.isenabled()
        apply_identity_changes(actor=system_actor, changes=changes, batch_size=2)
        assert seen == [False, False] and gc.isenabled()  # two batches, each with the collector off

        with pytest.raises(RuntimeError):
            apply_identity_changes(actor=system_actor, changes=[IdentityChange(username="boom", org_id=root_org.pk)])
        assert gc.isenabled()  # back on after a failed batch too

        gc.disable()  # a caller that turned it off keeps it off
        try:
            apply_identity_changes(actor=system_actor, changes=[IdentityChange(username="gc-off", org_id=root_org.pk)])
            assert not gc.isenabled()
        finally:
            gc.enable()
    finally:
        events_saved.disconnect(receiver)
    assert User.objects.filter(username__startswith="gc").count() == 4 and not User.objects.filter(
        username="boom").exists()


def test_a_created_user_and_its_profile_are_linked_both_ways(root_org, system_actor, django_assert_num_queries):
    user = apply_identity_change(actor=system_actor, change=IdentityChange(username="linked-both", org_id=root_org.pk,
                                                                           mode=Mode.CREATE)).user
    with django_assert_num_queries(0):
        profile = user.profile
        assert profile.user is user and profile.user_id == user.pk and profile.org_id == root_org.pk
    assert UserProfile.objects.get(user=user).pk == profile.pk and not profile._state.adding
