"""Provisioning settings (``IDM_*``) with their defaults, read through one accessor at call time."""

from __future__ import annotations

from django.conf import settings


class ProvisioningSettings:
    """Typed access to the provisioning settings; each property documents its variable."""

    @property
    def directory_alert_emails(self) -> list[str]:
        """``IDM_DIRECTORY_ALERT_EMAILS``: who gets the email about a held or failed directory sync
        (comma-separated addresses, or a list); unset or empty: every active Customer Cloud Admin."""
        value = getattr(settings, "IDM_DIRECTORY_ALERT_EMAILS", "") or ""
        if isinstance(value, str):
            value = value.split(",")
        return sorted({address.strip() for address in value if address and address.strip()})


app_settings = ProvisioningSettings()
