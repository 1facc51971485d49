"""Inherited org policy (issue 7 §5): a setting inherited from an org outside the actor's scope may be
tightened below it, never weakened; and no SSO switch may leave every Customer Cloud Admin without
password sign-in (§2/§5: last admin lockout through SSO)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.exceptions import PolicyDenied
from accounts.identity.orgs import effective_settings, org_update_settings, password_sign_in_admins
from accounts.identity.types import Actor, AuthMethod
from accounts.models import AuditEvent, Organization
from accounts.roles import CUSTOMER_CLOUD_ADMIN
from sso.models import IdentityProvider

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def tree(org_factory, user_factory, system_actor, admin_user):
    """Acme (set by a Cloud Admin) > Engineering > Team; an Org Admin of Engineering."""
    acme = org_factory("Acme")
    eng = org_factory("Engineering", parent=acme)
    team = org_factory("Team", parent=eng)
    eng_admin = user_factory("eng-admin", org=eng, roles=["org-admin"])
    acme_admin = user_factory("acme-admin", org=acme, roles=["org-admin"])
    okta = IdentityProvider.objects.create(name="Okta")
    other = IdentityProvider.objects.create(name="Other IdP")
    return {"acme": acme, "eng": eng, "team": team, "eng_admin": Actor.for_user(eng_admin), "eng_admin_user": eng_admin,
            "acme_admin": Actor.for_user(acme_admin), "okta": okta, "other": other, "system": system_actor,
            "cloud": Actor.for_user(admin_user)}


def refresh(org: Organization) -> Organization:
    return Organization.objects.get(pk=org.pk)


def test_sub_org_admin_cannot_switch_off_inherited_two_factor(tree):
    org_update_settings(actor=tree["system"], org=tree["acme"], two_factor_required=True)
    before = AuditEvent.objects.count()
    for org in (tree["eng"], tree["team"]):
        with pytest.raises(PolicyDenied) as err:
            org_update_settings(actor=tree["eng_admin"], org=org, two_factor_required=False)
        assert err.value.code == "weakens_inherited_policy" and err.value.field == "two_factor_required"
        assert "Acme requires two-factor authentication" in err.value.message
        assert refresh(org).two_factor_required is None
        assert effective_settings(refresh(org)).two_factor_required is True
    assert AuditEvent.objects.count() == before  # refused: nothing recorded, nothing half-applied

    # Inheriting or requiring it explicitly is fine; the Org Admin of Acme and a Cloud Admin may switch it off.
    assert org_update_settings(actor=tree["eng_admin"], org=tree["eng"], two_factor_required=True) == [
        "two_factor_required"]
    assert org_update_settings(actor=tree["eng_admin"], org=tree["eng"], two_factor_required=None) == [
        "two_factor_required"]
    org_update_settings(actor=tree["cloud"], org=tree["eng"], two_factor_required=False)
    assert effective_settings(refresh(tree["eng"])).two_factor_required is False
    org_update_settings(actor=tree["acme_admin"], org=tree["acme"], two_factor_required=False)
    assert effective_settings(refresh(tree["acme"])).two_factor_required is False


def test_tightening_is_allowed_and_can_be_undone(tree):
    org_update_settings(actor=tree["eng_admin"], org=tree["eng"], two_factor_required=True)
    org_update_settings(actor=tree["eng_admin"], org=tree["team"], two_factor_required=False)  # Eng is in scope
    assert effective_settings(refresh(tree["team"])).two_factor_required is False
    org_update_settings(actor=tree["eng_admin"], org=tree["eng"], two_factor_required=False)
    assert effective_settings(refresh(tree["eng"])).two_factor_required is False


def test_sub_org_admin_cannot_change_inherited_sso(tree):
    org_update_settings(actor=tree["system"], org=tree["acme"], auth_method=AuthMethod.SSO, auth_provider=tree["okta"])
    for kwargs in ({"auth_method": AuthMethod.LOCAL},
                   {"auth_method": AuthMethod.SSO, "auth_provider": tree["other"]}):
        with pytest.raises(PolicyDenied) as err:
            org_update_settings(actor=tree["eng_admin"], org=tree["eng"], **kwargs)
        assert err.value.code == "weakens_inherited_policy" and err.value.field == "auth_method"
        assert "Acme requires single sign-on through Okta" in err.value.message
        eng = refresh(tree["eng"])
        assert (eng.auth_method, eng.auth_provider_id) == (None, None)
    # Naming the same provider explicitly, or inheriting, keeps the policy.
    org_update_settings(actor=tree["eng_admin"], org=tree["eng"], auth_method=AuthMethod.SSO,
                        auth_provider=tree["okta"])
    org_update_settings(actor=tree["eng_admin"], org=tree["eng"], auth_method=None)
    # The admin of Acme may change Acme itself.
    org_update_settings(actor=tree["acme_admin"], org=tree["acme"], auth_method=AuthMethod.LOCAL)
    assert effective_settings(refresh(tree["team"])).auth_method == AuthMethod.LOCAL


def test_local_to_sso_tightens(tree):
    org_update_settings(actor=tree["eng_admin"], org=tree["eng"], auth_method=AuthMethod.SSO,
                        auth_provider=tree["okta"])
    assert effective_settings(refresh(tree["team"])).auth_provider == tree["okta"]


def test_settings_form_shows_the_refusal(tree, client):
    org_update_settings(actor=tree["system"], org=tree["acme"], two_factor_required=True)
    client.force_login(tree["eng_admin_user"])
    response = client.post(reverse("accounts:org_settings", args=[tree["eng"].pk]),
                           {"auth_inherit": "on", "tfa_inherit": "", "two_factor_required": "",
                            "roles_inherit": "on"})
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-code="weakens_inherited_policy"' in page and "Acme requires two-factor authentication" in page
    assert refresh(tree["eng"]).two_factor_required is None


# --- Last Customer Cloud Admin and SSO --------------------------------------------------------------


def test_switching_every_cloud_admin_to_sso_is_refused(tree, root_org, admin_user):
    assert password_sign_in_admins() == {admin_user.pk}
    with pytest.raises(PolicyDenied) as err:
        org_update_settings(actor=tree["system"], org=root_org, auth_method=AuthMethod.SSO, auth_provider=tree["okta"])
    assert err.value.code == "last_admin_sso"
    assert "break-glass user of Okta" in err.value.message
    assert refresh(root_org).auth_method == AuthMethod.LOCAL or refresh(root_org).auth_method is None
    assert not AuditEvent.objects.filter(action="org.settings_changed", target_id=str(root_org.pk)).exists()

    # With a break-glass Cloud Admin the switch goes through.
    tree["okta"].break_glass_users.add(admin_user)
    org_update_settings(actor=tree["system"], org=root_org, auth_method=AuthMethod.SSO, auth_provider=tree["okta"])
    assert refresh(root_org).auth_method == AuthMethod.SSO


def test_inheritance_counts_too(tree, user_factory, admin_user, root_org):
    # The only Cloud Admin lives in Team; Acme (an ancestor) switching to SSO would catch them.
    from accounts import console_actions as services

    other = user_factory("cloud-team", org=tree["team"], roles=[CUSTOMER_CLOUD_ADMIN])
    services.user_set_roles(actor=tree["system"], user=admin_user, roles=["help-desk"])
    assert password_sign_in_admins() == {other.pk}
    with pytest.raises(PolicyDenied) as err:
        org_update_settings(actor=tree["system"], org=tree["acme"], auth_method=AuthMethod.SSO,
                            auth_provider=tree["okta"])
    assert err.value.code == "last_admin_sso"
    # Team keeps local sign-in explicitly: now the switch of Acme leaves a password admin.
    org_update_settings(actor=tree["system"], org=tree["team"], auth_method=AuthMethod.LOCAL)
    org_update_settings(actor=tree["system"], org=tree["acme"], auth_method=AuthMethod.SSO, auth_provider=tree["okta"])


def test_blocked_and_invited_admins_do_not_count(tree, user_factory, admin_user, root_org):
    user_factory("blocked-admin", org=tree["acme"], roles=[CUSTOMER_CLOUD_ADMIN], state="blocked")
    user_factory("invited-admin", org=tree["acme"], roles=[CUSTOMER_CLOUD_ADMIN], state="invited", password=None)
    assert password_sign_in_admins() == {admin_user.pk}


def test_an_admin_without_profile_keeps_password_sign_in(tree, root_org, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", "Long-Pass-123")
    org_update_settings(actor=tree["system"], org=root_org, auth_method=AuthMethod.SSO, auth_provider=tree["okta"])
    assert refresh(root_org).auth_method == AuthMethod.SSO



def test_removing_the_last_break_glass_cloud_admin_is_refused(tree, user_factory, root_org, admin_user):
    from sso.services import break_glass_set

    break_glass_set(actor=tree["system"], provider=tree["okta"], users=[admin_user])
    org_update_settings(actor=tree["system"], org=root_org, auth_method=AuthMethod.SSO, auth_provider=tree["okta"])
    with pytest.raises(PolicyDenied) as err:
        break_glass_set(actor=tree["system"], provider=tree["okta"], users=[])
    assert err.value.code == "last_admin_sso" and "break-glass user of Okta" in err.value.message
    assert list(tree["okta"].break_glass_users.all()) == [admin_user]  # rolled back
    assert AuditEvent.objects.filter(action="sso.break_glass_changed").count() == 1  # only the first change
    # A Cloud Admin in an org that keeps local sign-in makes the removal safe.
    org_update_settings(actor=tree["system"], org=tree["team"], auth_method=AuthMethod.LOCAL)
    other = user_factory("cloud-team", org=tree["team"], roles=[CUSTOMER_CLOUD_ADMIN])
    assert password_sign_in_admins() == {admin_user.pk, other.pk}
    break_glass_set(actor=tree["system"], provider=tree["okta"], users=[])
    assert not tree["okta"].break_glass_users.exists()


def test_moving_the_last_password_admin_org_under_sso_is_refused(tree, org_factory, user_factory, admin_user):
    from accounts import console_actions as services
    from accounts.identity.orgs import org_move
    from sso.services import break_glass_set

    side = org_factory("Side")  # local sign-in, inherited from the root
    other = user_factory("cloud-side", org=side, roles=[CUSTOMER_CLOUD_ADMIN])
    services.user_set_roles(actor=tree["system"], user=admin_user, roles=["help-desk"])
    org_update_settings(actor=tree["system"], org=tree["eng"], auth_method=AuthMethod.SSO, auth_provider=tree["okta"])
    assert password_sign_in_admins() == {other.pk}
    with pytest.raises(PolicyDenied) as err:
        org_move(actor=tree["system"], org=side, new_parent=tree["eng"])
    assert err.value.code == "last_admin_sso" and "break-glass user of Okta" in err.value.message
    assert refresh(side).parent_id == side.parent_id and refresh(side).path == side.path  # rolled back
    assert not AuditEvent.objects.filter(action="org.moved").exists()
    # With the admin a break-glass user of Okta the move goes through.
    break_glass_set(actor=tree["system"], provider=tree["okta"], users=[other])
    org_move(actor=tree["system"], org=side, new_parent=tree["eng"])
    assert refresh(side).parent_id == tree["eng"].pk


def test_moving_the_last_password_admin_into_an_sso_org_is_refused(tree, user_factory, admin_user):
    from accounts.identity.service import apply_identity_change, apply_identity_changes
    from accounts.identity.types import IdentityChange
    from sso.services import break_glass_set

    org_update_settings(actor=tree["system"], org=tree["eng"], auth_method=AuthMethod.SSO, auth_provider=tree["okta"])
    sso_admin = user_factory("cloud-eng", org=tree["team"], roles=[CUSTOMER_CLOUD_ADMIN],  # Team inherits SSO
                             password=None, state="active")
    assert password_sign_in_admins() == {admin_user.pk}
    with pytest.raises(PolicyDenied) as err:
        apply_identity_change(actor=tree["system"], change=IdentityChange(user_id=admin_user.pk, org_id=tree["team"].pk))
    assert err.value.code == "last_admin_sso" and err.value.field == "org"
    assert "break-glass user of Okta" in err.value.message
    admin_user.profile.refresh_from_db()
    assert admin_user.profile.org_id != tree["team"].pk
    assert not AuditEvent.objects.filter(action="user.moved").exists()

    # Two password admins moved in one batch: the first goes, the second is refused (the batch's view moves on).
    second = user_factory("cloud-acme", org=tree["acme"], roles=[CUSTOMER_CLOUD_ADMIN])
    result = apply_identity_changes(actor=tree["system"], changes=[
        IdentityChange(user_id=second.pk, org_id=tree["eng"].pk, ref="1"),
        IdentityChange(user_id=admin_user.pk, org_id=tree["eng"].pk, ref="2")])
    assert [r.status for r in result.results] == ["updated", "refused"]
    assert result.results[1].error.code == "last_admin_sso"

    # A break-glass user of Okta keeps password sign-in there: the move goes through.
    break_glass_set(actor=tree["system"], provider=tree["okta"], users=[admin_user, sso_admin])
    apply_identity_change(actor=tree["system"], change=IdentityChange(user_id=admin_user.pk, org_id=tree["team"].pk))
    admin_user.profile.refresh_from_db()
    assert admin_user.profile.org_id == tree["team"].pk
