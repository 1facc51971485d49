"""Provider configuration writes (console, tasks, management command), each audited."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.exceptions import PolicyDenied, ValidationFailed
from accounts.identity.audit import record_event
from accounts.identity.types import Actor
from sso import metadata as md
from sso.models import IdentityProvider

AUDITED_FIELDS = (
    "name", "enabled", "metadata_url", "metadata_verify_tls", "use_default_mapping", "mapping_preset",
    "username_attribute", "email_attribute", "first_name_attribute", "last_name_attribute",
    "authn_context_class", "authn_context_comparison", "digest_algorithm", "signature_algorithm",
    "sign_authn_requests", "name_id_format", "allow_legacy_algorithms", "allow_idp_initiated",
    "clock_skew_seconds", "jit_enabled", "jit_org",
)


def _audit(actor: Actor, action: str, provider: IdentityProvider, field: str = "", old: Any = None,
           new: Any = None, message: str = "") -> None:
    record_event(actor=actor, action=action, target_type="identity_provider", target_id=provider.pk,
                 target_label=provider.name, field=field, old=old, new=new, message=message)


def _plain(value: Any) -> Any:
    return str(value) if hasattr(value, "_meta") else value


def apply_metadata(provider: IdentityProvider, xml: str, *, entity_id: str = "") -> md.IdpMetadata:
    """Parse ``xml`` and store it on ``provider`` (not saved); raises ``MetadataError``."""
    try:
        parsed = md.parse(xml)
    except md.MetadataError as exc:
        if exc.code != "metadata_ambiguous" or not entity_id:
            raise
        parsed = md.parse(xml, entity_id=entity_id)  # federation metadata: the admin named the IdP
    provider.metadata_xml = parsed.xml
    provider.entity_id = parsed.entity_id
    provider.metadata_summary = parsed.summary()
    provider.metadata_fetched_at = timezone.now()
    provider.metadata_error = ""
    return parsed


@transaction.atomic
def provider_save(*, actor: Actor, provider: IdentityProvider, metadata_xml: str | None = None,
                  fetch: bool = False) -> IdentityProvider:
    """Create or update a provider; with ``fetch`` (URL) or ``metadata_xml`` (upload) load its metadata.

    Metadata problems are refused as ``ValidationFailed`` with the admin-facing fix.
    """
    creating = provider.pk is None
    old = IdentityProvider.objects.get(pk=provider.pk) if not creating else None
    try:
        if metadata_xml:
            apply_metadata(provider, metadata_xml, entity_id=provider.entity_id)
        elif fetch and provider.metadata_url:
            apply_metadata(provider, md.fetch(provider.metadata_url, verify_tls=provider.metadata_verify_tls),
                           entity_id=provider.entity_id)
    except md.MetadataError as exc:
        raise ValidationFailed(exc.code, exc.message, field="metadata") from exc
    provider.full_clean(exclude=["break_glass_users"])
    provider.save()
    if creating:
        _audit(actor, "sso.provider_created", provider, new={"name": provider.name, "entity_id": provider.entity_id})
        return provider
    for field in AUDITED_FIELDS:
        before, after = _plain(getattr(old, field)), _plain(getattr(provider, field))
        if before != after:
            _audit(actor, "sso.provider_updated", provider, field, before, after)
    if metadata_xml or fetch:
        _audit(actor, "sso.metadata_updated", provider, "metadata",
               [c["fingerprint"] for c in (old.metadata_summary or {}).get("certs", [])],
               [c["fingerprint"] for c in provider.metadata_summary.get("certs", [])])
    return provider


def metadata_refresh(*, provider: IdentityProvider, actor: Actor | None = None) -> bool:
    """Re-fetch metadata from the provider's URL. Keeps the old metadata on failure (and records why).

    Returns True when the metadata was stored. A new signing certificate applies from the next request
    (``sso.config`` keys its cache on ``updated_at``).
    """
    actor = actor or Actor.system("sso metadata refresh")
    if not provider.metadata_url:
        return False
    old_certs = [c["fingerprint"] for c in (provider.metadata_summary or {}).get("certs", [])]
    try:
        xml = md.fetch(provider.metadata_url, verify_tls=provider.metadata_verify_tls)
        apply_metadata(provider, xml, entity_id=provider.entity_id)
    except md.MetadataError as exc:
        IdentityProvider.objects.filter(pk=provider.pk).update(metadata_error=exc.message)
        provider.metadata_error = exc.message
        _audit(actor, "sso.metadata_refresh_failed", provider, message=exc.message)
        return False
    provider.save(update_fields=["metadata_xml", "entity_id", "metadata_summary", "metadata_fetched_at",
                                 "metadata_error", "updated_at"])
    new_certs = [c["fingerprint"] for c in provider.metadata_summary.get("certs", [])]
    if new_certs != old_certs:
        _audit(actor, "sso.metadata_updated", provider, "certificates", old_certs, new_certs)
    return True


@transaction.atomic
def provider_delete(*, actor: Actor, provider: IdentityProvider) -> None:
    """Delete a provider no org uses."""
    if provider.organizations.exists():
        raise PolicyDenied("provider_in_use", "Organizations still use this provider; switch them to another "
                           "authentication method first.")
    _audit(actor, "sso.provider_deleted", provider, old={"name": provider.name})
    provider.delete()


@transaction.atomic
def break_glass_set(*, actor: Actor, provider: IdentityProvider, users: list) -> None:
    """Replace the provider's break-glass (password sign-in) users."""
    old = set(provider.break_glass_users.all())
    new = set(users)
    if old == new:
        return
    provider.break_glass_users.set(new)
    _audit(actor, "sso.break_glass_changed", provider, "break_glass_users",
           sorted(u.username for u in old), sorted(u.username for u in new))
