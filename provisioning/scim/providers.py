"""SCIM providers and their bearer tokens: create, rotate, disable, and authenticate a request.

Used by the console (Identity management -> Provisioning) and by ``manage.py scim_provider``, so both
behave the same.

Tokens are ``idm_scim_`` + ``secrets.token_urlsafe(32)`` (256 random bits), shown once and stored
only as their SHA-256 digest. A slow password hash (PBKDF2, Argon2) protects *guessable* secrets; a
256-bit random token cannot be guessed or looked up in a dictionary, so a fast digest is as safe
and lets each request find its token with one indexed lookup instead of trying every stored hash.
The lookup compares digests, never the token, so its timing tells nothing about the token; the
final ``hmac.compare_digest`` keeps the comparison constant-time anyway.

Rotation issues a new token and keeps the previous one valid for an overlap window (default 24 h,
so the identity provider can be updated without a gap); after that only the new one works.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from accounts.exceptions import ConflictError, NotFound, ValidationFailed
from accounts.identity.audit import record_event
from accounts.identity.orgs import OrgIndex
from accounts.identity.types import Actor
from accounts.models import Organization
from provisioning.models import Source
from provisioning.policy import check_may_administer_source
from provisioning.scim.models import ScimToken
from provisioning.services import source_save

TOKEN_PREFIX = "idm_scim_"  # noqa: S105 - a public prefix, not a secret
DEFAULT_OVERLAP = timedelta(hours=24)
SCIM_PATH = "/scim/v2"


@dataclass(frozen=True)
class ProviderCredentials:
    """A provider and the token to paste into the identity provider (shown this once)."""

    source: Source
    token: str
    base_url: str


def base_url() -> str:
    """The SCIM base URL identity providers are given (``IDM_BASE_URL`` + ``/scim/v2``)."""
    return settings.IDM_BASE_URL.rstrip("/") + SCIM_PATH


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_token(source: Source, actor: Actor) -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    ScimToken.objects.create(source=source, token_hash=hash_token(token), hint=token[:len(TOKEN_PREFIX) + 4],
                             created_by_label=actor.label)
    return token


def _unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "scim"
    slug, n = base, 2
    while Source.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


def provider_create(*, actor: Actor, name: str, org: Organization | str | None = None) -> ProviderCredentials:
    """Create a SCIM provider whose new users go to ``org`` (an org, or its name or path; default:
    the top-level org), and its first token."""
    name = (name or "").strip()
    if not name or len(name) > Source._meta.get_field("name").max_length:
        raise ValidationFailed("provider_name_invalid", "Give the provider a name of at most 120 characters.",
                               field="name")
    if Source.objects.filter(name__iexact=name).exists():
        raise ConflictError("provider_name_taken", f"A source named {name!r} exists.", field="name")
    if isinstance(org, str):
        org = OrgIndex().lookup(org)
    org = org or Organization.objects.get(parent__isnull=True)
    with transaction.atomic():
        source = source_save(actor=actor, source=Source(
            name=name, slug=_unique_slug(name), kind=Source.Kind.SCIM, org_mode=Source.OrgMode.FIXED, fixed_org=org,
        ))
        token = _new_token(source, actor)
        record_event(actor=actor, action="scim_token_created", target_type="source", target_id=source.pk,
                     target_label=source.name)
    return ProviderCredentials(source=source, token=token, base_url=base_url())


def provider_get(name: str) -> Source:
    """A SCIM provider by name (case-insensitive) or slug."""
    source = Source.objects.filter(Q(name__iexact=name) | Q(slug=name), kind=Source.Kind.SCIM).first()
    if source is None:
        raise NotFound("provider_not_found", f"No SCIM provider named {name!r}.")
    return source


def token_rotate(*, actor: Actor, source: Source, overlap: timedelta = DEFAULT_OVERLAP) -> str:
    """A new token; tokens issued before it stay valid for ``overlap`` (zero: revoked now)."""
    if source.kind != Source.Kind.SCIM:
        raise ValidationFailed("not_a_scim_provider", "Only SCIM providers have tokens.")
    # A token acts with every power of the provider (review F1a).
    check_may_administer_source(actor=actor, source=source, action="rotate the token of")
    now = timezone.now()
    with transaction.atomic():
        ScimToken.objects.filter(source=source).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now + overlap)) \
            .update(expires_at=now + overlap)
        token = _new_token(source, actor)
        record_event(actor=actor, action="scim_token_rotated", target_type="source", target_id=source.pk,
                     target_label=source.name, new={"overlap_seconds": int(overlap.total_seconds())})
    return token


def provider_set_enabled(*, actor: Actor, source: Source, enabled: bool) -> Source:
    """Enable or disable a provider: a disabled provider's requests get 401 (its tokens are kept)."""
    source.enabled = enabled
    return source_save(actor=actor, source=source)


def authenticate(token: str) -> Source | None:
    """The enabled SCIM provider a bearer token belongs to, or ``None`` (unknown, expired, disabled)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = hash_token(token)
    row = (ScimToken.objects.select_related("source").filter(token_hash=digest)
           .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())).first())
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    if not row.source.enabled or row.source.kind != Source.Kind.SCIM:
        return None
    return row.source
