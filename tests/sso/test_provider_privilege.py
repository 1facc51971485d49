"""Who may change an identity provider (third review, H1): its settings decide who signs in as whom,
so changing them changes the credentials of every user who signs in through it. The privilege rule
applies: the actor must hold every power of those users (``sso.policy``), else
``provider_more_privileged``. Pointing an org at a provider (or moving an org under one) changes how
its users sign in, so it is judged the same way (``target_more_privileged``).

The first test is the review's reproduction through the real views: an Identity Management
Administrator uploads metadata with their own key and signs in as a Cross Org Admin of the SSO org.
"""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.exceptions import PolicyDenied
from accounts.identity.orgs import org_move, org_update_settings
from accounts.identity.types import Actor, AuthMethod
from accounts.models import AuditEvent, Role
from sso import services
from sso.models import IdentityProvider
from tests.sso.conftest import AcsDriver

pytestmark = pytest.mark.django_db

SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"


@pytest.fixture
def ivan(user_factory):
    """An Identity Management Administrator (manage_identity, view_directory; no user powers)."""
    return user_factory("ivan.identity", roles=["identity-management-administrator"])


@pytest.fixture
def sara(sso_user_factory):
    """A Cross Org Admin of the SSO org: signs in through the provider."""
    return sso_user_factory("sara.sales", roles=["console-user", "cross-org-admin"])


def form_values(provider: IdentityProvider, **changes) -> dict:
    """What the edit form posts: the provider's current values, with ``changes`` on top."""
    data = {
        "name": provider.name, "metadata_url": provider.metadata_url, "entity_id": provider.entity_id,
        "mapping_preset": provider.mapping_preset, "username_attribute": provider.username_attribute,
        "email_attribute": provider.email_attribute, "first_name_attribute": provider.first_name_attribute,
        "last_name_attribute": provider.last_name_attribute, "authn_context_class": provider.authn_context_class,
        "authn_context_comparison": provider.authn_context_comparison, "digest_algorithm": SHA256,
        "signature_algorithm": RSA_SHA256, "name_id_format": provider.name_id_format,
        "clock_skew_seconds": str(provider.clock_skew_seconds), "jit_org": provider.jit_org_id or "",
    }
    for flag in ("enabled", "metadata_verify_tls", "use_default_mapping", "sign_authn_requests",
                 "allow_idp_initiated", "allow_legacy_algorithms", "jit_enabled"):
        if getattr(provider, flag):
            data[flag] = "on"
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def post_edit(client, provider, **changes):
    return client.post(f"/sso/providers/{provider.pk}/edit/", form_values(provider, **changes))


def form_error_codes(response) -> list[str]:
    return [e.code for errors in response.context["form"].errors.as_data().values() for e in errors]


def test_identity_admin_cannot_swap_the_certificate_and_sign_in_as_a_cross_org_admin(
        client, ivan, sara, provider, attacker_idp, idp):
    before = provider.metadata_xml
    client.force_login(ivan)
    upload = SimpleUploadedFile("mine.xml", attacker_idp.metadata().encode(), content_type="text/xml")
    response = post_edit(client, provider, metadata_file=upload)

    assert response.status_code == 200
    assert form_error_codes(response) == ["provider_more_privileged"]
    assert "Customer Cloud Admin" in response.content.decode()
    provider.refresh_from_db()
    assert provider.metadata_xml == before
    assert not AuditEvent.objects.filter(action="sso.metadata_updated", actor=ivan).exists()

    # A new session: a response signed with ivan's key does not sign anyone in as sara.
    client.logout()
    driver = AcsDriver(client, provider, attacker_idp)
    response = driver.login(name_id="sara.sales")
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session
    # ... while her real IdP still signs her in.
    response = AcsDriver(client, provider, idp).login(name_id="sara.sales")
    assert response.status_code == 302 and int(client.session["_auth_user_id"]) == sara.pk


@pytest.mark.parametrize("changes", [
    {"enabled": None},  # turning it off locks out its users
    {"username_attribute": "uid", "use_default_mapping": None},
    {"allow_idp_initiated": "on"},
    {"allow_legacy_algorithms": "on"},
    {"clock_skew_seconds": "3600"},
])
def test_identity_admin_cannot_change_how_a_more_privileged_user_signs_in(client, ivan, sara, provider, changes):
    stored = IdentityProvider.objects.values().get(pk=provider.pk)
    client.force_login(ivan)
    response = post_edit(client, provider, **changes)
    assert response.status_code == 200
    assert form_error_codes(response) == ["provider_more_privileged"]
    assert IdentityProvider.objects.values().get(pk=provider.pk) == stored
    assert not AuditEvent.objects.filter(action__startswith="sso.", actor=ivan).exists()


