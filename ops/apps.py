"""App config for operations: security headers, health, metrics, logs, backups, audit retention, outbox."""

from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Connects the Celery signal handlers that record scheduled-job runs and task metrics."""

    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from . import alerts, signals  # noqa: F401
