"""The privilege rule as a pure function (accounts/identity/privilege.py), and its database helpers.

The role × role × action matrix through the service and the front doors is in test_privilege_matrix.py.
"""

from __future__ import annotations

import pytest

from accounts.exceptions import PolicyDenied
from accounts.identity.privilege import (
    PROVIDER,
    SYSTEM,
    Powers,
    check_planned_update,
    check_privilege,
    covers,
    powers_from_roles,
    powers_of_access,
    with_paths,
)
from accounts.roles import ALL_PERMS, CATALOGUE

ACME, ENG, SALES = "/1/", "/1/2/", "/1/3/"
SPEC = {s.slug: s for s in CATALOGUE}


def role(slug: str) -> tuple[str, tuple[str, ...], str]:
    spec = SPEC[slug]
    return spec.slug, spec.perms, spec.scope


def powers(*slugs: str, org: str = ACME, superuser: bool = False) -> Powers:
    return powers_from_roles([role(s) for s in slugs], org_path=org, superuser=superuser)


def refusal(actor: Powers, target: Powers | None, **kwargs) -> PolicyDenied | None:
    try:
        check_privilege(actor=actor, target=target, **kwargs)
    except PolicyDenied as exc:
        return exc
    return None


# --- covers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("actor", "target", "expected"), [
    (None, None, True),
    (None, frozenset({ENG}), True),
    (frozenset({ACME}), None, False),
    (frozenset({ACME}), frozenset({ENG}), True),
    (frozenset({ACME}), frozenset({ACME}), True),
    (frozenset({ENG}), frozenset({ACME}), False),
    (frozenset({ENG}), frozenset({ENG, SALES}), False),
    (frozenset({ENG, SALES}), frozenset({ENG, SALES}), True),
    (frozenset(), frozenset({ENG}), False),
    (frozenset({ACME}), frozenset(), True),
])
def test_covers(actor, target, expected):
    assert covers(actor, target) is expected


def test_covers_compares_whole_path_segments():
    # "/1/2/" must not cover "/1/23/": paths end with a slash, so prefixes are whole segments.
    assert covers(frozenset({"/1/2/"}), frozenset({"/1/23/"})) is False


# --- powers_from_roles -----------------------------------------------------------------------


def test_powers_from_roles_scopes():
    p = powers("org-admin", "help-desk", org=ENG)
    assert p.grants["manage_users"] == frozenset({ENG})
    assert p.grants["reset_passwords"] is None  # Help Desk is global: the wider reach wins
    assert p.cloud_admin is False and p.superuser is False
    assert powers("customer-cloud-admin").cloud_admin is True
    assert set(powers("customer-cloud-admin").grants) == set(ALL_PERMS)
    assert all(v is None for v in powers("customer-cloud-admin").grants.values())


def test_powers_from_roles_global_first_then_org_scoped_stays_global():
    p = powers_from_roles([role("help-desk"), role("org-admin")], org_path=ENG)
    assert p.grants["reset_passwords"] is None


def test_powers_from_roles_without_org_has_no_org_scoped_grants():
    p = powers_from_roles([role("org-manager")], org_path=None)
    assert "manage_users" not in p.grants


def test_powers_of_superuser_hold_everything():
    p = powers(superuser=True)
    assert p.superuser and p.cloud_admin and set(p.grants) == set(ALL_PERMS)


def test_with_paths_adds_the_new_org_to_org_scoped_grants_only():
    p = with_paths(powers("org-admin", "help-desk", org=ENG), SALES)
    assert p.grants["manage_users"] == frozenset({ENG, SALES})
    assert p.grants["reset_passwords"] is None


# --- check_privilege: console users ----------------------------------------------------------


def test_equal_powers_may_change_each_other():
    assert refusal(powers("org-admin"), powers("org-admin")) is None
    assert refusal(powers("help-desk"), powers("help-desk")) is None


def test_plain_user_may_be_changed_by_any_user_manager():
    # Console User / Desktop User hold only sign-in permissions: they carry no power over others.
    target = powers("console-user", "desktop-user")
    for actor in ("org-manager", "user-modify", "org-admin", "multi-factor-auth-admin"):
        assert refusal(powers(actor), target) is None


def test_org_manager_may_not_change_a_cloud_admin():
    exc = refusal(powers("org-manager"), powers("customer-cloud-admin"), target_label="root")
    assert exc.code == "target_more_privileged"
    assert exc.message == "Only a Customer Cloud Admin can change root."


