"""Celery tasks: thin wrappers around ``sso.services`` (beat entry in idm/settings.py, SSO block)."""

from __future__ import annotations

from celery import shared_task

from sso.models import IdentityProvider
from sso.services import metadata_refresh, purge_expired_state


@shared_task(name="sso.tasks.refresh_all_metadata")
def refresh_all_metadata() -> dict:
    """Re-fetch the metadata of every provider configured by URL; returns {"ok": n, "failed": n}."""
    counts = {"ok": 0, "failed": 0}
    for pk in IdentityProvider.objects.exclude(metadata_url="").values_list("pk", flat=True):
        counts["ok" if refresh_provider_metadata(pk) else "failed"] += 1
    return counts


@shared_task(name="sso.tasks.refresh_provider_metadata")
def refresh_provider_metadata(provider_id: int) -> bool:
    """Re-fetch one provider's metadata (on demand from the console, or from the schedule)."""
    provider = IdentityProvider.objects.filter(pk=provider_id).first()
    return bool(provider) and metadata_refresh(provider=provider)


@shared_task(name="sso.tasks.purge_expired_state")
def purge_expired_sso_state() -> int:
    """Delete expired SSO state rows (database cache only); returns how many (beat: every 15 minutes)."""
    return purge_expired_state()
