"""Operations settings (``IDM_*``) with their defaults, read through one accessor at call time."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


class OpsSettings:
    """Typed access to the operations settings; each property documents its variable."""

    @property
    def content_security_policy(self) -> str:
        """``IDM_CSP``: the Content-Security-Policy header. No 'unsafe-inline': pages carry no inline
        script, style or event handler (tests/ops/test_headers.py checks every console page)."""
        return getattr(settings, "IDM_CSP", DEFAULT_CSP)

    @property
    def metrics_token(self) -> str:
        """``IDM_METRICS_TOKEN``: bearer token for /metrics; unset: /metrics answers loopback clients only."""
        return getattr(settings, "IDM_METRICS_TOKEN", "")

    @property
    def backup_dir(self) -> Path:
        """``IDM_BACKUP_DIR``: where backups are written (default var/backups)."""
        return Path(getattr(settings, "IDM_BACKUP_DIR", "") or settings.VAR_DIR / "backups")

    @property
    def backup_keep_daily(self) -> int:
        """``IDM_BACKUP_KEEP_DAILY``: how many daily backups to keep (default 7)."""
        return int(getattr(settings, "IDM_BACKUP_KEEP_DAILY", 7))

    @property
    def backup_keep_weekly(self) -> int:
        """``IDM_BACKUP_KEEP_WEEKLY``: how many weekly backups (the newest of each ISO week) to keep (default 4)."""
        return int(getattr(settings, "IDM_BACKUP_KEEP_WEEKLY", 4))

    @property
    def backup_max_age_hours(self) -> int:
        """``IDM_BACKUP_MAX_AGE_HOURS``: older than this, the last backup is stale (default 26)."""
        return int(getattr(settings, "IDM_BACKUP_MAX_AGE_HOURS", 26))

    @property
    def worker_ping_timeout(self) -> float:
        """``IDM_READYZ_WORKER_TIMEOUT``: seconds /readyz waits for a Celery worker to answer a ping."""
        return float(getattr(settings, "IDM_READYZ_WORKER_TIMEOUT", 1.0))

    @property
    def audit_retention_days(self) -> int:
        """``IDM_AUDIT_RETENTION_DAYS``: audit events older than this are purged daily (default 90)."""
        return int(getattr(settings, "IDM_AUDIT_RETENTION_DAYS", 90))

    @property
    def outbox_days(self) -> int:
        """``IDM_OUTBOX_DAYS``: outbox messages older than this are deleted daily (default 30)."""
        return int(getattr(settings, "IDM_OUTBOX_DAYS", 30))


DEFAULT_CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    # No form-action: the SAML HTTP-POST binding posts a form to the identity provider's address.
])

ops_settings = OpsSettings()
