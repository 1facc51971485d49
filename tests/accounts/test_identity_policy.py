"""The guards of ``accounts/identity/policy.py`` on their own: pure functions, plain values, no database.

``Grants`` below is a value with the four answers ``Access`` gives (it is not a mock of a library:
the policy functions take any object that answers them), so each rule is checked in isolation."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from accounts.exceptions import PolicyDenied
from accounts.identity import policy
from accounts.identity.types import Actor, ExternalLink, IdentityChange, Source, UserState


@dataclass
class Grants:
    """perm -> None (everywhere) or a set of org paths."""

    perms: dict = field(default_factory=dict)
    cloud_admin: bool = False

    @property
    def is_cloud_admin(self) -> bool:
        return self.cloud_admin

    def is_global(self, perm):
        return perm in self.perms and self.perms[perm] is None

    def can(self, perm, org):
        if perm not in self.perms:
            return False
        paths = self.perms[perm]
        return paths is None or any(org.path.startswith(p) for p in paths)

    def can_assign_role(self, role):
        return "assign_roles" in self.perms and role.slug != "customer-cloud-admin"


def org(path="/1/2/", name="Eng"):
    return SimpleNamespace(path=path, name=name)


def role(slug, scope, *perms):
    perm_objs = [SimpleNamespace(codename=p) for p in perms]
    return SimpleNamespace(slug=slug, name=slug.title(), scope=scope,
                           group=SimpleNamespace(permissions=SimpleNamespace(all=lambda: perm_objs)))


def okta():
    return Actor.provider_actor(source=Source.SCIM, provider="okta", label="okta")


def test_touched_fields_names_every_kind_of_change():
    assert policy.touched_fields(IdentityChange()) == set()
    assert policy.touched_fields(IdentityChange(username="a", email="e", first_name="f", last_name="l", notes="n",
                                                password="p", state="active")) == {
        "username", "email", "first_name", "last_name", "notes", "password", "state"}
    assert policy.touched_fields(IdentityChange(password_hash="h")) == {"password"}
    assert policy.touched_fields(IdentityChange(org_id=3)) == {"org"}
    assert policy.touched_fields(IdentityChange(roles=frozenset())) == {"roles"}
    assert policy.touched_fields(IdentityChange(roles_add=frozenset({"x"}))) == {"roles"}
    assert policy.touched_fields(IdentityChange(roles_remove=frozenset({"x"}))) == {"roles"}
    assert policy.touched_fields(IdentityChange(groups=frozenset())) == {"groups"}
    assert policy.touched_fields(IdentityChange(groups_add=frozenset({1}))) == {"groups"}
    assert policy.touched_fields(IdentityChange(groups_remove=frozenset({1}))) == {"groups"}
    assert policy.touched_fields(IdentityChange(link=ExternalLink("saml", "i", "x"))) == {"link"}


def test_owner_label():
    assert policy.owner_label(Source.SCIM, "okta") == "SCIM provisioning (okta)"
    assert policy.owner_label(Source.LDAP, "") == "Directory sync"
    assert policy.owner_label("weird", "") == "weird"


def test_providers_change_only_their_own_users():
    policy.check_source_may_change(actor=okta(), owner=Source.SCIM, owner_provider="okta", username="u",
                                   touched={"email"})
    for owner, provider in ((Source.SCIM, "azure"), (Source.LDAP, "okta"), (Source.LOCAL, "")):
        with pytest.raises(PolicyDenied) as err:
            policy.check_source_may_change(actor=okta(), owner=owner, owner_provider=provider, username="u",
                                           touched={"email"})
        assert err.value.code == "not_owner"
        assert err.value.message == (f"u is managed by {policy.owner_label(owner, provider)}; "
                                     "this provider may only change users it created.")


def test_saml_only_links_users_it_did_not_create():
    saml = Actor(label="idp", type="provider", source=Source.SAML, enforce_scope=False)
    policy.check_source_may_change(actor=saml, owner=Source.LOCAL, owner_provider="", username="u", touched={"link"})
    policy.check_source_may_change(actor=saml, owner=Source.SAML, owner_provider="", username="u",
                                   touched={"email", "link"})
    with pytest.raises(PolicyDenied) as err:
        policy.check_source_may_change(actor=saml, owner=Source.LOCAL, owner_provider="", username="u",
                                       touched={"email", "link"})
    assert (err.value.code, err.value.message) == ("not_owner", "Single sign-on may only link users it did not create.")


def test_console_and_uploads_leave_provider_users_alone():
    system = Actor.system()
    policy.check_source_may_change(actor=system, owner=Source.LOCAL, owner_provider="", username="u",
                                   touched={"email"})
    policy.check_source_may_change(actor=system, owner=Source.SCIM, owner_provider="okta", username="u",
                                   touched={"state", "roles", "notes", "password"})
    with pytest.raises(PolicyDenied) as err:
        policy.check_source_may_change(actor=system, owner=Source.SCIM, owner_provider="okta", username="u",
                                       touched={"email", "org", "state"})
    assert (err.value.code, err.value.field) == ("managed_by_provider", "email")
    assert err.value.message == "email, org of u are managed by SCIM provisioning (okta)."
    with pytest.raises(PolicyDenied) as err:
        policy.check_source_may_change(actor=system, owner=Source.LDAP, owner_provider="", username="u",
                                       touched={"username"})
    assert err.value.message == "username of u is managed by Directory sync."
    bulk = Actor(label="up", source=Source.BULK)
    with pytest.raises(PolicyDenied) as err:
        policy.check_source_may_change(actor=bulk, owner=Source.SCIM, owner_provider="okta", username="u",
                                       touched={"notes"})
    assert err.value.code == "managed_by_provider"
    assert err.value.message == "u is managed by SCIM provisioning (okta); change it there, not in an upload."


def test_scope():
    policy.check_scope(None, "manage_users", None, "x")
    grants = Grants({"manage_users": {"/1/2/"}})
    policy.check_scope(grants, "manage_users", org("/1/2/3/"), "create users")
    with pytest.raises(PolicyDenied) as err:
        policy.check_scope(grants, "manage_users", org("/1/5/", "Sales"), "create users")
    assert (err.value.code, err.value.message) == ("out_of_scope", "You may not create users in Sales.")
    with pytest.raises(PolicyDenied) as err:
        policy.check_scope(grants, "manage_users", None, "create users")
    assert err.value.message == "You may not create users in this organization."


def test_update_scope():
    policy.check_update_scope(None, org(), {"email"}, is_self=False)
    profile_only = Grants({"modify_user_profile": None})
    policy.check_update_scope(profile_only, org(), {"email", "first_name", "last_name", "notes"}, is_self=False)
    policy.check_update_scope(profile_only, org(), {"roles"}, is_self=False)  # judged by role checks
    with pytest.raises(PolicyDenied) as err:
        policy.check_update_scope(profile_only, org(), {"email", "state"}, is_self=False)
    assert (err.value.code, err.value.message) == ("out_of_scope", "You may not change users in Eng.")
    scoped = Grants({"manage_users": {"/1/"}, "modify_user_profile": {"/1/"}})
    policy.check_update_scope(scoped, org("/1/2/"), {"state"}, is_self=False)
    policy.check_update_scope(Grants({"modify_user_profile": {"/1/"}}), org("/1/2/"), {"email"}, is_self=False)
    with pytest.raises(PolicyDenied):
        policy.check_update_scope(scoped, org("/3/"), {"state"}, is_self=False)
    with pytest.raises(PolicyDenied):
        policy.check_update_scope(Grants({"modify_user_profile": {"/1/"}}), org("/3/"), {"email"}, is_self=False)
    nothing = Grants({})
    policy.check_update_scope(nothing, org(), {"password"}, is_self=True)
    with pytest.raises(PolicyDenied):
        policy.check_update_scope(nothing, org(), {"password"}, is_self=False)
    with pytest.raises(PolicyDenied):
        policy.check_update_scope(nothing, org(), {"password", "email"}, is_self=True)
    policy.check_update_scope(Grants({"manage_users": None}), org(), {"state", "org"}, is_self=False)


def test_roles_assignable():
    policy.check_roles_assignable(None, [role("x", "global", "manage_users")], org())
    policy.check_roles_assignable(Grants({}), [], org())
    assigner = Grants({"assign_roles": None})
    policy.check_roles_assignable(assigner, [role("help-desk", "global")], org())
    with pytest.raises(PolicyDenied) as err:
        policy.check_roles_assignable(assigner, [role("customer-cloud-admin", "global")], org())
    assert (err.value.code, err.value.field) == ("role_not_assignable", "roles")
    with pytest.raises(PolicyDenied) as err:
        policy.check_roles_assignable(Grants({"assign_roles": {"/9/"}}), [role("help-desk", "global")], org())
    assert (err.value.code, err.value.message) == ("out_of_scope", "You may not assign roles in Eng.")
    with pytest.raises(PolicyDenied) as err:
        policy.check_roles_assignable(assigner, [role("help-desk", "global"), role("customer-cloud-admin", "global")],
                                      org())
    assert err.value.message == "You may not assign the role Customer-Cloud-Admin."


def test_holds_role_powers_never_more_than_you_hold():
    eng = org("/1/2/")
    help_desk = role("help-desk", "global", "console_access", "view_directory", "reset_passwords")
    user_modify = role("user-modify", "org", "console_access", "modify_user_profile")
    console = role("console-user", "org", "console_access")
    cca = role("customer-cloud-admin", "global", "manage_users")
    assert policy.holds_role_powers(None, cca, eng)
    assert policy.holds_role_powers(Grants(cloud_admin=True), cca, eng)
    assert not policy.holds_role_powers(Grants({"manage_users": None}), cca, eng)
    assert policy.holds_role_powers(Grants(cloud_admin=True), help_desk, eng)
    assert policy.holds_role_powers(Grants({}), console, eng)  # sign-in permissions carry no power
    org_manager = Grants({"view_directory": {"/1/"}, "modify_user_profile": {"/1/"}, "reset_passwords": {"/1/"}})
    assert not policy.holds_role_powers(org_manager, help_desk, eng)  # global role, org-scoped holder
    assert policy.holds_role_powers(Grants({"view_directory": None, "reset_passwords": None}), help_desk, eng)
    assert policy.holds_role_powers(org_manager, user_modify, eng)
    assert not policy.holds_role_powers(org_manager, user_modify, org("/7/"))
    given, skipped = policy.split_default_roles(org_manager, [help_desk, console, user_modify], eng)
    assert [r.slug for r in given] == ["console-user", "user-modify"]
    assert [r.slug for r in skipped] == ["help-desk"]


def test_self_guards():
    local, bulk = Actor(label="a"), Actor(label="a", source=Source.BULK)
    policy.check_self_role_change(local, is_self=False)
    policy.check_self_role_change(okta(), is_self=True)
    for actor in (local, bulk):
        with pytest.raises(PolicyDenied) as err:
            policy.check_self_role_change(actor, is_self=True)
        assert (err.value.code, err.value.field) == ("self_role_change", "roles")
        assert err.value.message == "You cannot change your own roles."
    policy.check_self_lockout(UserState.ACTIVE, is_self=True)
    policy.check_self_lockout(UserState.BLOCKED, is_self=False)
    for state in (UserState.BLOCKED, UserState.DEACTIVATED, UserState.INVITED):
        with pytest.raises(PolicyDenied) as err:
            policy.check_self_lockout(state, is_self=True)
        assert (err.value.code, err.value.field) == ("self_lockout", "state")
        assert err.value.message == "You cannot block or deactivate your own account."


def test_last_admin():
    assert policy.is_active_admin(role_slugs={"customer-cloud-admin"}, state=UserState.ACTIVE, is_active=True)
    assert not policy.is_active_admin(role_slugs={"customer-cloud-admin"}, state=UserState.INVITED, is_active=True)
    assert not policy.is_active_admin(role_slugs={"customer-cloud-admin"}, state=UserState.ACTIVE, is_active=False)
    assert not policy.is_active_admin(role_slugs={"help-desk"}, state=UserState.ACTIVE, is_active=True)
    policy.check_last_admin(active_admins={1, 2}, key=1, username="a")
    policy.check_last_admin(active_admins={2}, key=1, username="a")
    for admins in ({1}, set()):
        with pytest.raises(PolicyDenied) as err:
            policy.check_last_admin(active_admins=admins, key=1, username="ann")
        assert err.value.code == "last_admin"
    assert err.value.message == ("ann is the last active Customer Cloud Admin; give the role to someone else "
                                 "first.")


def test_django_admin_only_for_system_actors():
    policy.check_django_admin_actor(Actor.system())
    with pytest.raises(PolicyDenied) as err:
        policy.check_django_admin_actor(Actor(label="a"))
    assert (err.value.code, err.value.field) == ("django_admin_system_only", "django_admin")
    assert err.value.message == "Django admin access is granted only by setup commands (create_first_admin)."
    with pytest.raises(PolicyDenied):
        policy.check_django_admin_actor(okta())


def test_directory_groups_belong_to_their_provider():
    okta_group = SimpleNamespace(source=Source.SCIM, provider="okta", display_name="Eng")
    local_group = SimpleNamespace(source=Source.SYSTEM, provider="", display_name="Local")
    azure = Actor.provider_actor(source=Source.SCIM, provider="azure", label="azure")
    ldap_okta = Actor.provider_actor(source=Source.LDAP, provider="okta", label="okta")
    assert not policy.group_owned_by_other(okta(), okta_group)
    assert policy.group_owned_by_other(azure, okta_group)
    assert policy.group_owned_by_other(ldap_okta, okta_group)
    assert policy.group_owned_by_other(Actor.system(), okta_group)
    assert not policy.group_owned_by_other(azure, local_group)
    policy.check_group_owner(okta(), okta_group)
    policy.check_group_membership_owner(okta(), [okta_group, local_group])
    with pytest.raises(PolicyDenied) as err:
        policy.check_group_owner(azure, okta_group)
    assert (err.value.code, err.value.message) == ("not_owner", "The group Eng belongs to SCIM provisioning (okta).")
    with pytest.raises(PolicyDenied) as err:
        policy.check_group_membership_owner(azure, [local_group, okta_group])
    assert (err.value.code, err.value.field) == ("group_not_owner", "groups")
    assert err.value.message == "Members of Eng are managed by SCIM provisioning (okta)."
