"""The identity service: every rule, every source. Real database, no mocks."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.exceptions import ConflictError, NotFound, PolicyDenied, ValidationFailed
from accounts.identity.groups import group_create, group_delete
from accounts.identity.service import apply_identity_change, apply_identity_changes
from accounts.identity.types import Actor, ExternalLink, IdentityChange, Mode, Source, UserState
from accounts.models import AuditEvent, ExternalIdentity, PasswordHistory, UserProfile
from accounts.roles import CONSOLE_USER, CUSTOMER_CLOUD_ADMIN, DESKTOP_USER
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db


def roles_of(user) -> set[str]:
    return set(user.groups.filter(role__isnull=False).values_list("role__slug", flat=True))


def events(action: str, user=None):
    qs = AuditEvent.objects.filter(action=action)
    if user is not None:
        qs = qs.filter(target_id=str(user.pk))
    return list(qs)


def scim_actor(provider="okta") -> Actor:
    return Actor.provider_actor(source=Source.SCIM, provider=provider, label=f"scim:{provider}")


def ldap_actor(provider="corp") -> Actor:
    return Actor.provider_actor(source=Source.LDAP, provider=provider, label=f"ldap:{provider}")


# --- create ---------------------------------------------------------------------------------


def test_create_user_gets_org_default_roles_and_one_audit_event(root_org, system_actor):
    result = apply_identity_change(actor=system_actor, change=IdentityChange(
        username="alice", email="alice@Example.COM", first_name="Alice", last_name="Liddell",
        password=TEST_PASSWORD, org_id=root_org.pk,
    ))
    user = User.objects.get(username="alice")
    assert result.status == "created" and result.user.pk == user.pk
    assert user.email == "alice@example.com"  # domain normalised
    assert user.check_password(TEST_PASSWORD)
    assert user.profile.org == root_org and user.profile.state == UserState.ACTIVE
    assert user.profile.source == Source.LOCAL
    assert roles_of(user) == {CONSOLE_USER, DESKTOP_USER}
    [event] = events("user.created", user)
    assert event.new_value["username"] == "alice" and event.new_value["org"] == root_org.name
    assert event.actor_label == "tests" and event.actor_type == "system"
    assert PasswordHistory.objects.filter(user=user).count() == 1


def test_create_without_password_is_invited_with_unusable_password(root_org, system_actor):
    result = apply_identity_change(actor=system_actor, change=IdentityChange(username="inv", org_id=root_org.pk))
    user = result.user
    user.refresh_from_db()
    assert user.profile.state == UserState.INVITED
    assert not user.has_usable_password()
    assert user.is_active  # can still accept the invitation


def test_explicit_roles_replace_defaults(root_org, system_actor):
    user = apply_identity_change(actor=system_actor, change=IdentityChange(
        username="aud", org_id=root_org.pk, roles=frozenset({"audit-log-viewer"}),
    )).user
    assert roles_of(user) == {"audit-log-viewer"}


@pytest.mark.parametrize("username", ["Alice", "ALICE", "alice"])
def test_duplicate_username_refused_in_any_case(user_factory, root_org, system_actor, username):
    user_factory("alice")
    with pytest.raises(ConflictError) as err:
        apply_identity_change(actor=system_actor, change=IdentityChange(
            username=username, org_id=root_org.pk, mode=Mode.CREATE))
    assert err.value.code == "username_taken"
    assert User.objects.filter(username__iexact="alice").count() == 1


def test_case_insensitive_uniqueness_is_a_database_rule(user_factory):
    from django.db import IntegrityError

    user_factory("bob")
    with pytest.raises(IntegrityError):
        User.objects.create(username="BOB")


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"username": ""}, "username_required"),
        ({"username": " spaced"}, "username_spaces"),
        ({"username": "has space"}, "username_invalid"),
        ({"username": "x" * 151}, "username_too_long"),
        ({"username": "ok", "email": "not-an-email"}, "email_invalid"),
        ({"username": "ok", "email": " a@b.com"}, "email_spaces"),
        ({"username": "ok", "password": "short"}, "password_invalid"),
        ({"username": "ok", "password": "Password123"}, "password_invalid"),
        ({"username": "ok", "password": "Abcdefg1 x"}, "password_invalid"),
        ({"username": "ok", "password": "Aaab1234xyz"}, "password_invalid"),
        ({"username": "ok", "roles": frozenset({"no-such-role"})}, "unknown_role"),
    ],
)
def test_create_validation_errors_have_codes_and_write_nothing(root_org, system_actor, fields, code):
    before = (User.objects.count(), AuditEvent.objects.count())
    with pytest.raises((ValidationFailed, NotFound)) as err:
        apply_identity_change(actor=system_actor, change=IdentityChange(org_id=root_org.pk, **fields))
    assert err.value.code == code
    assert (User.objects.count(), AuditEvent.objects.count()) == before


def test_create_into_missing_or_deactivated_org_refused(org_factory, system_actor):
    from accounts.identity.orgs import org_set_active

    with pytest.raises(NotFound):
        apply_identity_change(actor=system_actor, change=IdentityChange(username="x1", org_id=999999))
    org = org_factory("Closed")
    org_set_active(actor=system_actor, org=org, active=False)
    with pytest.raises(ValidationFailed) as err:
        apply_identity_change(actor=system_actor, change=IdentityChange(username="x2", org_id=org.pk))
    assert err.value.code == "org_inactive"


def test_create_only_mode_refuses_existing_and_update_mode_refuses_missing(user_factory, root_org, system_actor):
    user_factory("carol")
    with pytest.raises(ConflictError):
        apply_identity_change(actor=system_actor, change=IdentityChange(username="carol", org_id=root_org.pk,
                                                                        mode=Mode.CREATE))
    with pytest.raises(NotFound) as err:
        apply_identity_change(actor=system_actor, change=IdentityChange(username="nobody", mode=Mode.UPDATE))
    assert err.value.code == "user_not_found"


# --- update: only what changed, one audit event per change ----------------------------------


def test_update_writes_only_changed_fields_with_old_and_new(user_factory, system_actor):
    user = user_factory("dave", first_name="Dave", email="dave@example.com")
    AuditEvent.objects.all()  # noqa: B018
    before = AuditEvent.objects.count()
    result = apply_identity_change(actor=system_actor, change=IdentityChange(
        user_id=user.pk, first_name="David", email="dave@example.com", last_name="User"))
    assert result.status == "updated" and result.changed_fields == ["first_name"]
    assert AuditEvent.objects.count() == before + 1
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.field, event.old_value, event.new_value) == ("user.updated", "first_name", "Dave",
                                                                              "David")


def test_unchanged_change_writes_nothing(user_factory, system_actor):
    user = user_factory("erin", first_name="Erin")
    before = AuditEvent.objects.count()
    with CaptureQueriesContext(connection) as ctx:
        result = apply_identity_change(actor=system_actor, change=IdentityChange(user_id=user.pk, first_name="Erin"))
    assert result.status == "unchanged"
    assert AuditEvent.objects.count() == before
    writes = [q["sql"] for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE",
                                                                                                  "DELETE"))]
    assert writes == []


def test_rename_username_checks_uniqueness(user_factory, system_actor):
    user_factory("frank")
    grace = user_factory("grace")
    with pytest.raises(ConflictError):
        apply_identity_change(actor=system_actor, change=IdentityChange(user_id=grace.pk, username="FRANK"))
    apply_identity_change(actor=system_actor, change=IdentityChange(user_id=grace.pk, username="Grace"))
    grace.refresh_from_db()
    assert grace.username == "Grace"


def test_block_unblock_deactivate_reactivate(user_factory, system_actor):
    user = user_factory("henry")
    for state, active, action in [
        (UserState.BLOCKED, False, "user.blocked"),
        (UserState.ACTIVE, True, "user.unblocked"),
        (UserState.DEACTIVATED, False, "user.deactivated"),
        (UserState.ACTIVE, True, "user.reactivated"),
    ]:
        apply_identity_change(actor=system_actor, change=IdentityChange(user_id=user.pk, state=state))
        user.refresh_from_db()
        assert user.profile.state == state and user.is_active is active
        assert events(action, user)
    assert user.profile.deactivated_at is None and user.profile.blocked_at is None


def test_blocked_user_cannot_sign_in(client, user_factory, system_actor):
    user = user_factory("ivan")
    assert client.login(username="ivan", password=TEST_PASSWORD)
    apply_identity_change(actor=system_actor, change=IdentityChange(user_id=user.pk, state=UserState.BLOCKED))
    client.logout()
    assert not client.login(username="ivan", password=TEST_PASSWORD)


def test_move_org_and_roles_are_audited(user_factory, org_factory, system_actor):
    eng = org_factory("Engineering")
    user = user_factory("judy")
    apply_identity_change(actor=system_actor, change=IdentityChange(
        user_id=user.pk, org_id=eng.pk, roles_add=frozenset({"help-desk"}), roles_remove=frozenset({DESKTOP_USER})))
    user.refresh_from_db()
    assert user.profile.org == eng
    assert roles_of(user) == {CONSOLE_USER, "help-desk"}
    [moved] = events("user.moved", user)
    assert (moved.old_value, moved.new_value) == ("Default Organization", "Engineering")
    assert [e.new_value for e in events("user.role_added", user)] == ["Help Desk"]
    assert [e.old_value for e in events("user.role_removed", user)] == ["Desktop User"]


def test_roles_set_to_empty_falls_back_to_org_defaults(user_factory, system_actor):
    user = user_factory("kim", roles=["help-desk"])
    result = apply_identity_change(actor=system_actor, change=IdentityChange(user_id=user.pk, roles=frozenset()))
    assert roles_of(user) == {CONSOLE_USER, DESKTOP_USER}
    assert result.warnings


def test_password_change_validates_and_keeps_history(user_factory, system_actor):
    user = user_factory("leo")
    with pytest.raises(ValidationFailed) as err:
        apply_identity_change(actor=system_actor, change=IdentityChange(user_id=user.pk, password=TEST_PASSWORD))
    assert err.value.code == "password_invalid" and "recently" in err.value.message
    apply_identity_change(actor=system_actor, change=IdentityChange(user_id=user.pk, password="Fresh-Lemon-77"))
    user.refresh_from_db()
    assert user.check_password("Fresh-Lemon-77")
    [event] = events("user.password_changed", user)
    assert event.new_value == "(changed)"  # never the password or its hash


def test_invited_user_becomes_active_when_password_set(root_org, system_actor):
    user = apply_identity_change(actor=system_actor, change=IdentityChange(username="mia", org_id=root_org.pk)).user
    apply_identity_change(actor=system_actor, change=IdentityChange(user_id=user.pk, password="Fresh-Lemon-77"))
    user.refresh_from_db()
    assert user.profile.state == UserState.ACTIVE


# --- policy guards ----------------------------------------------------------------------------


def test_last_cloud_admin_cannot_be_deactivated_blocked_or_demoted(admin_user, system_actor):
    for change in (
        IdentityChange(user_id=admin_user.pk, state=UserState.DEACTIVATED),
        IdentityChange(user_id=admin_user.pk, state=UserState.BLOCKED),
        IdentityChange(user_id=admin_user.pk, roles_remove=frozenset({CUSTOMER_CLOUD_ADMIN})),
        IdentityChange(user_id=admin_user.pk, roles=frozenset({CONSOLE_USER})),
    ):
        with pytest.raises(PolicyDenied) as err:
            apply_identity_change(actor=system_actor, change=change)
        assert err.value.code == "last_admin"
    admin_user.refresh_from_db()
    assert admin_user.is_active and CUSTOMER_CLOUD_ADMIN in roles_of(admin_user)


def test_second_admin_allows_deactivating_first_but_not_both_in_one_batch(admin_user, user_factory, system_actor):
    second = user_factory("admin2", roles=[CUSTOMER_CLOUD_ADMIN])
    result = apply_identity_changes(actor=system_actor, changes=[
        IdentityChange(user_id=admin_user.pk, state=UserState.DEACTIVATED, ref=1),
        IdentityChange(user_id=second.pk, state=UserState.DEACTIVATED, ref=2),
    ])
    assert [r.status for r in result.results] == ["updated", "refused"]
    assert result.results[1].error.code == "last_admin"
    second.refresh_from_db()
    assert second.is_active


def test_user_cannot_change_own_roles_or_lock_themselves_out(admin_user, user_factory):
    user_factory("admin2", roles=[CUSTOMER_CLOUD_ADMIN])
    actor = Actor.for_user(admin_user)
    with pytest.raises(PolicyDenied) as err:
        apply_identity_change(actor=actor, change=IdentityChange(user_id=admin_user.pk,
                                                                 roles_add=frozenset({"help-desk"})))
    assert err.value.code == "self_role_change"
    with pytest.raises(PolicyDenied) as err:
        apply_identity_change(actor=actor, change=IdentityChange(user_id=admin_user.pk, state=UserState.BLOCKED))
    assert err.value.code == "self_lockout"


def test_org_admin_is_limited_to_own_subtree(user_factory, org_factory):
    eng = org_factory("Engineering")
    platform = org_factory("Platform", parent=eng)
    sales = org_factory("Sales")
    org_admin = user_factory("oa", org=eng, roles=["org-admin"])
    actor = Actor.for_user(org_admin)
    inside = apply_identity_change(actor=actor, change=IdentityChange(username="dev1", org_id=platform.pk)).user
    assert inside.profile.org == platform
    with pytest.raises(PolicyDenied) as err:
        apply_identity_change(actor=actor, change=IdentityChange(username="rep1", org_id=sales.pk))
    assert err.value.code == "out_of_scope"
    seller = user_factory("seller", org=sales)
    with pytest.raises(PolicyDenied):
        apply_identity_change(actor=actor, change=IdentityChange(user_id=seller.pk, state=UserState.BLOCKED))
    with pytest.raises(PolicyDenied):  # can't move own user out of scope either
        apply_identity_change(actor=actor, change=IdentityChange(user_id=inside.pk, org_id=sales.pk))


def test_org_admin_cannot_grant_cloud_admin_or_global_admin_roles(user_factory, org_factory):
    eng = org_factory("Engineering")
    org_admin = user_factory("oa", org=eng, roles=["org-admin"])
    dev = user_factory("dev", org=eng)
    actor = Actor.for_user(org_admin)
    for role in (CUSTOMER_CLOUD_ADMIN, "cross-org-admin", "audit-log-viewer"):
        with pytest.raises(PolicyDenied) as err:
            apply_identity_change(actor=actor, change=IdentityChange(user_id=dev.pk, roles_add=frozenset({role})))
        assert err.value.code == "role_not_assignable"
    apply_identity_change(actor=actor, change=IdentityChange(user_id=dev.pk, roles_add=frozenset({"org-manager"})))
    assert "org-manager" in roles_of(dev)


def test_providers_never_change_local_users(user_factory):
    local = user_factory("local1")
    for actor in (scim_actor(), ldap_actor()):
        with pytest.raises(PolicyDenied) as err:
            apply_identity_change(actor=actor, change=IdentityChange(user_id=local.pk, first_name="Hacked"))
        assert err.value.code == "not_owner"
    local.refresh_from_db()
    assert local.first_name == "Test"


def test_provider_changes_only_its_own_users(root_org):
    okta = scim_actor("okta")
    created = apply_identity_change(actor=okta, change=IdentityChange(
        username="pat", org_id=root_org.pk, link=ExternalLink(Source.SCIM, "okta", "00u1"),
        match_link=ExternalLink(Source.SCIM, "okta", "00u1")))
    assert created.user.profile.source == Source.SCIM and created.user.profile.source_provider == "okta"
    assert created.user.profile.state == UserState.ACTIVE  # providers create active users
    with pytest.raises(PolicyDenied):
        apply_identity_change(actor=scim_actor("entra"), change=IdentityChange(user_id=created.user.pk,
                                                                                 first_name="X"))
    result = apply_identity_change(actor=okta, change=IdentityChange(
        match_link=ExternalLink(Source.SCIM, "okta", "00u1"), first_name="Patricia"))
    assert result.status == "updated"


def test_bulk_upload_may_not_touch_provider_users_and_console_only_state_roles_notes(root_org, admin_user):
    user = apply_identity_change(actor=ldap_actor(), change=IdentityChange(
        username="ldapuser", org_id=root_org.pk, link=ExternalLink(Source.LDAP, "corp", "guid-1"))).user
    bulk = Actor(label="admin", user=admin_user, source=Source.BULK)
    with pytest.raises(PolicyDenied) as err:
        apply_identity_change(actor=bulk, change=IdentityChange(user_id=user.pk, notes="x"))
    assert err.value.code == "managed_by_provider"
    console = Actor.for_user(admin_user)
    with pytest.raises(PolicyDenied) as err:
        apply_identity_change(actor=console, change=IdentityChange(user_id=user.pk, email="new@example.com"))
    assert err.value.code == "managed_by_provider" and err.value.field == "email"
    apply_identity_change(actor=console, change=IdentityChange(user_id=user.pk, state=UserState.BLOCKED,
                                                               notes="on leave"))
    user.refresh_from_db()
    assert user.profile.state == UserState.BLOCKED


# --- external identities ----------------------------------------------------------------------


def test_link_matches_before_username_so_renames_keep_the_link(root_org):
    okta = scim_actor()
    link = ExternalLink(Source.SCIM, "okta", "00u9")
    user = apply_identity_change(actor=okta, change=IdentityChange(
        username="old.name", org_id=root_org.pk, link=link, match_link=link)).user
    result = apply_identity_change(actor=okta, change=IdentityChange(
        username="new.name", match_link=link, link=link, org_id=root_org.pk))
    assert result.user.pk == user.pk and result.status == "updated"
    user.refresh_from_db()
    assert user.username == "new.name"
    assert ExternalIdentity.objects.get(user=user).external_id == "00u9"


def test_external_id_linked_to_another_user_is_a_conflict(user_factory, system_actor):
    a, b = user_factory("la"), user_factory("lb")
    link = ExternalLink(Source.SAML, "1", "nameid-a")
    apply_identity_change(actor=system_actor, change=IdentityChange(user_id=a.pk, link=link))
    with pytest.raises(ConflictError) as err:
        apply_identity_change(actor=system_actor, change=IdentityChange(user_id=b.pk, link=link))
    assert err.value.code == "external_id_taken"


def test_saml_may_link_but_not_edit_local_users(user_factory):
    user = user_factory("sam")
    saml = Actor(label="saml:1", type="provider", source=Source.SAML, provider="1")
    apply_identity_change(actor=saml, change=IdentityChange(user_id=user.pk,
                                                            link=ExternalLink(Source.SAML, "1", "sam@idp")))
    assert ExternalIdentity.objects.filter(user=user, source=Source.SAML).exists()
    with pytest.raises(PolicyDenied):
        apply_identity_change(actor=saml, change=IdentityChange(user_id=user.pk, first_name="Other"))


# --- directory groups -------------------------------------------------------------------------


def test_directory_groups_are_kept_apart_from_roles(root_org):
    okta = scim_actor()
    group = group_create(actor=okta, display_name="Engineers", external_id="g1")
    user = apply_identity_change(actor=okta, change=IdentityChange(
        username="gina", org_id=root_org.pk, groups_add=frozenset({group.group_id}))).user
    assert user.groups.filter(pk=group.group_id).exists()
    assert roles_of(user) == {CONSOLE_USER, DESKTOP_USER}
    with pytest.raises(NotFound):  # a role's group is not a directory group
        from accounts.models import Role

        apply_identity_change(actor=okta, change=IdentityChange(
            user_id=user.pk, groups_add=frozenset({Role.objects.get(slug=CUSTOMER_CLOUD_ADMIN).group_id})))
    group_delete(actor=okta, dgroup=group)
    assert not user.groups.filter(directory_group__isnull=False).exists()
    assert events("user.group_removed", user) and events("group.deleted")


# --- bulk path ----------------------------------------------------------------------------------


def test_bulk_per_item_results_in_input_order(user_factory, root_org, system_actor):
    user_factory("existing", first_name="Old")
    changes = [
        IdentityChange(username="n1", org_id=root_org.pk, ref="l2"),
        IdentityChange(username="existing", first_name="New", ref="l3"),
        IdentityChange(username="existing", first_name="New", ref="l4"),
        IdentityChange(username="N1", org_id=root_org.pk, ref="l5"),
        IdentityChange(username="bad email", org_id=root_org.pk, ref="l6"),
        IdentityChange(username="n2", org_id=root_org.pk, roles=frozenset({"nope"}), ref="l7"),
    ]
    result = apply_identity_changes(actor=system_actor, changes=changes, batch_size=4)
    assert [(r.ref, r.status) for r in result.results] == [
        ("l2", "created"), ("l3", "updated"), ("l4", "unchanged"), ("l5", "refused"), ("l6", "refused"),
        ("l7", "refused"),
    ]
    assert result.results[3].error.code == "username_duplicate_in_batch"
    assert result.counts() == {"created": 1, "updated": 1, "unchanged": 1, "refused": 3}
    assert not User.objects.filter(username="n2").exists()


def test_bulk_uses_a_constant_number_of_queries(root_org, system_actor):
    def run(n, offset):
        changes = [IdentityChange(username=f"q{offset + i}", org_id=root_org.pk, roles=frozenset({"help-desk"}))
                   for i in range(n)]
        with CaptureQueriesContext(connection) as ctx:
            apply_identity_changes(actor=system_actor, changes=changes)
        return len(ctx.captured_queries)

    small, large = run(10, 0), run(300, 1000)
    # No query per row: 30x the rows costs only extra insert batches (SQLite caps parameters per statement).
    assert large < small + 15 < 300
    assert UserProfile.objects.filter(user__username__startswith="q").count() == 310


def test_bulk_dry_run_writes_nothing(root_org, system_actor):
    before = (User.objects.count(), AuditEvent.objects.count())
    result = apply_identity_changes(actor=system_actor, dry_run=True, changes=[
        IdentityChange(username=f"d{i}", org_id=root_org.pk) for i in range(5)])
    assert result.counts()["created"] == 5
    assert (User.objects.count(), AuditEvent.objects.count()) == before


def test_bulk_progress_callback(root_org, system_actor):
    seen = []
    apply_identity_changes(actor=system_actor, batch_size=3, on_progress=seen.append,
                           changes=[IdentityChange(username=f"p{i}", org_id=root_org.pk) for i in range(7)])
    assert seen == [3, 6, 7]


def test_audit_events_carry_actor_request_and_job(admin_user, root_org):
    actor = Actor(label="admin", user=admin_user, request_id="req123", job_id="job9", ip="127.0.0.1")
    user = apply_identity_change(actor=actor, change=IdentityChange(username="aud1", org_id=root_org.pk)).user
    [event] = events("user.created", user)
    assert (event.actor_id, event.request_id, event.job_id, event.ip_address) == (admin_user.pk, "req123", "job9",
                                                                                   "127.0.0.1")


def test_audit_events_are_append_only(admin_user):
    event = AuditEvent.objects.first()
    event.action = "tampered"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().update(action="x")
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()


def test_noop_upload_row_for_provider_user_is_unchanged_not_refused(root_org, admin_user):
    user = apply_identity_change(actor=ldap_actor(), change=IdentityChange(
        username="ldap2", first_name="Lee", org_id=root_org.pk)).user
    bulk = Actor(label="admin", user=admin_user, source=Source.BULK)
    result = apply_identity_changes(actor=bulk, changes=[IdentityChange(user_id=user.pk, first_name="Lee")])
    assert result.results[0].status == "unchanged"


def test_refused_change_leaves_no_trace_for_later_rows_of_the_same_user(user_factory, admin_user, system_actor):
    target = user_factory("twice", first_name="Orig")
    actor = Actor.for_user(admin_user)
    result = apply_identity_changes(actor=actor, changes=[
        # first_name is planned, then the role change is refused (self-demotion is not it; unknown role is)
        IdentityChange(user_id=target.pk, first_name="Leaked", roles_add=frozenset({"nope"}), ref=1),
        IdentityChange(user_id=target.pk, last_name="Second", ref=2),
    ])
    assert [r.status for r in result.results] == ["refused", "updated"]
    target.refresh_from_db()
    assert (target.first_name, target.last_name) == ("Orig", "Second")


def test_two_rows_for_one_user_apply_in_order(user_factory, system_actor):
    target = user_factory("seq", first_name="A")
    result = apply_identity_changes(actor=system_actor, changes=[
        IdentityChange(user_id=target.pk, first_name="B", ref=1),
        IdentityChange(user_id=target.pk, first_name="B", roles_add=frozenset({"help-desk"}), ref=2),
    ])
    assert [r.status for r in result.results] == ["updated", "updated"]
    assert result.results[1].changed_fields == ["roles"]
    target.refresh_from_db()
    assert target.first_name == "B" and "help-desk" in roles_of(target)


def test_django_admin_access_only_from_system_actors(root_org, admin_user, system_actor):
    result = apply_identity_change(actor=system_actor, change=IdentityChange(
        username="root2", org_id=root_org.pk, django_admin=True))
    result.user.refresh_from_db()
    assert result.user.is_superuser and result.user.is_staff
    assert events("user.django_admin_granted", result.user)
    with pytest.raises(PolicyDenied) as err:
        apply_identity_change(actor=Actor.for_user(admin_user), change=IdentityChange(
            user_id=result.user.pk, django_admin=False))
    assert err.value.code == "django_admin_system_only"


def test_create_first_admin_command_goes_through_the_service(db):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("create_first_admin", "--username", "boss", "--password", "Zebra-Lamp-42x", stdout=out)
    boss = User.objects.get(username="boss")
    assert boss.is_superuser and CUSTOMER_CLOUD_ADMIN in roles_of(boss)
    assert {e.action for e in AuditEvent.objects.filter(target_id=str(boss.pk))} >= {
        "user.created", "user.django_admin_granted"}
    call_command("create_first_admin", stdout=out)  # idempotent
    assert "already exists" in out.getvalue()
