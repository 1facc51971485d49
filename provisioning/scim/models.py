"""SCIM provider data: bearer tokens (stored hashed), the resources a provider pushed, a request log.

A SCIM provider *is* a ``provisioning.Source`` of kind ``scim``; these tables hold only what the
SCIM protocol adds to it. They live in the ``provisioning`` app (``Meta.app_label``) and are
imported by ``provisioning.models``.
"""

from __future__ import annotations

import uuid

from django.contrib.auth.models import User
from django.db import models

from provisioning.models import Source


def new_scim_id() -> str:
    """A server-assigned SCIM ``id`` (RFC 7643 §3.1: stable, never reassigned)."""
    return uuid.uuid4().hex


class ScimToken(models.Model):
    """One bearer token of a provider, stored only as its SHA-256 digest.

    ``expires_at`` is NULL for the current token; rotation sets it on the previous one (the overlap
    window during which both work). ``hint`` is the token's first characters, for the console.
    """

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="scim_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=20)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by_label = models.CharField(max_length=255, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "provisioning"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.hint}… of {self.source_id}"


class ScimResource(models.Model):
    """A user or group a provider pushed: its SCIM ``id``, the document as the provider last sent it
    (attributes idm has no column for), and the ``meta`` bookkeeping (created, version).

    For users, ``scim_id`` is also the ``ExternalIdentity.external_id`` of the provider's link, so
    the identity service's matching finds the user by it.
    """

    class Kind(models.TextChoices):
        USER = "User", "User"
        GROUP = "Group", "Group"

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="scim_resources")
    kind = models.CharField(max_length=5, choices=Kind.choices)
    scim_id = models.CharField(max_length=32, unique=True, default=new_scim_id)
    user = models.OneToOneField(User, null=True, blank=True, on_delete=models.CASCADE, related_name="scim_resource")
    group = models.OneToOneField("accounts.DirectoryGroup", null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="scim_resource")
    # Columns for what lists filter on; the rest of what the provider sent is in ``document``.
    external_id = models.CharField(max_length=255, blank=True)
    active = models.BooleanField(default=True, help_text="The provider's own active flag, as it last sent it.")
    document = models.JSONField(default=dict, blank=True)
    # DELETE keeps the user (audit, ownership) but the resource is gone for SCIM (RFC 7644 §3.6: 404).
    deleted_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "provisioning"
        indexes = [
            models.Index(fields=["source", "kind", "id"]),
            models.Index(fields=["source", "kind", "external_id"]),
            # What SCIM lists read: the provider's live resources by id. Partial, so a page's OFFSET
            # and the list's COUNT are index-only scans (deep pages at 100k users, issue 9).
            models.Index(fields=["source", "kind", "id"], condition=models.Q(deleted_at__isnull=True),
                         name="scim_resource_live_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.scim_id}"


class ScimRequest(models.Model):
    """One SCIM request, for troubleshooting: never a body, never a credential."""

    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.CASCADE, related_name="scim_requests")
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    status = models.PositiveSmallIntegerField()
    scim_type = models.CharField(max_length=32, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        app_label = "provisioning"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["source", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.status}"
