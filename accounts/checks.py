"""System checks for settings that would make idm unsafe or broken."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=True)
def check_base_url(app_configs, **kwargs):
    errors = []
    base = getattr(settings, "IDM_BASE_URL", "")
    if not base.startswith("https://"):
        errors.append(Warning(
            "IDM_BASE_URL is not https://; SAML and session cookies need TLS in production.",
            hint="Set IDM_BASE_URL=https://idm.example.com and serve idm behind TLS.", id="idm.W001",
        ))
    return errors


@register()
def check_database(app_configs, **kwargs):
    engine = settings.DATABASES["default"]["ENGINE"]
    if engine not in ("django.db.backends.sqlite3", "django.db.backends.postgresql"):
        return [Error(f"Unsupported database engine {engine}.", hint="Use PostgreSQL or SQLite.", id="idm.E001")]
    return []


@register(Tags.security)
def check_trusted_proxies(app_configs, **kwargs):
    """X-Forwarded-For is read only as far as ``IDM_TRUSTED_PROXIES`` proxies go (accounts/client_ip.py)."""
    count = getattr(settings, "IDM_TRUSTED_PROXIES", 0)
    if not isinstance(count, int) or count < 0:
        return [Error("IDM_TRUSTED_PROXIES must be 0 or a positive number of proxies.",
                      hint="Set it to the number of proxies in front of idm that append to X-Forwarded-For.",
                      id="idm.E020")]
    if count == 0 and getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        return [Warning("IDM_BEHIND_PROXY is set but IDM_TRUSTED_PROXIES is 0: audit records and the sign-in "
                        "throttle will see the proxy's address for every client.",
                        hint="Set IDM_TRUSTED_PROXIES to the number of proxies in front of idm (usually 1).",
                        id="idm.W020")]
    return []