def test_cross_org_admin_may_not_change_a_superuser():
    exc = refusal(powers("cross-org-admin"), powers("customer-cloud-admin", superuser=True), target_label="first")
    assert exc.code == "target_more_privileged"
    assert exc.message == "Only a Django superuser can change first, who has Django admin access."


def test_cloud_admin_may_not_change_a_superuser_but_a_superuser_may():
    target = powers("customer-cloud-admin", superuser=True)
    assert refusal(powers("customer-cloud-admin"), target).code == "target_more_privileged"
    assert refusal(powers(superuser=True), target) is None


def test_all_permissions_without_the_cloud_admin_role_is_not_a_cloud_admin():
    everything = Powers(grants={p: None for p in ALL_PERMS})
    assert refusal(everything, powers("customer-cloud-admin")).code == "target_more_privileged"


def test_user_modify_may_not_change_an_org_admin_and_message_names_what_is_missing():
    exc = refusal(powers("user-modify"), powers("org-admin"), target_label="oa")
    assert exc.code == "target_more_privileged"
    assert exc.message == (
        "Only a Customer Cloud Admin, or an admin who also holds Assign roles, Manage organizations, "
        "Manage users, Reset passwords wherever oa holds them, can change oa.")


def test_message_for_one_missing_permission_is_singular():
    exc = refusal(powers("user-modify"), powers("org-manager"), target_label="m")
    assert exc.message == "Only a Customer Cloud Admin, or an admin who also holds Manage users wherever m " \
                          "holds it, can change m."


def test_org_scoped_actor_may_not_change_a_global_holder_of_the_same_permission():
    # An Org Admin holds reset_passwords in their subtree; a Help Desk everywhere. Taking over the Help
    # Desk would give the Org Admin reach outside their subtree.
    exc = refusal(powers("org-admin"), powers("help-desk"))
    assert exc.code == "target_more_privileged" and "Reset passwords" in exc.message
    assert refusal(powers("cross-org-admin"), powers("help-desk")) is None


def test_org_scoped_reach_must_cover_the_target_org():
    actor = powers("org-admin", org=ENG)
    assert refusal(actor, powers("org-admin", org=ENG)) is None
    assert refusal(actor, powers("org-admin", org=ENG + "9/")) is None  # a sub-org of Engineering
    assert refusal(actor, powers("org-admin", org=SALES)).code == "target_more_privileged"
    assert refusal(actor, powers("org-admin", org=ACME)).code == "target_more_privileged"


def test_mfa_admin_may_not_reset_a_cloud_admin_but_may_reset_a_plain_user():
    assert refusal(powers("multi-factor-auth-admin"), powers("customer-cloud-admin")).code == "target_more_privileged"
    assert refusal(powers("multi-factor-auth-admin"), powers("console-user")) is None


def test_identity_admin_may_not_change_an_org_manager():
    assert refusal(powers("identity-management-administrator"), powers("org-manager")).code == \
        "target_more_privileged"


def test_creation_has_no_target_for_console_users():
    assert refusal(powers("org-manager"), None) is None


def test_inactive_cloud_admin_stays_protected():
    # Powers come from roles, whatever the user's state: blocking a Cloud Admin must not open them up.
    assert refusal(powers("org-manager"), powers("customer-cloud-admin")).code == "target_more_privileged"


# --- providers and system ------------------------------------------------------------------------


def test_system_actor_is_unrestricted():
    system = Powers(kind=SYSTEM)
    assert refusal(system, powers("customer-cloud-admin", superuser=True)) is None
    assert refusal(system, None, grants_roles={"customer-cloud-admin"}) is None


def test_provider_never_grants_cloud_admin():
    exc = refusal(Powers(kind=PROVIDER), None, grants_roles={"customer-cloud-admin", "help-desk"})
    assert exc.code == "role_not_assignable" and exc.field == "roles"
    assert "never grant Customer Cloud Admin" in exc.message
    assert refusal(Powers(kind=PROVIDER), powers("console-user"), grants_roles={"customer-cloud-admin"}).code == \
        "role_not_assignable"


def test_provider_never_changes_a_cloud_admin_or_superuser():
    for target in (powers("customer-cloud-admin"), powers(superuser=True)):
        exc = refusal(Powers(kind=PROVIDER), target, target_label="ca")
        assert exc.code == "target_more_privileged"
        assert exc.message.startswith("Only a Customer Cloud Admin can change ca")


def test_provider_may_change_other_admins_it_owns():
    # Ownership (only users the provider created) is the identity service's other guard.
    assert refusal(Powers(kind=PROVIDER), powers("org-admin"), grants_roles={"help-desk"}) is None


# --- check_planned_update --------------------------------------------------------------------


