"""Multi-step console actions that fail at a later step write nothing: no user, role, setting or audit event.

Each test snapshots the directory (users, profiles, roles, orgs, default roles, audit event count),
makes the request that fails, and compares.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from accounts.identity import orgs as org_service
from accounts.identity.types import Actor, AuthMethod, UserState
from accounts.models import AuditEvent, Organization, Role
from accounts.roles import CUSTOMER_CLOUD_ADMIN
from tests.accounts.console_support import error_codes, messages_of

pytestmark = pytest.mark.django_db


def snapshot() -> dict:
    """Everything a console write could touch."""
    return {
        "users": sorted(User.objects.values_list("pk", "username", "email", "first_name", "last_name", "is_active")),
        "profiles": sorted(User.objects.filter(profile__isnull=False).values_list(
            "pk", "profile__org_id", "profile__state", "profile__notes")),
        "memberships": sorted(User.groups.through.objects.values_list("user_id", "group_id")),
        "orgs": sorted(Organization.objects.values_list(
            "pk", "name", "parent_id", "path", "is_active", "auth_method", "two_factor_required",
            "inherit_default_roles", "external_ref", "notes")),
        "default_roles": sorted(Organization.default_roles.through.objects.values_list("organization_id", "role_id")),
        "audit": AuditEvent.objects.count(),
    }


def role_pk(slug: str) -> int:
    return Role.objects.get(slug=slug).pk


# ---- user create ----------------------------------------------------------------------------


@pytest.mark.parametrize("roles, code", [
    (["999999"], "invalid_choice"),
    (["abc"], "invalid_pk_value"),
    ([CUSTOMER_CLOUD_ADMIN], "invalid_choice"),  # an Org Admin may not hand out Cloud Admin
    (["help-desk"], "invalid_choice"),  # nor a global role
])
def test_user_create_with_a_role_the_actor_cannot_assign_writes_nothing(client, directory, roles, code):
    client.force_login(directory.eng_admin)
    before = snapshot()
    values = [str(role_pk(r)) if not r.isdigit() and r != "abc" else r for r in roles]
    response = client.post(reverse("accounts:user_create"), {
        "org": directory.engineering.pk, "username": "newbie", "email": "newbie@example.com",
        "password": "Correct-Horse-42", "roles": values})
    assert response.status_code == 200
    assert code in error_codes(response, "roles")
    assert snapshot() == before


@pytest.mark.parametrize("overrides, field, code", [
    ({"username": "ENG.USER"}, "username", "username_taken"),  # taken, ignoring case
    ({"email": "not-an-email"}, "email", "email_invalid"),
    ({"password": "short"}, "password", None),
    ({"org": "sales"}, "org", "invalid_choice"),  # outside the Org Admin's subtree
])
def test_user_create_refused_at_a_later_step_writes_nothing(client, directory, overrides, field, code):
    client.force_login(directory.eng_admin)
    before = snapshot()
    data = {"org": directory.engineering.pk, "username": "newbie", "email": "newbie@example.com",
            "password": "Correct-Horse-42", "roles": [role_pk("org-manager")], "first_name": "New"}
    data.update(overrides)
    if data["org"] == "sales":
        data["org"] = directory.sales.pk
    response = client.post(reverse("accounts:user_create"), data)
    assert response.status_code == 200
    codes = error_codes(response, field)
    assert codes and (code is None or code in codes), error_codes(response)
    assert snapshot() == before


# ---- user edit ------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides, field, code", [
    ({"username": "Sales.User"}, "username", "username_taken"),
    ({"email": "nope@"}, "email", "email_invalid"),
    ({"username": "bad name!"}, "username", None),
])
def test_user_edit_with_one_bad_field_saves_no_other_field(client, directory, overrides, field, code):
    client.force_login(directory.admin)
    user = directory.eng_user
    before = snapshot()
    data = {"username": user.username, "email": "changed@example.com", "first_name": "Changed",
            "last_name": "Also", "notes": "new notes", **overrides}
    response = client.post(reverse("accounts:user_edit", args=[user.pk]), data)
    assert response.status_code == 200
    codes = error_codes(response, field)
    assert codes and (code is None or code in codes), error_codes(response)
    assert snapshot() == before


# ---- roles and state ------------------------------------------------------------------------


def test_user_roles_with_a_forged_role_changes_no_role(client, directory):
    client.force_login(directory.eng_admin)
    before = snapshot()
    response = client.post(reverse("accounts:user_roles", args=[directory.eng_user.pk]),
                           {"roles": [role_pk("org-manager"), role_pk(CUSTOMER_CLOUD_ADMIN)]})
    assert response.status_code == 200 and "invalid_choice" in error_codes(response, "roles")
    assert snapshot() == before


def test_own_roles_and_last_admin_are_refused_whole(client, directory):
    client.force_login(directory.admin)
    before = snapshot()
    response = client.post(reverse("accounts:user_roles", args=[directory.admin.pk]),
                           {"roles": [role_pk("help-desk")]})
    assert response.status_code == 200 and error_codes(response)
    for action in ("block", "deactivate"):
        response = client.post(reverse("accounts:user_state", args=[directory.admin.pk, action]), follow=True)
        assert response.status_code == 200 and any("(" in m for m in messages_of(response))
    assert snapshot() == before


def test_bulk_block_refuses_some_users_whole_and_applies_the_rest(client, directory):
    """Bulk block reports per user; a refused user is untouched, and only real changes are audited."""
    client.force_login(directory.admin)
    admin_events = AuditEvent.objects.filter(target_type="user", target_id=str(directory.admin.pk))
    admin_events_before = admin_events.count()
    ids = [directory.admin.pk, directory.eng_user.pk, directory.sales_user.pk, 999999]
    response = client.post(reverse("accounts:user_bulk_state"),
                           {"action": "block", "ids": [str(i) for i in ids] + ["²", "abc"], "confirmed": "1"},
                           follow=True)
    assert response.status_code == 200
    text = " ".join(messages_of(response))
    assert "Blocked 2 users." in text and "admin:" in text and "1 selected user(s) not found." in text
    states = dict(User.objects.filter(pk__in=ids).values_list("pk", "profile__state"))
    assert states[directory.admin.pk] == UserState.ACTIVE
    assert states[directory.eng_user.pk] == states[directory.sales_user.pk] == UserState.BLOCKED
    assert admin_events.count() == admin_events_before
    for user in (directory.eng_user, directory.sales_user):
        assert AuditEvent.objects.filter(target_type="user", target_id=str(user.pk), field="state",
                                         new_value=UserState.BLOCKED.value).count() == 1


# ---- organizations --------------------------------------------------------------------------


def _settings(**overrides):
    data = {"auth_inherit": "on", "auth_method": "local", "tfa_inherit": "on", "roles_inherit": "on"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize("roles, code", [
    (["999999"], "invalid_choice"),
    (["abc"], "invalid_pk_value"),
])
def test_org_settings_with_an_unknown_default_role_saves_no_setting(client, directory, roles, code):
    client.force_login(directory.admin)
    before = snapshot()
    response = client.post(reverse("accounts:org_settings", args=[directory.engineering.pk]), _settings(
        tfa_inherit=None, two_factor_required="on", auth_inherit=None, roles_inherit=None, default_roles=roles))
    assert response.status_code == 200 and code in error_codes(response, "default_roles")
    assert snapshot() == before


def test_org_admin_cannot_make_cloud_admin_a_default_role(client, directory):
    """Default roles go to every new user: an Org Admin giving Cloud Admin by default would escalate."""
    client.force_login(directory.eng_admin)
    before = snapshot()
    url = reverse("accounts:org_settings", args=[directory.engineering.pk])
    page = client.get(url).content.decode()
    assert f'value="{role_pk(CUSTOMER_CLOUD_ADMIN)}"' in page  # shown, but disabled
    assert "disabled" in page.split(f'value="{role_pk(CUSTOMER_CLOUD_ADMIN)}"')[1].split(">")[0]
    response = client.post(url, _settings(tfa_inherit=None, two_factor_required="on", roles_inherit=None,
                                          default_roles=[role_pk(CUSTOMER_CLOUD_ADMIN), role_pk("console-user")]))
    assert response.status_code == 200 and "role_not_assignable" in error_codes(response, "default_roles")
    assert snapshot() == before
    # ... so a user created there without roles does not become a Cloud Admin.
    client.post(reverse("accounts:user_create"), {"org": directory.engineering.pk, "username": "plain.new"})
    assert not User.objects.get(username="plain.new").groups.filter(role__slug=CUSTOMER_CLOUD_ADMIN).exists()


def test_org_admin_keeps_default_roles_set_by_a_cloud_admin(client, directory):
    """A default the Org Admin may not assign (set by a Cloud Admin) stays when they save other settings."""
    directory.engineering.inherit_default_roles = False
    directory.engineering.save()
    directory.engineering.default_roles.set(Role.objects.filter(slug__in=["help-desk", "console-user"]))
    client.force_login(directory.eng_admin)
    response = client.post(reverse("accounts:org_settings", args=[directory.engineering.pk]), _settings(
        roles_inherit=None, default_roles=[role_pk("console-user"), role_pk("user-modify")]))
    assert response.status_code == 302, error_codes(response)
    assert {r.slug for r in directory.engineering.default_roles.all()} == {"help-desk", "console-user",
                                                                          "user-modify"}


def test_org_settings_sso_without_provider_saves_nothing(client, directory):
    from sso.models import IdentityProvider

    IdentityProvider.objects.create(name="Okta")  # SSO is offered only when a provider exists
    client.force_login(directory.admin)
    before = snapshot()
    response = client.post(reverse("accounts:org_settings", args=[directory.engineering.pk]), _settings(
        auth_inherit=None, auth_method="sso", tfa_inherit=None, two_factor_required="on", roles_inherit=None,
        default_roles=[role_pk("console-user")]))
    assert response.status_code == 200 and "sso_provider_required" in error_codes(response)
    assert snapshot() == before


def test_org_settings_service_refusal_after_a_first_change_rolls_back(directory, admin_user):
    """The service audits each setting as it goes; a later refusal must undo the earlier ones."""
    before = snapshot()
    with pytest.raises(Exception) as info:
        org_service.org_update_settings(actor=Actor.for_user(admin_user), org=directory.engineering,
                                        two_factor_required=True, auth_method=AuthMethod.SSO, auth_provider=None)
    assert getattr(info.value, "code", None) == "sso_provider_required"
    assert snapshot() == before


def test_org_move_under_own_descendant_writes_nothing(client, directory):
    client.force_login(directory.admin)
    before = snapshot()
    response = client.post(reverse("accounts:org_move", args=[directory.engineering.pk]),
                           {"parent": directory.platform.pk})
    assert response.status_code == 200 and "org_cycle" in error_codes(response)
    assert snapshot() == before


def test_org_create_with_a_taken_name_writes_nothing(client, directory):
    client.force_login(directory.admin)
    before = snapshot()
    response = client.post(reverse("accounts:org_create", args=[directory.acme.pk]),
                           {"name": "ENGINEERING", "external_ref": "x", "notes": "y"})
    assert response.status_code == 200 and "org_name_taken" in error_codes(response)
    assert snapshot() == before
