"""idm's SP signing key pairs: generated on first use (RSA 3072, self-signed), kept in the database,
written to files for xmlsec1; or taken from configured files (``IDM_SSO_SP_KEY_FILE``/``_CERT_FILE``).

A ``NEXT`` key can be added for rollover: it is published in SP metadata next to the current one so
IdPs learn it before ``promote_next_key()`` makes it the signing key. The key it replaces is ``RETIRED``:
its private key is deleted (idm only signs; it never decrypts assertions), its certificate and
fingerprint are kept as a record.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.db import IntegrityError, transaction

from sso.app_settings import app_settings
from sso.models import ServiceProviderKey

KEY_BITS = 3072
CERT_YEARS = 10


@dataclass(frozen=True)
class KeyFiles:
    """Paths of one key pair on disk, as pysaml2 wants them."""

    key_file: str
    cert_file: str
    fingerprint: str


def generate_key_pair(common_name: str = "idm SAML SP", *, bits: int = KEY_BITS,
                      years: int = CERT_YEARS) -> tuple[str, str]:
    """A new RSA private key and a self-signed certificate, both PEM (SAML trusts the key, not a CA)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * years))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def cert_fingerprint(cert_pem: str) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return cert.fingerprint(hashes.SHA256()).hex()


def _create(status: str) -> ServiceProviderKey:
    key_pem, cert_pem = generate_key_pair()
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return ServiceProviderKey.objects.create(
        status=status, private_key_pem=key_pem, certificate_pem=cert_pem,
        fingerprint=cert_fingerprint(cert_pem), not_after=cert.not_valid_after_utc,
    )


def current_key() -> ServiceProviderKey:
    """The signing key, generated (once, race-safe) on first use."""
    return _get_or_create(ServiceProviderKey.Status.CURRENT)


def _get_or_create(status: str) -> ServiceProviderKey:
    """The key with ``status`` (one at most, a database constraint), generated if missing; race-safe."""
    key = ServiceProviderKey.objects.filter(status=status).first()
    if key is not None:
        return key
    try:
        with transaction.atomic():
            return _create(status)
    except IntegrityError:  # another worker or admin generated it first
        return ServiceProviderKey.objects.get(status=status)


def next_key() -> ServiceProviderKey | None:
    return ServiceProviderKey.objects.filter(status=ServiceProviderKey.Status.NEXT).first()


def uses_configured_files() -> bool:
    """True when idm signs with ``IDM_SSO_SP_KEY_FILE``/``_CERT_FILE`` (no rollover in the console then)."""
    return bool(app_settings.SP_KEY_FILE and app_settings.SP_CERT_FILE)


def add_next_key() -> ServiceProviderKey:
    """Generate the rollover key (published in metadata, not yet used to sign)."""
    current_key()  # the current key exists first, so the next one never becomes current by accident
    return _get_or_create(ServiceProviderKey.Status.NEXT)


@transaction.atomic
def discard_next_key() -> ServiceProviderKey | None:
    """Delete the rollover key (it never signed anything) and its files; the deleted key, if any."""
    nxt = ServiceProviderKey.objects.select_for_update().filter(status=ServiceProviderKey.Status.NEXT).first()
    if nxt is None:
        return None
    pk = nxt.pk
    nxt.delete()
    nxt.pk = pk  # keep the id for the audit record
    _remove_files(nxt)
    return nxt


@transaction.atomic
def promote_next_key() -> ServiceProviderKey:
    """Make the next key the signing key; the old one is retired (no longer published) and loses its
    private key, in the database and on disk: only its certificate and fingerprint stay, as a record.

    Raises ``ServiceProviderKey.DoesNotExist`` when there is no next key.
    """
    nxt = ServiceProviderKey.objects.select_for_update().get(status=ServiceProviderKey.Status.NEXT)
    ServiceProviderKey.objects.filter(status=ServiceProviderKey.Status.CURRENT).update(
        status=ServiceProviderKey.Status.RETIRED)
    # Every retired key, so keys retired before private keys were cleared lose theirs at the next rollover.
    retired = ServiceProviderKey.objects.filter(status=ServiceProviderKey.Status.RETIRED)
    for old in retired.exclude(private_key_pem=""):
        _remove_files(old)  # on this host; a rolled-back promote rewrites the file from the DB on next use
    retired.update(private_key_pem="")
    nxt.status = ServiceProviderKey.Status.CURRENT
    nxt.save(update_fields=["status"])
    return nxt


def _write_private(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _paths(key: ServiceProviderKey) -> tuple[Path, Path]:
    base = app_settings.KEY_DIR
    return base / f"sp-{key.fingerprint[:24]}.key", base / f"sp-{key.fingerprint[:24]}.crt"


def _remove_files(key: ServiceProviderKey) -> None:
    for path in _paths(key):
        path.unlink(missing_ok=True)


def key_files(key: ServiceProviderKey) -> KeyFiles:
    """Materialise a DB key pair as files for xmlsec1 (named by fingerprint, so rotation is a new file).

    Only the current and next keys have a private key; a retired key is refused.
    """
    if key.status == ServiceProviderKey.Status.RETIRED or not key.private_key_pem:
        raise ValueError(f"SP key {key.fingerprint[:16]} is retired: it has no private key to use.")
    key_path, cert_path = _paths(key)
    _write_private(key_path, key.private_key_pem)
    _write_private(cert_path, key.certificate_pem)
    return KeyFiles(str(key_path), str(cert_path), key.fingerprint)


def signing_key_files() -> KeyFiles:
    """The files pysaml2 signs with: configured ones, else the current DB key."""
    if uses_configured_files():
        cert_pem = Path(app_settings.SP_CERT_FILE).read_text()
        return KeyFiles(app_settings.SP_KEY_FILE, app_settings.SP_CERT_FILE, cert_fingerprint(cert_pem))
    return key_files(current_key())


def published_cert_files() -> list[KeyFiles]:
    """Certificates to publish in SP metadata: the signing one, plus the rollover one if any."""
    files = [signing_key_files()]
    nxt = next_key()
    if nxt is not None and not uses_configured_files():
        files.append(key_files(nxt))
    return files


@dataclass(frozen=True)
class SpKeyInfo:
    """What the console shows about one SP key."""

    fingerprint: str
    not_after: dt.datetime
    created_at: dt.datetime | None = None
    from_files: bool = False

    @property
    def expires_soon(self) -> bool:
        return self.not_after - dt.datetime.now(dt.UTC) <= dt.timedelta(days=app_settings.CERT_EXPIRY_WARNING_DAYS)


def key_status() -> dict:
    """The signing key (generated now if needed) and the rollover key, for the console."""
    if uses_configured_files():
        cert = x509.load_pem_x509_certificate(Path(app_settings.SP_CERT_FILE).read_bytes())
        current = SpKeyInfo(cert.fingerprint(hashes.SHA256()).hex(), cert.not_valid_after_utc, from_files=True)
        return {"current": current, "next": None, "from_files": True}
    cur, nxt = current_key(), next_key()
    return {
        "current": SpKeyInfo(cur.fingerprint, cur.not_after, cur.created_at),
        "next": SpKeyInfo(nxt.fingerprint, nxt.not_after, nxt.created_at) if nxt else None,
        "from_files": False,
    }
