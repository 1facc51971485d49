"""SSO-only users: active after their first SSO sign-in; "My account" shows what applies to them."""

from __future__ import annotations

from django.urls import reverse

from accounts.identity.types import UserState
from accounts.models import AuditEvent
from tests.sso.test_acs import signed_in


def test_invited_user_is_active_after_first_sso_sign_in(acs, user_factory, sso_org):
    invited = user_factory("alice", org=sso_org, password=None)  # created in the console without a password
    assert invited.profile.state == UserState.INVITED
    signed_in(acs.login(), invited)
    invited.profile.refresh_from_db()
    assert invited.profile.state == UserState.ACTIVE
    event = AuditEvent.objects.get(target_type="user", target_id=str(invited.pk), field="state")
    assert (event.old_value, event.new_value) == ("invited", "active")
    assert event.action == "user.activated"  # not "reactivated": the account was never active
    assert event.actor_label == f"SSO: {acs.provider.name}"
    # A second sign-in changes nothing more.
    acs.client.post(reverse("sso:signout"))
    signed_in(acs.login(), invited)
    assert AuditEvent.objects.filter(target_id=str(invited.pk), field="state").count() == 1


def test_my_account_of_an_sso_user_shows_provider_and_sign_ins(acs, sso_user):
    signed_in(acs.login(), sso_user)
    html = acs.client.get(reverse("accounts:account")).content.decode()
    assert 'data-sign-in-method="sso"' in html
    assert f"With single sign-on at <strong>{acs.provider.name}</strong>" in html
    assert "single sign-on (" in html  # the recorded SSO sign-in
    assert reverse("accounts:password_change") not in html
    assert reverse("accounts:mfa_setup") not in html
    response = acs.client.get(reverse("accounts:password_change"), follow=True)
    assert "change your password there" in response.content.decode()


def test_my_account_of_a_local_user_offers_password_and_two_factor(client, user_factory):
    user = user_factory("lou")
    client.force_login(user)
    html = client.get(reverse("accounts:account")).content.decode()
    assert 'data-sign-in-method="password"' in html
    assert reverse("accounts:password_change") in html and reverse("accounts:mfa_setup") in html
