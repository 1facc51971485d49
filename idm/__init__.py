"""idm: a self-hosted identity management console built on Django."""

from .celery import app as celery_app

__version__ = "0.1.0"  # recorded beside each backup (ops/backup.py)

__all__ = ("__version__", "celery_app")
