"""An admin switches an org to SSO in the console (org settings page); its users then go to the IdP."""

from __future__ import annotations

from accounts.identity.orgs import effective_settings
from accounts.models import AuditEvent


def test_admin_sets_org_to_sso_then_signin_redirects_to_idp(admin_client, client, provider, org_factory,
                                                           user_factory, admin_user):
    org = org_factory("Sales")
    child = org_factory("Sales EMEA", parent=org)
    user_factory("carol", org=child)
    page = admin_client.get(f"/orgs/{org.pk}/settings/").content.decode()
    assert f'<option value="{provider.pk}">{provider.name}</option>' in page

    resp = admin_client.post(f"/orgs/{org.pk}/settings/", {
        "auth_method": "sso", "auth_provider": provider.pk, "tfa_inherit": "on", "roles_inherit": "on",
    })
    assert resp.status_code == 302, resp.content.decode()[:3000]
    org.refresh_from_db()
    assert (org.auth_method, org.auth_provider_id) == ("sso", provider.pk)
    assert effective_settings(child).auth_provider == provider  # inherited by the child org
    event = AuditEvent.objects.get(action="org.settings_changed", field="auth_provider", target_id=str(org.pk))
    assert event.new_value == provider.name and event.actor == admin_user

    # The child org's user, at the sign-in page, is sent to the provider after the username step.
    resp = client.post("/sso/signin/", {"username": "carol", "next": "/users/"})
    assert resp.status_code == 302 and resp["Location"] == f"/sso/{provider.pk}/login/?next=%2Fusers%2F"
    resp = client.get(resp["Location"])
    assert resp.status_code == 302 and resp["Location"].startswith("https://idp.example.test/sso/redirect?SAMLRequest=")
