"""App config for the local directory: organizations, roles, users, audit and the identity service."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Registers system checks and signal handlers on startup."""

    name = "accounts"
    verbose_name = "Local directory"

    def ready(self) -> None:
        from . import checks, signals  # noqa: F401
        from .credentials import middleware  # noqa: F401  (the user_logged_in receiver)
