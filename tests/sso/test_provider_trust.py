"""A provider's trust acts only as far as the admin who last set it may act (fourth review, F2).

``check_may_administer_provider`` judges a change against the users a provider signs in when it is
made. An Identity Management Administrator could therefore plant their own signing key on a provider
no admin used yet, and sign in as an admin once an org of admins was pointed at it or one of its users
was promoted. The provider now records who last set its trust (``trust_set_by``) and the ACS refuses,
``sso_trust_unconfirmed``, anyone that admin may not change now, until a qualified admin confirms it.

The first test is the review's reproduction through the real views and a signed response through the
real ACS view.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.identity.orgs import org_update_settings
from accounts.identity.types import Actor
from accounts.models import AuditEvent, ExternalIdentity, Role
from sso import services
from sso.models import IdentityProvider
from tests.sso.conftest import AcsDriver
from tests.sso.test_provider_privilege import form_error_codes, form_values

pytestmark = pytest.mark.django_db


@pytest.fixture
def ivan(user_factory):
    """An Identity Management Administrator (manage_identity, view_directory; no user powers)."""
    return user_factory("ivan.identity", roles=["identity-management-administrator"])


@pytest.fixture
def ivan_client(ivan):
    client = Client()
    client.force_login(ivan)
    return client


@pytest.fixture
def platform(org_factory):
    return org_factory("Platform")


@pytest.fixture
def ivans_provider(ivan_client, attacker_idp):
    """Step 1 of the review: ivan adds a provider with his own metadata (key B); no org uses it, so
    the privilege rule of third review H1 lets him."""
    upload = SimpleUploadedFile("mine.xml", attacker_idp.metadata().encode(), content_type="text/xml")
    response = ivan_client.post("/sso/providers/add/",
                                form_values(IdentityProvider(name="Ivan IdP"), metadata_file=upload))
    assert response.status_code == 302, form_error_codes(response)
    return IdentityProvider.objects.get(name="Ivan IdP")


def point_org_at(admin_client, org, provider) -> None:
    response = admin_client.post(f"/orgs/{org.pk}/settings/", {
        "auth_method": "sso", "auth_provider": provider.pk, "tfa_inherit": "on", "roles_inherit": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]


def set_roles(admin_client, user, *slugs) -> None:
    ids = [str(pk) for pk in Role.objects.filter(slug__in=slugs).values_list("pk", flat=True)]
    response = admin_client.post(f"/users/{user.pk}/roles/", {"roles": ids})
    assert response.status_code == 302, response.content.decode()[:2000]


def refusals(reason: str = "sso_trust_unconfirmed"):
    return AuditEvent.objects.filter(action="auth.sso_login_failed", new_value__reason=reason)


def test_a_key_planted_by_an_identity_admin_does_not_sign_in_a_later_promoted_admin(
        admin_client, admin_user, ivan, ivan_client, ivans_provider, platform, user_factory, attacker_idp):
    provider = ivans_provider
    assert provider.trust_set_by == ivan
    paul = user_factory("paul.platform", org=platform, password=None, roles=["console-user"])
    user_factory("pia.platform", org=platform, password=None, roles=["console-user"])
    point_org_at(admin_client, platform, provider)  # step 2

    # While paul holds nothing but sign-in, ivan's provider signs him in (and links him): it is ivan's to vouch for.
    browser = Client()
    response = AcsDriver(browser, provider, attacker_idp).login(name_id="paul.platform")
    assert response.status_code == 302 and int(browser.session["_auth_user_id"]) == paul.pk
    assert ExternalIdentity.objects.filter(user=paul, provider=provider.provider_key).exists()

    set_roles(admin_client, paul, "console-user", "cross-org-admin")  # step 3

    # Step 4: a response signed with ivan's key, naming paul, signs no one in.
    browser = Client()
    response = AcsDriver(browser, provider, attacker_idp).login(name_id="paul.platform")
    assert response.status_code == 403
    assert "_auth_user_id" not in browser.session
    page = response.content.decode()
    assert "sso_trust_unconfirmed" in page and "Contact your administrator" in page
    assert "ivan" not in page  # who set it is for the audit log, not for the browser
    event = refusals().get()
    assert event.target_label == "paul.platform"
    assert event.new_value["provider_id"] == provider.pk
    assert (event.new_value["trust_set_by"], event.new_value["trust_set_by_id"]) == ("ivan.identity", ivan.pk)
    # A user ivan may change still signs in through it.
    response = AcsDriver(Client(), provider, attacker_idp).login(name_id="pia.platform")
    assert response.status_code == 302

    # The provider page says so; ivan may not confirm it (he may not change paul) ...
    page = ivan_client.get(f"/sso/providers/{provider.pk}/").content.decode()
    assert "1 user cannot sign in until a qualified admin confirms this provider" in page
    assert f"/sso/providers/{provider.pk}/confirm-trust/" not in page
    response = ivan_client.post(f"/sso/providers/{provider.pk}/confirm-trust/")
    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.trust_set_by == ivan
    assert not AuditEvent.objects.filter(action="sso.trust_confirmed").exists()

    # ... a Customer Cloud Admin may: from then on the provider signs paul in.
    page = admin_client.get(f"/sso/providers/{provider.pk}/").content.decode()
    assert f"/sso/providers/{provider.pk}/confirm-trust/" in page
    assert admin_client.get(f"/sso/providers/{provider.pk}/confirm-trust/").status_code == 405
    assert admin_client.post(f"/sso/providers/{provider.pk}/confirm-trust/").status_code == 302
    provider.refresh_from_db()
    assert provider.trust_set_by == admin_user
    confirmed = AuditEvent.objects.get(action="sso.trust_confirmed")
    assert (confirmed.actor, confirmed.old_value, confirmed.new_value) == (admin_user, "ivan.identity", "admin")
    assert "sso_trust_unconfirmed" not in admin_client.get(f"/sso/providers/{provider.pk}/").content.decode()
    browser = Client()
    response = AcsDriver(browser, provider, attacker_idp).login(name_id="paul.platform")
    assert response.status_code == 302 and int(browser.session["_auth_user_id"]) == paul.pk


def test_an_org_of_admins_pointed_at_the_provider_is_refused_before_any_link_is_written(
        admin_client, ivans_provider, org_factory, user_factory, attacker_idp):
    """The review's variant: eve's org is pointed at ivan's provider after the fact; her org admin has
    never signed in through it (matched by username, not linked)."""
    org = org_factory("Engineering")
    priya = user_factory("priya.eng", org=org, password=None, roles=["console-user", "org-admin"])
    point_org_at(admin_client, org, ivans_provider)
    browser = Client()
    response = AcsDriver(browser, ivans_provider, attacker_idp).login(name_id="priya.eng")
    assert response.status_code == 403 and "_auth_user_id" not in browser.session
    assert not ExternalIdentity.objects.filter(user=priya).exists()
    assert refusals().filter(target_label="priya.eng").exists()


def test_just_in_time_users_whose_default_roles_exceed_the_setter_are_not_created(
        admin_client, admin_user, ivan, ivans_provider, platform, attacker_idp, system_actor):
    point_org_at(admin_client, platform, ivans_provider)
    org_update_settings(actor=system_actor, org=platform, inherit_default_roles=False,
                        default_roles=list(Role.objects.filter(slug__in=["console-user", "help-desk"])))
    ivans_provider.jit_enabled, ivans_provider.jit_org = True, platform
    services.provider_save(actor=Actor.for_user(admin_user), provider=ivans_provider)  # JIT is no trust field: ivan stays the setter
    ivans_provider.refresh_from_db()
    assert ivans_provider.trust_set_by == ivan

    browser = Client()
    response = AcsDriver(browser, ivans_provider, attacker_idp).login(name_id="newbie")
    assert response.status_code == 403 and "_auth_user_id" not in browser.session
    assert not User.objects.filter(username="newbie").exists()
    assert refusals().filter(target_label="newbie").exists()
    page = admin_client.get(f"/sso/providers/{ivans_provider.pk}/").content.decode()
    assert "New users cannot be created just in time until a qualified admin confirms" in page

    # Default roles the setter covers: created.
    org_update_settings(actor=system_actor, org=platform, inherit_default_roles=False,
                        default_roles=list(Role.objects.filter(slug="console-user")))
    response = AcsDriver(Client(), ivans_provider, attacker_idp).login(name_id="newbie")
    assert response.status_code == 302
    assert User.objects.filter(username="newbie").exists()


def test_trust_follows_whoever_sets_metadata_or_mapping_and_a_refresh_keeps_it(
        admin_client, admin_user, ivan, ivans_provider, idp, metadata_server, system_actor):
    provider = ivans_provider
    # A change that is not about trust keeps the setter.
    provider.clock_skew_seconds = 120
    services.provider_save(actor=Actor.for_user(admin_user), provider=provider)
    provider.refresh_from_db()
    assert provider.trust_set_by == ivan
    # Pointing the metadata URL elsewhere is a trust change: the admin who did it vouches now.
    metadata_server.document = idp.metadata()
    provider.metadata_url, provider.metadata_verify_tls = metadata_server.url, False
    services.provider_save(actor=Actor.for_user(admin_user), provider=provider, fetch=True)
    provider.refresh_from_db()
    assert provider.trust_set_by == admin_user
    assert AuditEvent.objects.filter(action="sso.provider_updated", field="trust_set_by",
                                     old_value="ivan.identity", new_value="admin").exists()
    # A refresh, scheduled or asked for by someone else, serves the URL its setter chose: the setter stays.
    assert services.metadata_refresh(provider=provider, actor=Actor.for_user(ivan))
    assert services.metadata_refresh(provider=provider)
    provider.refresh_from_db()
    assert provider.trust_set_by == admin_user
    # A setup command (system actor) sets trust as the system: no setter, trusted.
    provider.username_attribute, provider.use_default_mapping = "uid", False
    services.provider_save(actor=system_actor, provider=provider)
    provider.refresh_from_db()
    assert provider.trust_set_by is None


def test_guided_setup_records_the_admin_who_loads_the_metadata(ivan, ivan_client, admin_client, admin_user, idp):
    response = ivan_client.post("/sso/providers/new/", {"name": "Guided"})
    assert response.status_code == 302
    provider = IdentityProvider.objects.get(name="Guided")
    assert provider.trust_set_by == ivan
    upload = SimpleUploadedFile("idp.xml", idp.metadata().encode(), content_type="text/xml")
    response = admin_client.post(f"/sso/providers/{provider.pk}/setup/", {"metadata_file": upload,
                                                                         "metadata_verify_tls": "on"})
    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.trust_set_by == admin_user


def test_a_provider_set_by_the_system_signs_in_its_admins(sso_user_factory, provider, idp):
    """Rows from before the migration and setup commands have no setter: trusted, no extra check."""
    assert provider.trust_set_by is None
    sso_user_factory("sara.sales", roles=["console-user", "cross-org-admin"])
    browser = Client()
    assert AcsDriver(browser, provider, idp).login(name_id="sara.sales").status_code == 302
    assert not refusals().exists()


def test_a_deactivated_setter_vouches_for_no_admin(
        admin_client, ivan, ivans_provider, platform, user_factory, attacker_idp, system_actor):
    user_factory("hd.platform", org=platform, password=None, roles=["console-user", "help-desk"])
    point_org_at(admin_client, platform, ivans_provider)
    # ivan holding help desk's powers too covers the help desk user ...
    set_roles(admin_client, ivan, "identity-management-administrator", "help-desk")
    assert AcsDriver(Client(), ivans_provider, attacker_idp).login(name_id="hd.platform").status_code == 302
    # ... until he is deactivated: his powers are gone, and so is his trust for users who hold any.
    assert admin_client.post(f"/users/{ivan.pk}/deactivate/").status_code == 302
    ivan.refresh_from_db()
    assert not ivan.is_active
    response = AcsDriver(Client(), ivans_provider, attacker_idp).login(name_id="hd.platform")
    assert response.status_code == 403


def test_the_console_test_sign_in_explains_the_trust_refusal(
        ivan_client, ivans_provider, admin_client, platform, user_factory, attacker_idp):
    from tests.sso.test_setup_guided import _test_sign_in

    user_factory("paul.platform", org=platform, password=None, roles=["console-user", "cross-org-admin"])
    point_org_at(admin_client, platform, ivans_provider)
    _test_sign_in(ivan_client, ivans_provider, attacker_idp, name_id="paul.platform")
    html = ivan_client.get(f"/sso/providers/{ivans_provider.pk}/test/result/").content.decode()
    assert 'data-test-result="refused"' in html and 'data-code="sso_trust_unconfirmed"' in html


def _acs_queries(provider, idp, name_id: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    driver = AcsDriver(Client(), provider, idp)
    xml = driver.xml(name_id=name_id)
    with CaptureQueriesContext(connection) as queries:
        assert driver.post_xml(xml).status_code == 302
    return len(queries)


def test_the_trust_check_costs_a_few_queries_per_sign_in(sso_user_factory, provider, idp, admin_user):
    """Nothing for a provider the system set up; the user's roles, and the setter's powers only for a
    user who holds powers beyond sign-in."""
    sso_user_factory("plain.user", roles=["console-user"])
    sso_user_factory("hd.user", roles=["console-user", "help-desk"])
    for name in ("plain.user", "hd.user"):  # link both first: every measured sign-in takes the same path
        _acs_queries(provider, idp, name)
    system = {name: _acs_queries(provider, idp, name) for name in ("plain.user", "hd.user")}
    services.provider_confirm_trust(actor=Actor.for_user(admin_user), provider=provider)
    provider.refresh_from_db()
    confirmed = {name: _acs_queries(provider, idp, name) for name in ("plain.user", "hd.user")}
    assert confirmed["plain.user"] - system["plain.user"] <= 1
    assert confirmed["hd.user"] - system["hd.user"] <= 4


def test_confirm_trust_needs_the_csrf_token(admin_user, ivans_provider, ivan):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    assert browser.post(f"/sso/providers/{ivans_provider.pk}/confirm-trust/").status_code == 403
    ivans_provider.refresh_from_db()
    assert ivans_provider.trust_set_by == ivan
