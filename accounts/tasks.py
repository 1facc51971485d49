"""Celery tasks of the accounts app (Celery autodiscovers this module); each feature keeps its own."""

from celery import shared_task

from accounts import cache_expiry
from accounts.bulk_upload.tasks import *  # noqa: F401,F403


@shared_task(name="accounts.expire_cache_rows")
def expire_cache_rows() -> dict[str, int]:
    """Delete expired rows of the database caches (``accounts.cache_expiry``); table -> rows deleted."""
    return cache_expiry.expire_cache_rows()
