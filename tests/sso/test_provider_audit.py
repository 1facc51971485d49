"""Every provider configuration change is audited: create, update, enable/disable, delete, metadata, break-glass."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent
from sso.forms import ProviderForm
from sso.models import IdentityProvider
from sso.services import metadata_refresh
from tests.sso.idp import TestIdP


def _edit_data(provider: IdentityProvider, **changes) -> dict:
    """The console edit form as the browser would post it, with ``changes`` applied."""
    data = {}
    for name, value in {**ProviderForm(instance=provider).initial, **changes}.items():
        if name not in ProviderForm.base_fields or value is None or value is False:
            continue
        data[name] = "on" if value is True else value
    return data


def _events(action: str, provider: IdentityProvider):
    return AuditEvent.objects.filter(action=action, target_type="identity_provider", target_id=str(provider.pk))


def test_console_edit_audits_each_changed_field_with_old_and_new(admin_client, admin_user, provider):
    resp = admin_client.post(f"/sso/providers/{provider.pk}/edit/",
                             _edit_data(provider, name="Okta prod", clock_skew_seconds=120))
    assert resp.status_code == 302, resp.content.decode()[:2000]
    changes = {e.field: (e.old_value, e.new_value, e.actor) for e in _events("sso.provider_updated", provider)}
    assert changes == {"name": ("Test IdP", "Okta prod", admin_user), "clock_skew_seconds": (60, 120, admin_user)}


def test_disable_and_enable_have_their_own_actions(admin_client, admin_user, provider):
    admin_client.post(f"/sso/providers/{provider.pk}/edit/", _edit_data(provider, enabled=False))
    provider.refresh_from_db()
    assert provider.enabled is False
    event = _events("sso.provider_disabled", provider).get()
    assert (event.field, event.old_value, event.new_value, event.actor) == ("enabled", True, False, admin_user)
    assert event.request_id  # the console request that did it

    admin_client.post(f"/sso/providers/{provider.pk}/edit/", _edit_data(provider, enabled=True))
    assert _events("sso.provider_enabled", provider).count() == 1
    assert not _events("sso.provider_updated", provider).exists()


def test_create_and_delete_are_audited(admin_client, admin_user, provider):
    assert _events("sso.provider_created", provider).exists()
    assert admin_client.post(f"/sso/providers/{provider.pk}/delete/").status_code == 302
    event = AuditEvent.objects.get(action="sso.provider_deleted")
    assert event.actor == admin_user and event.old_value == {"name": "Test IdP"}


def test_uploaded_metadata_audits_old_and_new_facts(admin_client, provider, saml_keys):
    from django.core.files.uploadedfile import SimpleUploadedFile

    rotated = TestIdP(key_file=saml_keys["idp-rotated"][0], cert_file=saml_keys["idp-rotated"][1])
    upload = SimpleUploadedFile("idp.xml", rotated.metadata().encode(), content_type="text/xml")
    data = _edit_data(provider) | {"metadata_file": upload}
    assert admin_client.post(f"/sso/providers/{provider.pk}/edit/", data).status_code == 302
    event = _events("sso.metadata_updated", provider).get()
    assert event.old_value["certs"] != event.new_value["certs"]
    assert event.new_value["entity_id"] == rotated.entity_id and event.new_value["sso"]


@pytest.fixture
def url_provider(provider, metadata_server, idp):
    metadata_server.document = idp.metadata()
    provider.metadata_url = metadata_server.url
    provider.save()
    return provider


def test_refresh_on_demand_is_audited_even_when_unchanged(admin_client, admin_user, url_provider):
    resp = admin_client.post(f"/sso/providers/{url_provider.pk}/refresh/")
    assert resp.status_code == 302
    event = _events("sso.metadata_refreshed", url_provider).get()
    assert event.actor == admin_user and event.new_value["entity_id"] == url_provider.entity_id
    assert not _events("sso.metadata_updated", url_provider).exists()


def test_scheduled_refresh_logs_changes_failures_and_recovery_not_noise(url_provider, metadata_server, saml_keys):
    assert metadata_refresh(provider=url_provider) is True  # unchanged, scheduled: nothing to record
    assert not AuditEvent.objects.filter(action__startswith="sso.metadata_").exists()

    metadata_server.document = "<not-metadata/>"
    assert metadata_refresh(provider=url_provider) is False
    failed = _events("sso.metadata_refresh_failed", url_provider).get()
    assert failed.actor_type == "system" and failed.new_value["code"] == "metadata_not_saml" and failed.message

    rotated = TestIdP(key_file=saml_keys["idp-rotated"][0], cert_file=saml_keys["idp-rotated"][1])
    metadata_server.document = rotated.metadata()
    assert metadata_refresh(provider=url_provider) is True
    updated = _events("sso.metadata_updated", url_provider).get()
    assert updated.old_value["certs"] != updated.new_value["certs"] and updated.message == "certificates changed"

    metadata_server.document = "<broken"
    metadata_refresh(provider=url_provider)
    metadata_server.document = rotated.metadata()
    assert metadata_refresh(provider=url_provider) is True  # same document as before the failure
    recovered = _events("sso.metadata_refreshed", url_provider).get()
    assert "recovered" in recovered.message


def test_break_glass_change_is_audited(admin_client, admin_user, provider, sso_user):
    admin_client.post(f"/sso/providers/{provider.pk}/break-glass/", {"usernames": "alice"})
    event = _events("sso.break_glass_changed", provider).get()
    assert (event.old_value, event.new_value, event.actor) == ([], ["alice"], admin_user)


def test_failed_save_writes_nothing(admin_client, provider):
    from django.core.files.uploadedfile import SimpleUploadedFile

    before = AuditEvent.objects.count()
    data = _edit_data(provider, name="Renamed") | {
        "metadata_file": SimpleUploadedFile("idp.xml", b"<nope/>", content_type="text/xml")}
    resp = admin_client.post(f"/sso/providers/{provider.pk}/edit/", data)
    assert resp.status_code == 200 and b"metadata_not_saml" in resp.content
    assert AuditEvent.objects.count() == before
    provider.refresh_from_db()
    assert provider.name == "Test IdP"
