"""The last Customer Cloud Admin who can sign in with a password (issue 7 §2): blocking, deactivating,
taking the role from, or moving into SSO the last active Cloud Admin with password sign-in (break-glass,
or in an org with local sign-in) is refused when the other active Cloud Admins all sign in through single
sign-on - an identity provider outage would lock everyone out. Through the service, the console, an
upload (preview and dry runs across batches) and a provider actor."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.exceptions import IdentityError
from accounts.identity.orgs import org_update_settings, password_sign_in_admins
from accounts.identity.service import apply_identity_change, apply_identity_changes
from accounts.identity.types import Actor, AuthMethod, IdentityChange, Source, UserState
from accounts.models import AuditEvent, Role, UserProfile
from accounts.roles import CUSTOMER_CLOUD_ADMIN
from sso.models import IdentityProvider
from sso.services import break_glass_set
from tests.accounts.bulk_support import media, upload_text  # noqa: F401
from tests.accounts.console_support import messages_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_hasher")]
MESSAGE = ("Every Customer Cloud Admin would then have to sign in through single sign-on, so an identity provider "
           "outage would lock everyone out. Make at least one Cloud Admin a break-glass user of the identity "
           "provider (or keep one in an organization with local sign-in) first.")


@pytest.fixture
def okta():
    return IdentityProvider.objects.create(name="Okta")


@pytest.fixture
def sso_admin(org_factory, user_factory, system_actor, okta):
    """An active Cloud Admin of an SSO org: signs in through Okta only."""
    org = org_factory("SSO Corp")
    org_update_settings(actor=system_actor, org=org, auth_method=AuthMethod.SSO, auth_provider=okta)
    return user_factory("sso-admin", org=org, roles=[CUSTOMER_CLOUD_ADMIN], password=None, state="active")


def state_of(user) -> str:
    return UserProfile.objects.get(user=user).state


@pytest.mark.parametrize(("change", "field"), [
    ({"state": UserState.BLOCKED}, "state"),
    ({"state": UserState.DEACTIVATED}, "state"),
    ({"state": UserState.INVITED}, "state"),
    ({"roles": frozenset({"help-desk"})}, "roles"),
    ({"roles_remove": frozenset({CUSTOMER_CLOUD_ADMIN})}, "roles"),
])
def test_taking_out_the_last_password_admin_is_refused(change, field, admin_user, sso_admin):
    assert password_sign_in_admins() == {admin_user.pk}
    before = AuditEvent.objects.count()
    with pytest.raises(IdentityError) as err:
        apply_identity_change(actor=Actor.for_user(sso_admin), change=IdentityChange(user_id=admin_user.pk, **change))
    assert (err.value.code, err.value.field, err.value.message) == ("last_admin_sso", field, MESSAGE)
    assert state_of(admin_user) == UserState.ACTIVE
    assert set(admin_user.groups.values_list("role__slug", flat=True)) == {CUSTOMER_CLOUD_ADMIN}
    assert AuditEvent.objects.count() == before


def test_allowed_once_another_admin_can_use_a_password(admin_user, sso_admin, okta, user_factory, system_actor):
    break_glass_set(actor=system_actor, provider=okta, users=[sso_admin])
    assert password_sign_in_admins() == {admin_user.pk, sso_admin.pk}
    apply_identity_change(actor=Actor.for_user(sso_admin), change=IdentityChange(
        user_id=admin_user.pk, state=UserState.BLOCKED))
    assert state_of(admin_user) == UserState.BLOCKED
    # And a Cloud Admin in a local org counts as much as a break-glass one.
    local = user_factory("local-admin", roles=[CUSTOMER_CLOUD_ADMIN])
    break_glass_set(actor=system_actor, provider=okta, users=[])
    apply_identity_change(actor=Actor.for_user(local), change=IdentityChange(
        user_id=sso_admin.pk, state=UserState.DEACTIVATED))


def test_without_other_admins_the_last_admin_rule_answers_first(admin_user):
    with pytest.raises(IdentityError) as err:
        apply_identity_change(actor=Actor.system(), change=IdentityChange(user_id=admin_user.pk,
                                                                          state=UserState.BLOCKED))
    assert err.value.code == "last_admin"


def test_one_batch_blocking_both_password_admins_keeps_one(admin_user, sso_admin, user_factory):
    second = user_factory("cloud-two", roles=[CUSTOMER_CLOUD_ADMIN])
    for dry_run, batch_size in ((True, 1), (True, 10), (False, 10)):
        result = apply_identity_changes(actor=Actor.for_user(sso_admin), dry_run=dry_run, batch_size=batch_size,
                                        changes=[IdentityChange(user_id=second.pk, state=UserState.BLOCKED, ref=1),
                                                 IdentityChange(user_id=admin_user.pk, state=UserState.BLOCKED, ref=2)])
        assert [r.status for r in result.results] == ["updated", "refused"], (dry_run, batch_size)
        assert result.results[1].error.code == "last_admin_sso"
    assert (state_of(second), state_of(admin_user)) == (UserState.BLOCKED, UserState.ACTIVE)


def test_a_password_admin_gained_in_the_batch_counts(admin_user, sso_admin, user_factory):
    helper = user_factory("helper", roles=["help-desk"])
    result = apply_identity_changes(actor=Actor.for_user(sso_admin), changes=[
        IdentityChange(user_id=helper.pk, roles=frozenset({CUSTOMER_CLOUD_ADMIN}), ref=1),
        IdentityChange(user_id=admin_user.pk, state=UserState.BLOCKED, ref=2)])
    assert [r.status for r in result.results] == ["updated", "updated"]
    assert password_sign_in_admins() == {helper.pk}


def test_console_block_and_role_removal_are_refused(admin_user, sso_admin):
    client = Client()
    client.force_login(sso_admin)
    for action in ("block", "deactivate"):
        response = client.post(reverse("accounts:user_state", args=[admin_user.pk, action]), follow=True)
        assert messages_of(response) == [f"{MESSAGE} (last_admin_sso)"]
        assert state_of(admin_user) == UserState.ACTIVE
    help_desk = Role.objects.get(slug="help-desk")
    response = client.post(reverse("accounts:user_roles", args=[admin_user.pk]), {"roles": [help_desk.pk]})
    assert response.status_code == 200 and f'<li data-code="last_admin_sso">{MESSAGE}</li>' in response.content.decode()
    assert set(admin_user.groups.values_list("role__slug", flat=True)) == {CUSTOMER_CLOUD_ADMIN}


def test_upload_preview_refuses_the_row(admin_user, sso_admin, media):  # noqa: F811
    upload, _ = upload_text("username,state\nadmin,blocked\n", user=sso_admin)
    assert [(e["line"], e["column"], e["code"]) for e in upload.preview["errors"]] == [(2, "state", "last_admin_sso")]


def test_provider_actor_cannot_deactivate_the_last_password_admin(admin_user, sso_admin, user_factory,
                                                                  system_actor):
    scim = Actor.provider_actor(source=Source.SCIM, provider="okta", label="okta")
    owned = user_factory("scim-admin", actor=scim)
    apply_identity_change(actor=system_actor, change=IdentityChange(
        user_id=owned.pk, roles_add=frozenset({CUSTOMER_CLOUD_ADMIN})))
    apply_identity_change(actor=Actor.for_user(sso_admin), change=IdentityChange(
        user_id=admin_user.pk, roles=frozenset({"help-desk"})))
    assert password_sign_in_admins() == {owned.pk}
    with pytest.raises(IdentityError) as err:
        apply_identity_change(actor=scim, change=IdentityChange(user_id=owned.pk, state=UserState.DEACTIVATED))
    assert err.value.code == "last_admin_sso"
    assert state_of(owned) == UserState.ACTIVE
