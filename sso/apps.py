"""App config for SAML 2.0 single sign-on (authentication only)."""

from django.apps import AppConfig


class SsoConfig(AppConfig):
    name = "sso"
    verbose_name = "Single sign-on"
