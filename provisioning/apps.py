"""App config for provisioning: SCIM 2.0 server and LDAP directory sync (authorization only)."""

from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    name = "provisioning"
    verbose_name = "Provisioning"
