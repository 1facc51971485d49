"""SSO settings with their defaults (``IDM_SSO_*``), read through one accessor (allauth style).

Library settings for djangosaml2 (``SAML_*``) stay in ``idm/settings.py``.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


class AppSettings:
    """Typed accessors; each reads ``django.conf.settings`` at call time so tests can override them."""

    def _get(self, name: str, default):
        return getattr(settings, f"IDM_SSO_{name}", default)

    @property
    def BASE_URL(self) -> str:
        """Public base URL of idm; SP entity ids and ACS URLs derive from it."""
        return getattr(settings, "IDM_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

    @property
    def KEY_DIR(self) -> Path:
        """Where SP key files are written for xmlsec1 (mode 600)."""
        return Path(self._get("KEY_DIR", Path(settings.VAR_DIR) / "saml"))

    @property
    def SP_KEY_FILE(self) -> str:
        """A configured SP private key (PEM). Empty: generate one on first use and keep it in the DB."""
        return self._get("SP_KEY_FILE", "")

    @property
    def SP_CERT_FILE(self) -> str:
        """The certificate matching ``SP_KEY_FILE``."""
        return self._get("SP_CERT_FILE", "")

    @property
    def REQUEST_TTL(self) -> int:
        """Seconds an outstanding AuthnRequest id is kept server-side (the user's time at the IdP); bounded to
        1 min .. 1 h, as each anonymous sign-in start stores one (and the browser binding cookie lives as long)."""
        return max(60, min(int(self._get("REQUEST_TTL", 15 * 60)), 3600))

    @property
    def REPLAY_MAX_TTL(self) -> int:
        """Upper bound of how long an assertion id is remembered (assertions without an expiry)."""
        return int(self._get("REPLAY_MAX_TTL", 24 * 3600))

    @property
    def METADATA_TIMEOUT(self) -> float:
        """Seconds allowed to fetch IdP metadata."""
        return float(self._get("METADATA_TIMEOUT", 15))

    @property
    def METADATA_MAX_BYTES(self) -> int:
        """Largest metadata document accepted (federation metadata is large)."""
        return int(self._get("METADATA_MAX_BYTES", 64 * 1024 * 1024))

    @property
    def METADATA_ALLOW_PRIVATE(self) -> bool:
        """Fetch metadata from loopback, link-local and private addresses too (test IdPs only; SSRF)."""
        return bool(self._get("METADATA_ALLOW_PRIVATE", False))

    @property
    def METADATA_ALLOWED_NETWORKS(self) -> tuple[str, ...]:
        """Non-public networks (CIDR) metadata may still be fetched from, e.g. an internal AD FS."""
        return tuple(self._get("METADATA_ALLOWED_NETWORKS", ()))

    @property
    def METADATA_REFRESH_HOURS(self) -> int:
        """How often Celery beat re-fetches metadata from URLs."""
        return int(self._get("METADATA_REFRESH_HOURS", 6))

    @property
    def CERT_EXPIRY_WARNING_DAYS(self) -> int:
        """Warn in the console this many days before an IdP signing certificate expires."""
        return int(self._get("CERT_EXPIRY_WARNING_DAYS", 30))

    @property
    def XMLSEC_BINARY(self) -> str:
        return self._get("XMLSEC_BINARY", "/usr/bin/xmlsec1")


app_settings = AppSettings()
