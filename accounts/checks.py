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
