"""SP signing key rollover from the console: add next, promote, discard; permissions, audit, metadata, signing."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import parse_qs, unquote_plus, urlparse

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from accounts.models import AuditEvent
from sso import keys
from sso.models import ServiceProviderKey


@pytest.fixture
def db_keys(settings):
    """Sign with keys kept in the database (the default), not the configured test files."""
    settings.IDM_SSO_SP_KEY_FILE = settings.IDM_SSO_SP_CERT_FILE = ""
    return settings


def _b64(cert_pem: str) -> str:
    return "".join(line for line in cert_pem.splitlines() if "-----" not in line)


def _verifies(location: str, cert_pem: str) -> bool:
    """Check an HTTP-Redirect binding signature (SAML bindings §3.4.4.1) against ``cert_pem``."""
    query = urlparse(location).query
    raw = dict(part.split("=", 1) for part in query.split("&"))
    signed = "&".join(f"{k}={raw[k]}" for k in ("SAMLRequest", "RelayState", "SigAlg") if k in raw)
    signature = base64.b64decode(unquote_plus(raw["Signature"]))
    assert parse_qs(query)["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"]
    public_key = x509.load_pem_x509_certificate(cert_pem.encode()).public_key()
    try:
        public_key.verify(signature, signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


@pytest.mark.parametrize("action", ["add-next", "promote", "discard-next"])
def test_key_actions_need_manage_identity(client, user_factory, db_keys, action):
    client.force_login(user_factory("plain"))
    resp = client.post(f"/sso/sp-key/{action}/")
    assert resp.status_code == 403
    assert not ServiceProviderKey.objects.filter(status="next").exists()
    assert not AuditEvent.objects.filter(action__startswith="sso.sp_key_").exists()


def test_key_actions_need_post_and_csrf(client, admin_user, db_keys):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(admin_user)
    assert csrf_client.get("/sso/sp-key/add-next/").status_code == 405
    assert csrf_client.post("/sso/sp-key/add-next/").status_code == 403  # no CSRF token
    assert not ServiceProviderKey.objects.filter(status="next").exists()


def test_provider_page_shows_current_and_next_key(admin_client, provider, db_keys):
    body = admin_client.get(f"/sso/providers/{provider.pk}/").content.decode()
    current = keys.current_key()
    assert current.fingerprint[:23] in body and "Add next key" in body
    assert "Promote next key" not in body
    resp = admin_client.post("/sso/sp-key/add-next/", {"provider": provider.pk})
    assert resp.status_code == 302 and resp["Location"] == f"/sso/providers/{provider.pk}/"
    nxt = keys.next_key()
    body = admin_client.get(f"/sso/providers/{provider.pk}/").content.decode()
    assert nxt.fingerprint[:23] in body and "Promote next key" in body and "Discard next key" in body
    assert nxt.not_after.strftime("%Y-%m-%d") in body
    assert nxt.fingerprint[:23] in admin_client.get("/sso/providers/").content.decode()


def test_rollover_publishes_both_then_signs_with_promoted_key(admin_client, client, provider, db_keys, admin_user):
    old = keys.current_key()
    assert admin_client.post("/sso/sp-key/add-next/").status_code == 302
    new = keys.next_key()
    assert new is not None and new.pk != old.pk

    # During rollover both certificates are in the SP metadata; requests are still signed with the old key.
    metadata = client.get(f"/sso/{provider.pk}/metadata/").content.decode()
    assert _b64(old.certificate_pem) in metadata and _b64(new.certificate_pem) in metadata
    location = client.get(f"/sso/{provider.pk}/login/")["Location"]
    assert _verifies(location, old.certificate_pem) and not _verifies(location, new.certificate_pem)

    assert admin_client.post("/sso/sp-key/promote/").status_code == 302
    assert keys.current_key().pk == new.pk and keys.next_key() is None
    assert ServiceProviderKey.objects.get(pk=old.pk).status == ServiceProviderKey.Status.RETIRED

    # After promotion: AuthnRequests verify against the new certificate only; metadata lists only it.
    location = client.get(f"/sso/{provider.pk}/login/")["Location"]
    assert _verifies(location, new.certificate_pem) and not _verifies(location, old.certificate_pem)
    metadata = client.get(f"/sso/{provider.pk}/metadata/").content.decode()
    assert _b64(new.certificate_pem) in metadata and _b64(old.certificate_pem) not in metadata

    added, promoted = (AuditEvent.objects.get(action=a) for a in ("sso.sp_key_added", "sso.sp_key_promoted"))
    assert added.actor == admin_user and added.new_value["fingerprint"] == new.fingerprint
    assert promoted.old_value["fingerprint"] == old.fingerprint and promoted.old_value["status"] == "retired"
    assert promoted.new_value["fingerprint"] == new.fingerprint and promoted.request_id


def test_discard_next_key(admin_client, client, provider, db_keys):
    admin_client.post("/sso/sp-key/add-next/")
    nxt = keys.next_key()
    assert admin_client.post("/sso/sp-key/discard-next/").status_code == 302
    assert keys.next_key() is None and not ServiceProviderKey.objects.filter(pk=nxt.pk).exists()
    assert _b64(nxt.certificate_pem) not in client.get(f"/sso/{provider.pk}/metadata/").content.decode()
    event = AuditEvent.objects.get(action="sso.sp_key_discarded")
    assert event.target_id == str(nxt.pk) and event.old_value["fingerprint"] == nxt.fingerprint


def test_promote_without_next_key_is_refused_politely(admin_client, db_keys):
    current = keys.current_key()
    resp = admin_client.post("/sso/sp-key/promote/", follow=True)
    assert resp.status_code == 200 and b"sp_no_next_key" in resp.content
    assert keys.current_key().pk == current.pk
    assert not AuditEvent.objects.filter(action="sso.sp_key_promoted").exists()


def test_second_add_is_refused(admin_client, db_keys):
    admin_client.post("/sso/sp-key/add-next/")
    first = keys.next_key()
    resp = admin_client.post("/sso/sp-key/add-next/", follow=True)
    assert b"sp_next_key_exists" in resp.content and keys.next_key().pk == first.pk
    assert AuditEvent.objects.filter(action="sso.sp_key_added").count() == 1


def test_configured_key_files_have_no_console_rollover(admin_client, provider):
    body = admin_client.get(f"/sso/providers/{provider.pk}/").content.decode()
    assert "IDM_SSO_SP_KEY_FILE" in body and "Add next key" not in body
    resp = admin_client.post("/sso/sp-key/add-next/", follow=True)
    assert b"sp_key_from_files" in resp.content
    assert not ServiceProviderKey.objects.exists()


def test_unknown_key_action_is_404(admin_client, db_keys):
    assert admin_client.post("/sso/sp-key/rotate-everything/").status_code == 404


def test_promoted_away_key_loses_its_private_key(admin_client, client, provider, db_keys):
    """idm only signs (no encrypted assertions), so a retired key keeps its certificate, not its private key."""
    old = keys.current_key()
    old_files = keys.signing_key_files()
    assert Path(old_files.key_file).exists()
    admin_client.post("/sso/sp-key/add-next/")
    new = keys.next_key()
    assert admin_client.post("/sso/sp-key/promote/").status_code == 302

    retired = ServiceProviderKey.objects.get(pk=old.pk)
    assert retired.status == ServiceProviderKey.Status.RETIRED and retired.private_key_pem == ""
    assert retired.certificate_pem == old.certificate_pem and retired.fingerprint == old.fingerprint
    assert not Path(old_files.key_file).exists()  # nor on disk
    assert ServiceProviderKey.objects.get(pk=new.pk).private_key_pem == new.private_key_pem
    with pytest.raises(ValueError, match="retired"):
        keys.key_files(retired)

    # Metadata and signing carry on with the new key; the console does not trip over the retired one.
    metadata = client.get(f"/sso/{provider.pk}/metadata/").content.decode()
    assert metadata.count("X509Certificate>") == 2 and _b64(new.certificate_pem) in metadata
    location = client.get(f"/sso/{provider.pk}/login/")["Location"]
    assert _verifies(location, new.certificate_pem)
    assert admin_client.get(f"/sso/providers/{provider.pk}/").status_code == 200
    assert admin_client.get("/sso/providers/").status_code == 200

    # The next rollover works too, and every retired key stays without a private key.
    admin_client.post("/sso/sp-key/add-next/")
    newest = keys.next_key()
    assert admin_client.post("/sso/sp-key/promote/").status_code == 302
    assert set(ServiceProviderKey.objects.filter(status="retired").values_list("pk", "private_key_pem")) == {
        (old.pk, ""), (new.pk, "")}
    assert _verifies(client.get(f"/sso/{provider.pk}/login/")["Location"], newest.certificate_pem)


def test_keys_retired_before_this_change_are_cleared_at_the_next_promote(db, db_keys):
    old = keys.current_key()
    keys.add_next_key()
    keys.promote_next_key()
    ServiceProviderKey.objects.filter(pk=old.pk).update(private_key_pem="legacy")  # an older rollover's record
    keys.add_next_key()
    keys.promote_next_key()
    assert ServiceProviderKey.objects.get(pk=old.pk).private_key_pem == ""
