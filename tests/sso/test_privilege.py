"""SSO front doors of the privilege rule and the session tracking: the break-glass form (case-insensitive
lookup, no break-glass changes to a more privileged user), SAML sign-ins recorded as ``sso`` sessions,
(provider actors are covered in tests/accounts/test_privilege.py)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.exceptions import PolicyDenied
from accounts.identity.types import Actor
from accounts.models import AuditEvent
from accounts.sessions import UserSession
from sso.services import break_glass_set

pytestmark = pytest.mark.django_db


@pytest.fixture
def identity_admin(user_factory):
    return user_factory("idadmin", roles=["identity-management-administrator"])


def post_break_glass(client, provider, text: str):
    return client.post(reverse("sso:provider_break_glass", args=[provider.pk]), {"usernames": text})


def test_break_glass_lookup_ignores_case(admin_client, provider, sso_user):
    response = post_break_glass(admin_client, provider, "ALICE\n  Alice  \n")
    assert response.status_code == 302
    assert list(provider.break_glass_users.all()) == [sso_user]


def test_break_glass_unknown_user_named_in_lower_case(admin_client, provider, sso_user):
    response = post_break_glass(admin_client, provider, "Alice\nNobody")
    assert response.status_code == 200
    assert response.context["form"].errors.as_data()["usernames"][0].code == "unknown_user"
    assert "No such user: nobody" in response.content.decode()
    assert not provider.break_glass_users.exists()


def test_identity_admin_may_not_make_a_cloud_admin_break_glass(client, identity_admin, admin_user, provider):
    client.force_login(identity_admin)
    response = post_break_glass(client, provider, admin_user.username.upper())
    assert response.status_code == 200
    error = response.context["form"].errors.as_data()["usernames"][0]
    assert error.code == "target_more_privileged"
    assert error.message == "Only a Customer Cloud Admin can change admin."
    assert not provider.break_glass_users.exists()
    assert not AuditEvent.objects.filter(action="sso.break_glass_changed").exists()


def test_identity_admin_may_not_remove_a_cloud_admin_from_break_glass(client, identity_admin, admin_user, provider,
                                                                      sso_user, system_actor):
    break_glass_set(actor=system_actor, provider=provider, users=[admin_user])
    client.force_login(identity_admin)
    response = post_break_glass(client, provider, "alice")  # would drop admin, add alice
    assert response.context["form"].errors.as_data()["usernames"][0].code == "target_more_privileged"
    assert list(provider.break_glass_users.all()) == [admin_user]


def test_identity_admin_may_make_a_plain_user_break_glass(client, identity_admin, provider, sso_user):
    client.force_login(identity_admin)
    assert post_break_glass(client, provider, "alice").status_code == 302
    assert list(provider.break_glass_users.all()) == [sso_user]
    event = AuditEvent.objects.get(action="sso.break_glass_changed")
    assert (event.actor_label, event.new_value) == ("idadmin", ["alice"])


def test_break_glass_service_refuses_for_any_caller(identity_admin, admin_user, provider):
    with pytest.raises(PolicyDenied) as exc:
        break_glass_set(actor=Actor.for_user(identity_admin), provider=provider, users=[admin_user])
    assert exc.value.code == "target_more_privileged"


def test_saml_sign_in_is_recorded_as_an_sso_session(acs, sso_user):
    response = acs.login()
    assert response.status_code == 302
    row = UserSession.objects.get(user=sso_user)
    assert row.method == "sso"
    assert row.session_key == acs.client.cookies["sessionid"].value


def test_cloud_admin_of_an_sso_org_is_linked_at_first_sso_sign_in(acs, sso_user, system_actor):
    """The SAML link is not a takeover: the user's org already signs in only through this IdP."""
    from accounts.identity.service import apply_identity_change
    from accounts.identity.types import IdentityChange, Mode
    from accounts.models import ExternalIdentity

    apply_identity_change(actor=system_actor, change=IdentityChange(
        user_id=sso_user.pk, roles_add=frozenset({"customer-cloud-admin"}), mode=Mode.UPDATE))
    response = acs.login()
    assert response.status_code == 302
    assert ExternalIdentity.objects.filter(user=sso_user, source="saml").exists()
    assert UserSession.objects.filter(user=sso_user, method="sso").exists()
