"""SAML identity providers. The foundation defines the record orgs point at; SSO fills in the rest."""

from django.db import models


class IdentityProvider(models.Model):
    """A SAML 2.0 identity provider that organizations can use as their authentication method."""

    name = models.CharField("display name", max_length=200, unique=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