def test_identity_admin_cannot_point_the_metadata_url_at_their_own_metadata(client, ivan, sara, provider,
                                                                         attacker_idp, metadata_server):
    metadata_server.document = attacker_idp.metadata()
    before = provider.metadata_xml
    client.force_login(ivan)
    response = post_edit(client, provider, metadata_url=metadata_server.url, metadata_verify_tls=None)
    assert form_error_codes(response) == ["provider_more_privileged"]
    provider.refresh_from_db()
    assert (provider.metadata_url, provider.metadata_xml) == ("", before)


def test_detail_page_says_why_and_offers_no_delete(client, ivan, sara, provider, admin_user):
    client.force_login(ivan)
    page = client.get(f"/sso/providers/{provider.pk}/").content.decode()
    assert 'data-code="provider_more_privileged"' in page
    assert f"/sso/providers/{provider.pk}/delete/" not in page
    client.force_login(admin_user)
    page = client.get(f"/sso/providers/{provider.pk}/").content.decode()
    assert 'data-code="provider_more_privileged"' not in page
    assert f"/sso/providers/{provider.pk}/delete/" in page


def test_identity_admin_may_rename_a_provider_of_more_privileged_users(client, ivan, sara, provider):
    client.force_login(ivan)
    response = post_edit(client, provider, name="Corp IdP")
    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.name == "Corp IdP"


def test_identity_admin_may_change_a_provider_of_plain_users(client, ivan, sso_user, provider, attacker_idp):
    client.force_login(ivan)
    upload = SimpleUploadedFile("new.xml", attacker_idp.metadata().encode(), content_type="text/xml")
    response = post_edit(client, provider, metadata_file=upload, allow_idp_initiated="on")
    assert response.status_code == 302, form_error_codes(response)
    assert AuditEvent.objects.filter(action="sso.metadata_updated", actor=ivan).exists()


def test_break_glass_users_do_not_count(client, ivan, sara, provider, make_break_glass, attacker_idp):
    make_break_glass(sara)  # she signs in with her password, never through the provider
    client.force_login(ivan)
    response = post_edit(client, provider, enabled=None)
    assert response.status_code == 302, form_error_codes(response)


def test_cloud_admin_may_change_it(admin_client, sara, provider, attacker_idp):
    upload = SimpleUploadedFile("new.xml", attacker_idp.metadata().encode(), content_type="text/xml")
    response = post_edit(admin_client, provider, metadata_file=upload)
    assert response.status_code == 302


def test_a_cross_org_admin_with_manage_identity_may_not_change_a_cloud_admins_provider(
        client, user_factory, sso_user_factory, provider):
    sso_user_factory("carl.cloud", roles=["customer-cloud-admin"])
    both = user_factory("cora", roles=["cross-org-admin", "identity-management-administrator"])
    client.force_login(both)
    response = post_edit(client, provider, clock_skew_seconds="300")
    assert form_error_codes(response) == ["provider_more_privileged"]
    assert "Only a Customer Cloud Admin" in response.context["form"].non_field_errors()[0]


def test_users_of_sub_orgs_inheriting_sso_count(client, ivan, org_factory, sso_org, user_factory, provider):
    child = org_factory("SSO Child", parent=sso_org)
    user_factory("hd", org=child, password=None, roles=["help-desk"])  # global reset_passwords
    client.force_login(ivan)
    response = post_edit(client, provider, enabled=None)
    assert form_error_codes(response) == ["provider_more_privileged"]


def test_just_in_time_default_roles_count(ivan, org_factory, provider, system_actor):
    """A provider that creates users just in time gives them the org's default roles."""
    org = org_factory("New Hires")
    org_update_settings(actor=system_actor, org=org, auth_method=AuthMethod.SSO, auth_provider=provider,
                        inherit_default_roles=False, default_roles=[Role.objects.get(slug="help-desk")])
    provider.jit_enabled, provider.jit_org = True, org
    with pytest.raises(PolicyDenied) as exc:
        services.provider_save(actor=Actor.for_user(ivan), provider=provider)
    assert exc.value.code == "provider_more_privileged"
    assert "Reset passwords" in exc.value.message