def planned(actor: Powers, changed, *, roles=("customer-cloud-admin",), org=ACME, new_org=None, added=(),
            superuser=False) -> str | None:
    try:
        check_planned_update(actor=actor, changed=changed, target_roles=[role(r) for r in roles],
                             superuser=superuser, org_path=org, new_org_path=new_org, added_roles=added)
    except PolicyDenied as exc:
        return exc.code
    return None


@pytest.mark.parametrize("field", ["username", "email", "password", "state", "org", "roles", "link"])
def test_planned_update_refuses_each_sensitive_field(field):
    assert planned(powers("org-manager"), [field]) == "target_more_privileged"


@pytest.mark.parametrize("field", ["first_name", "last_name", "notes", "groups"])
def test_planned_update_leaves_profile_fields_alone(field):
    assert planned(powers("user-modify"), [field]) is None


def test_planned_update_judges_a_move_at_the_new_org_too():
    actor = powers("org-admin", org=ENG)
    assert planned(actor, ["org"], roles=("org-manager",), org=ENG, new_org=ENG + "7/") is None
    assert planned(actor, ["org"], roles=("org-manager",), org=ENG, new_org=SALES) == "target_more_privileged"


def test_planned_update_refuses_provider_granting_cloud_admin_without_other_changes():
    assert planned(Powers(kind=PROVIDER), [], roles=("console-user",), added={"customer-cloud-admin"}) == \
        "role_not_assignable"


def test_saml_sign_in_may_link_a_cloud_admin_of_its_org_but_change_nothing_else():
    saml = Powers(kind=PROVIDER)
    assert planned(saml, ["link"]) == "target_more_privileged"
    with pytest.raises(PolicyDenied):
        check_planned_update(actor=saml, changed=["link", "email"], target_roles=[role("customer-cloud-admin")],
                             superuser=False, org_path=ACME, via_sign_in=True)
    check_planned_update(actor=saml, changed=["link"], target_roles=[role("customer-cloud-admin")],
                         superuser=False, org_path=ACME, via_sign_in=True)


def test_planned_update_superuser_flag_counts():
    assert planned(powers("customer-cloud-admin"), ["password"], superuser=True) == "target_more_privileged"


def test_default_label_and_provider_messages():
    assert refusal(powers("org-manager"), powers("customer-cloud-admin")).message == \
        "Only a Customer Cloud Admin can change this user."
    assert refusal(Powers(kind=PROVIDER), None, grants_roles={"customer-cloud-admin"}).message == (
        "Provisioning and single sign-on never grant Customer Cloud Admin: a Customer Cloud Admin "
        "assigns it in the console.")
    assert refusal(Powers(kind=PROVIDER), powers("customer-cloud-admin")).message == (
        "Only a Customer Cloud Admin can change this user: provisioning and single sign-on never change a "
        "Customer Cloud Admin.")


def test_permission_without_a_label_is_named_by_its_codename():
    target = Powers(grants={"custom_perm": None})
    assert refusal(Powers(grants={}), target).message == (
        "Only a Customer Cloud Admin, or an admin who also holds custom_perm wherever this user holds it, "
        "can change this user.")


def test_with_paths_keeps_who_the_powers_belong_to():
    for p in (powers("customer-cloud-admin", superuser=True), Powers(kind=PROVIDER)):
        moved = with_paths(p, SALES)
        assert (moved.cloud_admin, moved.superuser, moved.kind) == (p.cloud_admin, p.superuser, p.kind)


def test_planned_update_without_a_move_checks_the_current_org_only():
    actor = powers("org-admin", org=ENG)
    assert planned(actor, ["email"], roles=("org-manager",), org=ENG, new_org=None) is None
    assert planned(actor, ["email"], roles=("org-manager",), org=ENG, new_org=ENG) is None
    assert planned(actor, ["email"], roles=("org-manager",), org=SALES, new_org=None) == "target_more_privileged"


def test_planned_update_message_names_the_target():
    with pytest.raises(PolicyDenied) as exc:
        check_planned_update(actor=powers("org-manager"), changed=["email"], target_roles=[role("org-admin")],
                             superuser=False, org_path=ACME)
    assert exc.value.message.endswith("wherever this user holds them, can change this user.")
    with pytest.raises(PolicyDenied) as exc:
        check_planned_update(actor=powers("org-manager"), changed=["email"], target_roles=[role("org-admin")],
                             superuser=False, org_path=ACME, target_label="olga")
    assert exc.value.message.endswith("can change olga.")


# --- powers_of_access (database) -------------------------------------------------------------


