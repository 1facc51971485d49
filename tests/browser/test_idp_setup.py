"""Browser: the guided identity provider setup end to end (name -> idm's values with copy buttons ->
upload the IdP's metadata -> test sign-in at a real pysaml2 IdP on another site -> what it asserted
and how it maps), and the grouped one-page form with every input styled."""

from __future__ import annotations

import re

import pytest
from django.conf import settings as django_settings

from sso.config import acs_url, sp_entity_id
from sso.models import IdentityProvider
from sso.sp_metadata import sp_metadata_xml
from tests.browser.test_sso_flow import IDP_PASSWORD, LoopbackIdP
from tests.sso.idp import make_keys

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def login(context, live_server, client, user):
    client.force_login(user)
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME]
    context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])


@pytest.fixture
def sso_site(settings, tmp_path, live_server):
    settings.IDM_BASE_URL = live_server.url
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
    settings.IDM_SSO_KEY_DIR = str(tmp_path / "sp-keys")
    sp_key, sp_cert = make_keys(tmp_path / "sp", "sp")
    settings.IDM_SSO_SP_KEY_FILE, settings.IDM_SSO_SP_CERT_FILE = sp_key, sp_cert
    return tmp_path


def test_guided_setup_and_test_sign_in(page, live_server, client, admin_user, user_factory, sso_site):
    from playwright.sync_api import expect

    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    login(page.context, live_server, client, admin_user)
    with LoopbackIdP(sso_site / "idp") as idp:
        page.goto(f"{live_server.url}/sso/providers/")
        page.get_by_role("link", name="Add identity provider").click()
        page.get_by_label("Display name").fill("Loopback IdP")
        page.get_by_role("button", name="Continue").click()

        # Step 2: idm's values exist before the IdP's metadata does, each with a copy button.
        provider = IdentityProvider.objects.get(name="Loopback IdP")
        expect(page.locator("#sp-entity-id")).to_have_text(sp_entity_id(provider))
        expect(page.locator("#sp-acs-url")).to_have_text(acs_url(provider))
        copy = page.locator('[data-copy="sp-acs-url"]')
        copy.click()
        expect(copy).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == acs_url(provider)

        # The IdP admin enters idm's values at the IdP; then idm gets the IdP's metadata.
        idp.trust_sp(sp_metadata_xml(provider))
        page.get_by_role("link", name="Next: the IdP's metadata").click()
        page.get_by_label("Or upload the metadata XML").set_input_files(
            files=[{"name": "idp.xml", "mimeType": "text/xml", "buffer": idp.idp.metadata().encode()}])
        page.get_by_role("button", name="Load metadata").click()
        expect(page.get_by_role("heading", name="Test a sign-in")).to_be_visible()

        # Step 4: one SP-initiated sign-in at the IdP, back to the result; the admin stays the admin.
        user_factory("alice", email="alice@example.com")
        page.get_by_role("button", name="Test sign-in").click()
        page.wait_for_url(f"{idp.base_url}/sso/redirect*")
        page.fill("#idp-username", "alice")
        page.fill("#idp-password", IDP_PASSWORD)
        page.click("#idp-submit")
        page.wait_for_url(re.compile(r"/sso/providers/\d+/test/result/"))
        result = page.locator("[data-test-result]")
        expect(result).to_have_attribute("data-test-result", "refused")  # alice's org signs in locally
        expect(result).to_contain_text("alice exists, but the sign-in would be refused")
        expect(result).to_contain_text("alice@example.com")
        expect(page.locator(".usermenu")).to_contain_text(admin_user.get_full_name())  # still the admin


def test_grouped_form_styles_every_input(page, live_server, client, admin_user, sso_site):
    from playwright.sync_api import expect

    login(page.context, live_server, client, admin_user)
    page.goto(f"{live_server.url}/sso/providers/add/")
    legends = page.locator("fieldset.form-group > legend")
    expect(legends).to_have_text(["Identity provider", "Attribute mapping", "Request signing", "Advanced"])
    reference = page.get_by_label("Display name")
    for label in ("Metadata URL", "Upload metadata XML", "Clock skew seconds", "IdP entity id"):
        field = page.get_by_label(label)
        for prop in ("border-top-width", "border-radius", "font-family"):
            assert field.evaluate(f"e => getComputedStyle(e)['{prop}']") == reference.evaluate(
                f"e => getComputedStyle(e)['{prop}']"), (label, prop)
    # A refused save keeps the groups and says what to fix in a sentence.
    page.get_by_label("Display name").fill("No metadata")
    page.get_by_role("button", name="Save").click()
    expect(page.locator('[data-code="metadata_required"]')).to_have_text("Enter the metadata URL or upload the metadata XML.")
