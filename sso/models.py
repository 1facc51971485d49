"""SAML identity providers and the service provider's own signing keys.

* ``IdentityProvider``: one SAML 2.0 IdP as configured in the console (metadata, attribute mapping,
  request settings, security switches, break-glass users). Orgs point at it through
  ``Organization.auth_provider``.
* ``ServiceProviderKey``: idm's SP signing key pairs (current + optional next for rollover),
  generated on first use by ``sso.keys``.

Nothing here talks SAML; ``sso.config`` turns a provider into a pysaml2 configuration per request.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

# Code42's defaults for a new provider (code42-features.md §4.3).
AUTHN_CONTEXT_PASSWORD = "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"  # noqa: S105 (a URI)
DIGEST_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SIG_RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"


class IdentityProvider(models.Model):
    """A SAML 2.0 identity provider that organizations can use as their authentication method."""

    class Comparison(models.TextChoices):
        EXACT = "exact", "Exact"
        MINIMUM = "minimum", "Minimum"
        MAXIMUM = "maximum", "Maximum"
        BETTER = "better", "Better"

    class DigestAlgorithm(models.TextChoices):
        SHA256 = DIGEST_SHA256, "SHA-256"
        SHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384", "SHA-384"
        SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512", "SHA-512"

    class SignatureAlgorithm(models.TextChoices):
        RSA_SHA256 = SIG_RSA_SHA256, "RSA-SHA256"
        RSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384", "RSA-SHA384"
        RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512", "RSA-SHA512"

    name = models.CharField("display name", max_length=200, unique=True,
                            help_text="Shown to users on the sign-in page.")
    enabled = models.BooleanField(default=True)

    # --- IdP metadata: by URL (re-fetched on a schedule) or uploaded XML ------------------------
    metadata_url = models.URLField("metadata URL", max_length=1000, blank=True)
    metadata_verify_tls = models.BooleanField(
        "verify TLS certificate", default=True,
        help_text="Only turn off for a test IdP with a self-signed certificate.",
    )
    # The IdP's own EntityDescriptor (extracted from federation metadata when needed).
    metadata_xml = models.TextField(blank=True)
    entity_id = models.CharField("IdP entity id", max_length=1000, blank=True)
    metadata_fetched_at = models.DateTimeField(null=True, blank=True)
    metadata_error = models.TextField(blank=True)
    # Summary parsed from the metadata, for the console: {"sso": [...], "slo": [...], "certs": [...]}.
    metadata_summary = models.JSONField(default=dict, blank=True)

    # --- Attribute mapping ------------------------------------------------------------------------
    use_default_mapping = models.BooleanField(default=True)
    mapping_preset = models.CharField(max_length=20, blank=True, default="default")
    username_attribute = models.CharField(max_length=300, blank=True,
                                          help_text="Empty: the NameID is the username.")
    email_attribute = models.CharField(max_length=300, blank=True, default="mail")
    first_name_attribute = models.CharField(max_length=300, blank=True, default="givenName")
    last_name_attribute = models.CharField(max_length=300, blank=True, default="sn")

    # --- Request settings (Code42 defaults) ------------------------------------------------------
    authn_context_class = models.CharField("authentication context class", max_length=300, blank=True,
                                           default=AUTHN_CONTEXT_PASSWORD,
                                           help_text="Empty: request no particular context.")
    authn_context_comparison = models.CharField(max_length=10, choices=Comparison.choices,
                                                default=Comparison.EXACT)
    digest_algorithm = models.CharField(max_length=100, choices=DigestAlgorithm.choices, default=DIGEST_SHA256)
    signature_algorithm = models.CharField(max_length=100, choices=SignatureAlgorithm.choices,
                                           default=SIG_RSA_SHA256)
    sign_authn_requests = models.BooleanField("sign AuthnRequests", default=True)
    name_id_format = models.CharField("requested NameID format", max_length=200, blank=True)

    # --- Security switches ------------------------------------------------------------------------
    allow_legacy_algorithms = models.BooleanField(
        "accept SHA-1 signatures and digests", default=False,
        help_text="Only for legacy IdPs that cannot sign with SHA-256. MD5 is never accepted.",
    )
    allow_idp_initiated = models.BooleanField("allow IdP-initiated sign-in", default=False)
    clock_skew_seconds = models.PositiveIntegerField(default=60)

    # --- Users --------------------------------------------------------------------------------------
    jit_enabled = models.BooleanField("create unknown users on first sign-in", default=False)
    jit_org = models.ForeignKey("accounts.Organization", null=True, blank=True, on_delete=models.PROTECT,
                                related_name="+", verbose_name="organization for new users")
    break_glass_users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="sso_break_glass_for",
        help_text="Local users of this provider's orgs who keep password sign-in.",
    )

    # --- Trust (fourth review F2) -----------------------------------------------------------------
    # Who last set what decides who a response signs in as (``sso.policy.TRUST_FIELDS``): the provider
    # signs in only users this admin may change now (``sso.policy.check_trust_covers``). NULL: set by a
    # setup command or the system, or before this was recorded; trusted. PROTECT: deleting the setter
    # must not turn their trust into the system's.
    trust_set_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+", editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def provider_key(self) -> str:
        """The ``provider`` string of this IdP in ``ExternalIdentity`` links and audit events."""
        return str(self.pk)

    @property
    def supports_slo(self) -> bool:
        return bool((self.metadata_summary or {}).get("slo"))


class ServiceProviderKey(models.Model):
    """An SP signing key pair. ``CURRENT`` signs; ``NEXT`` is published in metadata ahead of a rollover;
    ``RETIRED`` is the record of a replaced key (certificate and fingerprint, no private key)."""

    class Status(models.TextChoices):
        CURRENT = "current", "Current"
        NEXT = "next", "Next (published for rollover)"
        RETIRED = "retired", "Retired"

    status = models.CharField(max_length=10, choices=Status.choices, db_index=True)
    private_key_pem = models.TextField(blank=True, help_text="Empty once the key is retired.")
    certificate_pem = models.TextField()
    fingerprint = models.CharField(max_length=64, unique=True)
    not_after = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=models.Q(status__in=["current", "next"]),
                                    name="sp_key_one_current_one_next"),
        ]

    def __str__(self) -> str:
        return f"{self.status} {self.fingerprint[:16]}"


class SsoSession(models.Model):
    """A console session started by an SSO sign-in, so an IdP's LogoutRequest can end it server-side.

    IdP-initiated logout usually arrives as a cross-site POST (or an iframe/redirect chain) that
    carries no SameSite=Lax session cookie, so the session is found by (provider, NameID,
    SessionIndex) instead (issue 4).
    """

    provider = models.ForeignKey(IdentityProvider, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name_id = models.CharField(max_length=1000)
    session_index = models.CharField(max_length=1000, blank=True)
    session_key = models.CharField(max_length=40, unique=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["provider", "name_id"], name="sso_session_subject")]

    def __str__(self) -> str:
        return f"{self.provider_id}:{self.name_id[:40]}"
