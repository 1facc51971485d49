"""Celery tasks of the accounts app (Celery autodiscovers this module); each feature keeps its own."""

from accounts.bulk_upload.tasks import *  # noqa: F401,F403
