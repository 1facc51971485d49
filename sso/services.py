"""Provider configuration writes (console, tasks, management command) and SP key actions, each audited.

Audit actions: ``sso.provider_created|updated|enabled|disabled|deleted``, ``sso.metadata_updated``,
``sso.metadata_refreshed``, ``sso.metadata_refresh_failed``, ``sso.break_glass_changed``,
``sso.trust_confirmed`` (target ``identity_provider``) and ``sso.sp_key_added|promoted|discarded`` (target ``sp_key``).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.exceptions import PolicyDenied, ValidationFailed
from accounts.identity.audit import record_event
from accounts.identity.locks import admin_lock
from accounts.identity.orgs import check_password_admins_kept, locked_password_sign_in_admins
from accounts.identity.privilege import check_may_change_user
from accounts.identity.types import Actor
from sso import keys
from sso import metadata as md
from sso.models import IdentityProvider, ServiceProviderKey
from sso.policy import check_may_administer_provider, guarded_changes, trust_changed

AUDITED_FIELDS = (
    "name", "enabled", "metadata_url", "metadata_verify_tls", "use_default_mapping", "mapping_preset",
    "username_attribute", "email_attribute", "first_name_attribute", "last_name_attribute",
    "authn_context_class", "authn_context_comparison", "digest_algorithm", "signature_algorithm",
    "sign_authn_requests", "name_id_format", "allow_legacy_algorithms", "allow_idp_initiated",
    "clock_skew_seconds", "jit_enabled", "jit_org", "trust_set_by",
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


def provider_save(*, actor: Actor, provider: IdentityProvider, metadata_xml: str | None = None,
                  fetch: bool = False) -> IdentityProvider:
    """Create or update a provider; with ``fetch`` (URL) or ``metadata_xml`` (upload) load its metadata.

    Metadata problems are refused as ``ValidationFailed`` with the admin-facing fix. A change to
    anything but the name changes how the provider's users sign in, so it needs an actor who holds
    every power of those users (``sso.policy``, ``provider_more_privileged``); judged with the admin
    lock held and the stored row locked, on what is stored then (a concurrent role grant is seen).
    """
    creating = provider.pk is None
    try:  # parsed (and fetched) before any lock is taken: a slow IdP must not hold the admin lock
        if metadata_xml:
            apply_metadata(provider, metadata_xml, entity_id=provider.entity_id)
        elif fetch and provider.metadata_url:
            apply_metadata(provider, md.fetch(provider.metadata_url, verify_tls=provider.metadata_verify_tls),
                           entity_id=provider.entity_id)
    except md.MetadataError as exc:
        raise ValidationFailed(exc.code, exc.message, field="metadata") from exc
    provider.full_clean(exclude=["break_glass_users"])
    with transaction.atomic():
        old = _lock_provider(provider) if not creating else None
        changed = guarded_changes(old, provider, metadata=bool(metadata_xml or fetch))
        if changed:
            check_may_administer_provider(actor=actor, provider=provider,
                                          action="create" if creating else "change")
        if trust_changed(changed):
            # Whoever sets what decides who a response signs in as vouches for it only as far as they may
            # act: the provider signs in only users they may change (fourth review F2, ``sso.policy``).
            provider.trust_set_by = actor.console_user
        provider.save()
        if creating:
            _audit(actor, "sso.provider_created", provider,
                   new={"name": provider.name, "entity_id": provider.entity_id,
                        "trust_set_by": _plain(provider.trust_set_by)})
            return provider
        for field in AUDITED_FIELDS:
            before, after = _plain(getattr(old, field)), _plain(getattr(provider, field))
            if before != after:
                action = "sso.provider_updated"
                if field == "enabled":  # its own action, so "who turned SSO off" is one filter away
                    action = "sso.provider_enabled" if after else "sso.provider_disabled"
                _audit(actor, action, provider, field, before, after)
        if metadata_xml or fetch:
            _audit(actor, "sso.metadata_updated", provider, "metadata", _metadata_facts(old),
                   _metadata_facts(provider))
    return provider


def _lock_provider(provider: IdentityProvider) -> IdentityProvider:
    """The stored provider, read after taking the admin lock and with its row locked until the
    transaction ends: role changes, org sign-in settings and moves take the admin lock too, so the
    privilege check that follows sees them (``sso.policy``)."""
    admin_lock()
    return IdentityProvider.objects.select_for_update().get(pk=provider.pk)


def _metadata_facts(provider: IdentityProvider) -> dict:
    """What an admin compares between two metadata versions: entity id, endpoints, certificates."""
    summary = provider.metadata_summary or {}
    return {
        "entity_id": provider.entity_id,
        "sso": sorted(s["location"] for s in summary.get("sso", [])),
        "slo": sorted(s["location"] for s in summary.get("slo", [])),
        "certs": [c["fingerprint"] for c in summary.get("certs", [])],
    }


def metadata_refresh(*, provider: IdentityProvider, actor: Actor | None = None) -> bool:
    """Re-fetch metadata from the provider's URL. Keeps the old metadata on failure (and records why).

    Returns True when the metadata was stored. A new signing certificate applies from the next request
    (``sso.config`` keys its cache on ``updated_at``). Whoever asks, the provider's trust stays with the
    admin who set its URL (``trust_set_by`` is not touched): a refresh serves that admin's choice.

    Audit: a failure is always recorded (``sso.metadata_refresh_failed``); a success that changed the
    metadata is ``sso.metadata_updated`` with old and new entity id, endpoints and certificates; an
    unchanged success is ``sso.metadata_refreshed`` when a person asked for it or when it ends a run of
    failures (the scheduled refresh every few hours does not log "nothing changed").
    """
    actor = actor or Actor.system("sso metadata refresh")
    if not provider.metadata_url:
        return False
    old_facts, old_xml, had_error = _metadata_facts(provider), provider.metadata_xml, bool(provider.metadata_error)
    try:
        xml = md.fetch(provider.metadata_url, verify_tls=provider.metadata_verify_tls)
        apply_metadata(provider, xml, entity_id=provider.entity_id)
    except md.MetadataError as exc:
        IdentityProvider.objects.filter(pk=provider.pk).update(metadata_error=exc.message)
        provider.metadata_error = exc.message
        _audit(actor, "sso.metadata_refresh_failed", provider, field="metadata", message=exc.message,
               new={"code": exc.code, "url": provider.metadata_url})
        return False
    provider.save(update_fields=["metadata_xml", "entity_id", "metadata_summary", "metadata_fetched_at",
                                 "metadata_error", "updated_at"])
    new_facts = _metadata_facts(provider)
    if provider.metadata_xml != old_xml:
        _audit(actor, "sso.metadata_updated", provider, "metadata", old_facts, new_facts,
               message="certificates changed" if old_facts["certs"] != new_facts["certs"] else "")
    elif actor.type == "user" or had_error:
        _audit(actor, "sso.metadata_refreshed", provider, "metadata", new=new_facts,
               message="recovered after failed refreshes" if had_error else "")
    return True


@transaction.atomic
def provider_confirm_trust(*, actor: Actor, provider: IdentityProvider) -> IdentityProvider:
    """Make ``actor`` the provider's trust setter: they vouch for its metadata, URL and mapping as they
    are, so it signs in every user they may change (fourth review F2). Judged as a change of the
    provider (``check_may_administer_provider``, with the admin lock held), audited
    ``sso.trust_confirmed`` with the old and new setter."""
    provider = _lock_provider(provider)
    check_may_administer_provider(actor=actor, provider=provider, action="confirm")
    old = provider.trust_set_by
    provider.trust_set_by = actor.console_user
    provider.save(update_fields=["trust_set_by", "updated_at"])
    _audit(actor, "sso.trust_confirmed", provider, "trust_set_by", _plain(old), _plain(provider.trust_set_by),
           message="confirmed the provider's metadata and mapping as they are")
    return provider


@transaction.atomic
def provider_delete(*, actor: Actor, provider: IdentityProvider) -> None:
    """Delete a provider no org uses (judged with the admin lock held, which org sign-in settings
    take too: an org pointed at it meanwhile is seen, never a foreign-key error)."""
    provider = _lock_provider(provider)
    check_may_administer_provider(actor=actor, provider=provider, action="delete")
    if provider.organizations.exists():
        raise PolicyDenied("provider_in_use", "Organizations still use this provider; switch them to another "
                           "authentication method first.")
    _audit(actor, "sso.provider_deleted", provider, old={"name": provider.name})
    provider.delete()


@transaction.atomic
def break_glass_set(*, actor: Actor, provider: IdentityProvider, users: list) -> None:
    """Replace the provider's break-glass (password sign-in) users.

    Adding or removing someone changes how they sign in, so the privilege rule applies to each of
    them: ``PolicyDenied("target_more_privileged")`` names the first user the actor may not change.
    """
    old = set(provider.break_glass_users.all())
    new = set(users)
    if old == new:
        return
    # The admin lock first, then judge: a role granted to one of them meanwhile is seen (role changes
    # take the lock too), never raced past.
    password_admins_before = locked_password_sign_in_admins()
    for user in sorted(old ^ new, key=lambda u: u.username):
        check_may_change_user(actor, user)
    provider.break_glass_users.set(new)
    # Removing the last break-glass Cloud Admin of an SSO org would lock every admin out (issue 7 §2).
    check_password_admins_kept(password_admins_before, provider=provider, field="break_glass_users")
    _audit(actor, "sso.break_glass_changed", provider, "break_glass_users",
           sorted(u.username for u in old), sorted(u.username for u in new))


# --- SP signing keys (shared by every provider) -------------------------------------------------------


def _audit_key(actor: Actor, action: str, key: ServiceProviderKey, *, old: Any = None, new: Any = None,
               message: str = "") -> None:
    record_event(actor=actor, action=action, target_type="sp_key", target_id=key.pk,
                 target_label=f"SP key {key.fingerprint[:16]}", field="status", old=old, new=new, message=message)


def _key_facts(key: ServiceProviderKey) -> dict:
    return {"fingerprint": key.fingerprint, "status": key.status, "not_after": key.not_after.isoformat()}


def _refuse_configured_files() -> None:
    if keys.uses_configured_files():
        raise PolicyDenied("sp_key_from_files", "idm signs with the key pair configured in IDM_SSO_SP_KEY_FILE "
                           "and IDM_SSO_SP_CERT_FILE. Roll it over by replacing those files (publish the new "
                           "certificate to the IdPs first).")


def sp_key_add_next(*, actor: Actor) -> ServiceProviderKey:
    """Generate the rollover key: published in every provider's SP metadata, not used to sign yet."""
    _refuse_configured_files()
    if keys.next_key() is not None:
        raise PolicyDenied("sp_next_key_exists", "A next key already exists. Promote or discard it first.")
    key = keys.add_next_key()
    _audit_key(actor, "sso.sp_key_added", key, new=_key_facts(key),
               message="published in SP metadata next to the current key")
    return key


