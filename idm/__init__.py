"""idm: a self-hosted identity management console built on Django."""

from .celery import app as celery_app

__all__ = ("celery_app",)