@pytest.mark.django_db
def test_powers_of_access_matches_roles(user_factory, org_factory):
    from accounts.access import Access

    eng = org_factory("Eng")
    user = user_factory("pa", org=eng, roles=["org-admin", "help-desk"])
    p = powers_of_access(Access.of(user))
    assert p.grants["manage_users"] == frozenset({eng.path})
    assert p.grants["reset_passwords"] is None
    assert p.cloud_admin is False and p.superuser is False


# --- provider actors through the identity service --------------------------------------------


@pytest.fixture
def scim_actor():
    from accounts.identity.types import Actor, Source

    return Actor.provider_actor(source=Source.SCIM, provider="okta", label="SCIM: okta")


def _apply(actor, **fields):
    from accounts.identity.service import apply_identity_change
    from accounts.identity.types import IdentityChange

    return apply_identity_change(actor=actor, change=IdentityChange(**fields))


@pytest.mark.django_db
def test_provider_never_creates_a_cloud_admin(scim_actor, root_org):
    with pytest.raises(PolicyDenied) as exc:
        _apply(scim_actor, username="p1", org_id=root_org.pk, roles=frozenset({"customer-cloud-admin"}))
    assert exc.value.code == "role_not_assignable"
    from django.contrib.auth.models import User

    assert not User.objects.filter(username="p1").exists()


@pytest.mark.django_db
def test_provider_never_grants_cloud_admin_to_its_own_user(scim_actor, root_org):
    user = _apply(scim_actor, username="p2", org_id=root_org.pk).user
    with pytest.raises(PolicyDenied) as exc:
        _apply(scim_actor, user_id=user.pk, roles_add=frozenset({"customer-cloud-admin"}), mode="update")
    assert exc.value.code == "role_not_assignable"
    # Other roles stay the provider's to give (its mapping rules are the next issue's concern).
    assert _apply(scim_actor, user_id=user.pk, roles_add=frozenset({"help-desk"}), mode="update").status == "updated"


@pytest.mark.django_db
@pytest.mark.parametrize("fields", [{"email": "taken.over@example.com"}, {"state": "blocked"},
                                    {"username": "renamed"}, {"roles": frozenset({"help-desk"})}])
def test_provider_never_changes_its_user_once_a_cloud_admin(scim_actor, root_org, system_actor, admin_user, fields):
    user = _apply(scim_actor, username="p3", org_id=root_org.pk, email="p3@example.com").user
    _apply(system_actor, user_id=user.pk, roles_add=frozenset({"customer-cloud-admin"}), mode="update")
    with pytest.raises(PolicyDenied) as exc:
        _apply(scim_actor, user_id=user.pk, mode="update", **fields)
    assert exc.value.code == "target_more_privileged"
    assert exc.value.message.startswith("Only a Customer Cloud Admin can change p3")
    # Names are not sign-in data: the provider still keeps them in sync.
    assert _apply(scim_actor, user_id=user.pk, first_name="Pat", mode="update").status == "updated"


@pytest.mark.django_db
def test_system_actor_changes_anyone(system_actor, admin_user, user_factory):
    user_factory("second.admin", roles=["customer-cloud-admin"])
    assert _apply(system_actor, user_id=admin_user.pk, email="x@example.com", mode="update").status == "updated"


@pytest.mark.django_db
def test_reupload_of_unchanged_sensitive_fields_is_not_refused(user_factory, admin_user):
    """Judged on what really changes: an Org Manager re-sending a Cloud Admin's current email is a no-op."""
    from accounts.identity.types import Actor

    manager = user_factory("mgr", roles=["org-manager"])
    result = _apply(Actor.for_user(manager), user_id=admin_user.pk, email=admin_user.email, first_name="Test",
                    mode="update")
    assert result.status == "unchanged"
    with pytest.raises(PolicyDenied):
        _apply(Actor.for_user(manager), user_id=admin_user.pk, email="other@example.com", mode="update")


@pytest.mark.django_db
def test_blocked_cloud_admin_cannot_be_unblocked_or_reset_by_an_org_manager(user_factory, admin_user, system_actor):
    from accounts.identity.types import Actor

    other = user_factory("other.admin", roles=["customer-cloud-admin"])
    _apply(system_actor, user_id=other.pk, state="blocked", mode="update")
    manager = user_factory("mgr2", roles=["org-manager"])
    for fields in ({"state": "active"}, {"password": "Brand-New-Pass-77"}):
        with pytest.raises(PolicyDenied) as exc:
            _apply(Actor.for_user(manager), user_id=other.pk, mode="update", **fields)
        assert exc.value.code == "target_more_privileged"