def sp_key_promote(*, actor: Actor) -> ServiceProviderKey:
    """Sign with the next key from now on; the old current key is retired (no longer published)."""
    _refuse_configured_files()
    with transaction.atomic():
        old = keys.current_key()
        try:
            key = keys.promote_next_key()
        except ServiceProviderKey.DoesNotExist as exc:
            raise PolicyDenied("sp_no_next_key", "There is no next key to promote. Add one first and give the "
                               "IdPs time to load the new SP metadata.") from exc
        old.refresh_from_db()
        _audit_key(actor, "sso.sp_key_promoted", key, old=_key_facts(old), new=_key_facts(key),
                   message=f"retired {old.fingerprint[:16]}")
    return key


def sp_key_discard_next(*, actor: Actor) -> ServiceProviderKey:
    """Delete the rollover key (it never signed anything)."""
    _refuse_configured_files()
    key = keys.discard_next_key()
    if key is None:
        raise PolicyDenied("sp_no_next_key", "There is no next key to discard.")
    _audit_key(actor, "sso.sp_key_discarded", key, old=_key_facts(key))
    return key


def purge_expired_state() -> int:
    """Delete expired rows of the SSO state cache (outstanding AuthnRequests, seen assertion and logout ids,
    sign-in throttle counters) when it is a database cache; returns the number of rows deleted.

    Each anonymous visit to ``/sso/<id>/login/`` writes a row that expires after ``IDM_SSO_REQUEST_TTL``,
    but Django's ``DatabaseCache`` deletes expired rows only when it culls, and the SSO cache never
    culls (it must not forget assertion ids early). Without this, anonymous requests grow the table
    forever (issue 7 §5). Redis drops expired keys itself: nothing to do there (0).
    """
    from accounts.cache_expiry import expire_cache
    from sso.replay import state_cache

    return expire_cache(state_cache())
