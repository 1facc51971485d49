"""App config for provisioning: SCIM 2.0 server and LDAP directory sync (authorization only)."""

from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    name = "provisioning"
    verbose_name = "Provisioning"

    def ready(self) -> None:
        from accounts.identity.orgs import default_roles_changed
        from provisioning.scim.providers import revoke_after_default_roles_change

        # A provider's credentials act only as far as their issuer may (provisioning.scim.providers).
        default_roles_changed.connect(revoke_after_default_roles_change,
                                      dispatch_uid="provisioning.revoke_after_default_roles_change")