def test_setup_metadata_step_is_judged_too(client, ivan, sara, provider, attacker_idp):
    client.force_login(ivan)
    upload = SimpleUploadedFile("mine.xml", attacker_idp.metadata().encode(), content_type="text/xml")
    before = provider.metadata_xml
    response = client.post(f"/sso/providers/{provider.pk}/setup/", {"metadata_file": upload,
                                                                   "metadata_verify_tls": "on"})
    assert response.status_code == 200
    assert form_error_codes(response) == ["provider_more_privileged"]
    provider.refresh_from_db()
    assert provider.metadata_xml == before


def test_delete_of_an_unused_provider_is_judged(ivan, provider_factory, org_factory, system_actor):
    org = org_factory("Hires")
    org_update_settings(actor=system_actor, org=org, inherit_default_roles=False,
                        default_roles=[Role.objects.get(slug="help-desk")])
    unused = provider_factory("Spare", jit_enabled=True, jit_org=org)
    with pytest.raises(PolicyDenied) as exc:
        services.provider_delete(actor=Actor.for_user(ivan), provider=unused)
    assert exc.value.code == "provider_more_privileged"
    assert IdentityProvider.objects.filter(pk=unused.pk).exists()


# --- org settings: pointing an org at a provider, switching its method, moving it under one -------------


@pytest.fixture
def olivia(user_factory, org_factory):
    """Org Admin of Sales (org-scoped user powers there) who also configures identity providers."""
    sales = org_factory("Sales")
    return user_factory("olivia", org=sales, roles=["org-admin", "identity-management-administrator"])


def settings_post(client, org, **values):
    return client.post(f"/orgs/{org.pk}/settings/", {"tfa_inherit": "on", "roles_inherit": "on", **values})


def test_org_admin_cannot_point_an_org_with_a_more_privileged_user_at_a_provider(
        client, olivia, user_factory, provider):
    sales = olivia.profile.org
    user_factory("hank", org=sales, roles=["help-desk"])  # global reset_passwords: more than olivia holds
    client.force_login(olivia)
    response = settings_post(client, sales, auth_method="sso", auth_provider=provider.pk)
    assert response.status_code == 200
    assert "target_more_privileged" in form_error_codes(response)
    sales.refresh_from_db()
    assert sales.auth_method is None and sales.auth_provider_id is None
    assert not AuditEvent.objects.filter(action="org.settings_changed", actor=olivia).exists()


def test_org_admin_may_point_an_org_of_plain_users_at_a_provider(client, olivia, user_factory, provider):
    sales = olivia.profile.org
    user_factory("pete", org=sales)
    client.force_login(olivia)
    response = settings_post(client, sales, auth_method="sso", auth_provider=provider.pk)
    assert response.status_code == 302, form_error_codes(response)
    sales.refresh_from_db()
    assert sales.auth_provider_id == provider.pk


def test_switching_back_to_local_is_judged_too(client, olivia, user_factory, provider, system_actor):
    sales = olivia.profile.org
    org_update_settings(actor=system_actor, org=sales, auth_method=AuthMethod.SSO, auth_provider=provider)
    user_factory("hank", org=sales, roles=["help-desk"], password=None)
    client.force_login(olivia)
    response = settings_post(client, sales, auth_method="local")
    assert "target_more_privileged" in form_error_codes(response)


def test_org_move_under_an_sso_parent_is_judged(user_factory, org_factory, sso_org, system_actor):
    team = org_factory("Team")
    user_factory("hank", org=team, roles=["help-desk"])
    mover = user_factory("max", roles=["org-admin"])  # org admin of the root: manages every org, but
    # holds reset_passwords only org-scoped, hank globally
    with pytest.raises(PolicyDenied) as exc:
        org_move(actor=Actor.for_user(mover), org=team, new_parent=sso_org)
    assert exc.value.code == "target_more_privileged"
    team.refresh_from_db()
    assert team.parent_id != sso_org.pk


def test_org_move_between_orgs_of_the_same_sign_in_is_not_judged(user_factory, org_factory, system_actor):
    a, b = org_factory("Alpha"), org_factory("Beta")
    team = org_factory("Team", parent=a)
    user_factory("hank", org=team, roles=["help-desk"])
    mover = user_factory("max", roles=["org-admin"])
    org_move(actor=Actor.for_user(mover), org=team, new_parent=b)
    team.refresh_from_db()
    assert team.parent_id == b.pk
