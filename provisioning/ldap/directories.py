"""Directories: create and change an LDAP / AD directory (a ``Source`` of kind ``ldap`` plus its
``Directory`` connection settings), and turn the stored settings into what the client and the
translator need. The console and ``manage.py directory`` call the same functions.

Every change is audited; the bind password is encrypted before it is stored, appears in no audit
value (only "(changed)") and is decrypted only to open a connection.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils.text import slugify

from accounts.exceptions import PolicyDenied, ValidationFailed
from accounts.identity import privilege
from accounts.identity.audit import record_event
from accounts.identity.types import Actor
from provisioning.dn import normalize_dn
from provisioning.ldap.client import DirectoryClient, DirectoryConnection, DirectoryError, TlsMode
from provisioning.ldap.secrets import decrypt_secret, encrypt_secret
from provisioning.ldap.translate import PRESETS, DirectoryPreset
from provisioning.models import Directory, Source
from provisioning.policy import check_may_administer_source, may_administer_source
from provisioning.services import _lock_source, source_save

# Preset fields an attribute map may override.
MAPPABLE = ("username", "email", "first_name", "last_name", "anchor", "group_name", "member")
_AUDITED = ("urls", "tls_mode", "ca_bundle", "verify_tls", "bind_dn", "base_dns", "user_filter", "group_filter",
            "page_size", "connect_timeout", "operation_timeout", "interval", "preset", "attribute_map",
            "deactivation_threshold_percent", "deactivation_threshold_min", "password_sign_in",
            "reconcile_every", "full_every")
# Where and how the bind password is sent: changing any of these needs the password entered again,
# so the stored one never goes to a server it was not saved for (review F3: repoint the URL, keep
# the password, press "Test connection" and a listener receives the simple bind in clear text).
PASSWORD_BOUND = ("urls", "bind_dn", "tls_mode", "ca_bundle", "verify_tls")


@dataclass(frozen=True)
class DirectorySettings:
    """What an admin enters for a directory (the password separately: it is never read back)."""

    urls: tuple[str, ...]
    base_dns: tuple[str, ...]
    preset: str = Directory.Preset.OPENLDAP
    bind_dn: str = ""
    tls_mode: str = Directory.TlsMode.NONE
    ca_bundle: str = ""
    verify_tls: bool = True
    user_filter: str = ""
    group_filter: str = ""
    page_size: int = 500
    connect_timeout: float = 5.0
    operation_timeout: float = 60.0
    interval: timedelta = timedelta(hours=12)
    attribute_map: dict[str, str] = field(default_factory=dict)
    deactivation_threshold_percent: int = 10
    deactivation_threshold_min: int = 50
    password_sign_in: bool = False
    # How often an incremental run also checks every anchor (deleted / moved-out users); 0: every run.
    reconcile_every: timedelta = timedelta(hours=1)
    # How often a run reads every entry (a full run, which also re-reads unchanged entries' groups and
    # finds deletions); 0: every run is full. Between full runs, runs are incremental.
    full_every: timedelta = timedelta(hours=24)


# The longest schedule a directory may have (a year and a day): timedelta and the database's duration
# columns overflow far above it, and a bigger number is a typo (review F8: never a 500).
MAX_SCHEDULE = timedelta(hours=24 * 366)


def _check_filter(value: str, field_name: str) -> None:
    if not value:
        return
    depth = 0
    for char in value:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            break
    if not value.startswith("(") or depth != 0:
        raise ValidationFailed("invalid_filter", "An LDAP filter is enclosed in balanced parentheses, e.g. "
                               "(objectClass=person).", field=field_name)


def verified_tls_on_every_url(urls, tls_mode: str, verify_tls: bool) -> bool:
    """Every server URL is reached over TLS with the certificate verified: all ``ldaps://``, or StartTLS
    on all plain ``ldap://`` URLs. A mix cannot be served by the sign-in backend: django-auth-ldap starts
    TLS per connection, whichever URL libldap picked. Required for directory password sign-in."""
    urls = [url.lower() for url in urls]
    if not verify_tls or tls_mode == Directory.TlsMode.NONE or not urls:
        return False
    return all(url.startswith("ldaps://") for url in urls) or (
        tls_mode == Directory.TlsMode.START_TLS and not any(url.startswith("ldaps://") for url in urls))


def validate_settings(data: DirectorySettings) -> DirectorySettings:
    """Check and normalise the settings; ``ValidationFailed`` names the field at fault."""
    urls = tuple(u.strip() for u in data.urls if u.strip())
    if not urls:
        raise ValidationFailed("url_required", "Give at least one server URL (ldap:// or ldaps://).", field="urls")
    for url in urls:
        if not url.lower().startswith(("ldap://", "ldaps://")):
            raise ValidationFailed("url_invalid", f"{url!r} is not an ldap:// or ldaps:// URL.", field="urls")
    if data.tls_mode not in Directory.TlsMode.values:
        raise ValidationFailed("tls_mode_unknown", f"Unknown TLS mode {data.tls_mode!r}.", field="tls_mode")
    if data.tls_mode == Directory.TlsMode.LDAPS and not all(u.lower().startswith("ldaps://") for u in urls):
        raise ValidationFailed("tls_mode_mismatch", "LDAPS needs ldaps:// URLs.", field="urls")
    base_dns = tuple(b.strip() for b in data.base_dns if b.strip())
    if not base_dns:
        raise ValidationFailed("base_dn_required", "Give the base DN to search, e.g. dc=example,dc=org.",
                               field="base_dns")
    for base in base_dns:
        if "=" not in base:
            raise ValidationFailed("base_dn_invalid", f"{base!r} is not a DN.", field="base_dns")
        normalize_dn(base)  # raises a coded MappingError on a malformed DN
    if data.preset not in PRESETS:
        raise ValidationFailed("preset_unknown", f"Unknown preset {data.preset!r}; choose one of "
                               f"{', '.join(sorted(PRESETS))}.", field="preset")
    _check_filter(data.user_filter, "user_filter")
    _check_filter(data.group_filter, "group_filter")
    if not 1 <= data.page_size <= 10000:
        raise ValidationFailed("page_size_invalid", "The page size is between 1 and 10000.", field="page_size")
    if data.connect_timeout <= 0 or data.operation_timeout <= 0:
        raise ValidationFailed("timeout_invalid", "Timeouts are positive numbers of seconds.", field="timeouts")
    if data.interval < timedelta(minutes=5):
        raise ValidationFailed("interval_too_short", "Sync at most every 5 minutes.", field="interval")
    if data.interval > MAX_SCHEDULE:
        raise ValidationFailed("interval_too_long", "Sync at least every 8784 hours (366 days).", field="interval")
    if not timedelta(0) <= data.reconcile_every <= MAX_SCHEDULE:
        raise ValidationFailed("reconcile_every_invalid", "Check for deleted users every 0 to 8784 hours.",
                               field="reconcile_every")
    if not timedelta(0) <= data.full_every <= MAX_SCHEDULE:
        raise ValidationFailed("full_every_invalid", "Read every entry every 0 to 8784 hours (0: every run).",
                               field="full_every")
    unknown = set(data.attribute_map) - set(MAPPABLE)
    if unknown:
        raise ValidationFailed("attribute_map_unknown", f"Cannot map {', '.join(sorted(unknown))}; mappable: "
                               f"{', '.join(MAPPABLE)}.", field="attribute_map")
    if data.deactivation_threshold_percent > 100:
        raise ValidationFailed("threshold_invalid", "The threshold is a percentage (0-100).",
                               field="deactivation_threshold_percent")
    if data.ca_bundle.strip() and not _is_pem_certificates(data.ca_bundle):
        raise ValidationFailed("ca_bundle_invalid", "The CA bundle is not a PEM certificate (-----BEGIN "
                               "CERTIFICATE----- ... -----END CERTIFICATE-----).", field="ca_bundle")
    if data.password_sign_in and not verified_tls_on_every_url(urls, data.tls_mode, data.verify_tls):
        # Sign-in sends the user's own password to the directory: never in clear text, never to a
        # server whose certificate was not checked.
        raise ValidationFailed("password_sign_in_needs_tls", "Sign-in with the directory password sends users' "
                               "passwords to the directory: choose LDAPS (ldaps:// URLs) or StartTLS (ldap:// "
                               "URLs) and keep certificate verification on.", field="password_sign_in")
    return dataclasses.replace(data, urls=urls, base_dns=base_dns)


def _is_pem_certificates(pem: str) -> bool:
    """Does ``pem`` hold one or more certificates OpenSSL can load (what libldap will read)?"""
    try:
        ssl.create_default_context().load_verify_locations(cadata=pem)
    except (ssl.SSLError, ValueError):
        return False
    return True


def check_password_sign_in_change(*, actor: Actor, directory: Directory | None, data: DirectorySettings) -> None:
    """Turning on directory password sign-in, or changing the connection (URLs, TLS, CA bundle, bind DN)
    of a directory that has it on, is a Customer Cloud Admin's decision (review N1): it makes an outside
    server authoritative for the passwords of every user the directory owns, and the CA bundle then
    decides which server that is. ``directory`` is the stored row (``None`` when creating)."""
    if not data.password_sign_in:
        return
    turned_on = directory is None or not directory.password_sign_in
    if not turned_on and not password_bound_changes(directory, data):
        return
    mine = privilege.powers_of_actor(actor)
    if mine.kind == privilege.SYSTEM or mine.cloud_admin:
        return
    raise PolicyDenied(
        "password_sign_in_needs_cloud_admin",
        "Only a Customer Cloud Admin may turn on sign-in with the directory password or change the connection "
        "of a directory that has it on: the directory then decides the passwords of every user it owns.",
        field="password_sign_in")


def _snapshot(directory: Directory) -> dict[str, Any]:
    out = {}
    for name in _AUDITED:
        value = getattr(directory, name)
        out[name] = int(value.total_seconds()) if isinstance(value, timedelta) else value
    out["ca_bundle"] = "(set)" if directory.ca_bundle else ""
    return out


def directory_create(*, actor: Actor, name: str, data: DirectorySettings, bind_password: str = "",
                     org=None, enabled: bool = True) -> Directory:
    """Create the source (kind ldap; new users go to ``org`` when given, else orgs are not managed)
    and its directory settings, audited."""
    data = validate_settings(data)
    check_password_sign_in_change(actor=actor, directory=None, data=data)
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("name_required", "Give the directory a name.", field="name")
    slug = slugify(name)[:60]
    if not slug:
        raise ValidationFailed("name_invalid", "The name needs at least one letter or digit.", field="name")
    if Source.objects.filter(name__iexact=name).exists() or Source.objects.filter(slug=slug).exists():
        raise ValidationFailed("name_taken", f"A source named {name!r} exists.", field="name")
    with transaction.atomic():
        source = Source(name=name, slug=slug, kind=Source.Kind.LDAP, enabled=enabled,
                        org_mode=Source.OrgMode.FIXED if org is not None else Source.OrgMode.UNMANAGED,
                        fixed_org=org)
        source_save(actor=actor, source=source)
        directory = Directory(source=source, **_fields(data))
        directory.bind_password_encrypted = encrypt_secret(bind_password)
        directory.connection_set_by = actor.console_user
        directory.save()
        record_event(actor=actor, action="directory_created", target_type="source", target_id=source.pk,
                     target_label=name, new={**_snapshot(directory),
                                             "bind_password": "(set)" if bind_password else ""})
    return directory


def _fields(data: DirectorySettings) -> dict[str, Any]:
    values = dataclasses.asdict(data)
    values["urls"], values["base_dns"] = list(data.urls), list(data.base_dns)
    return values


def password_bound_changes(directory: Directory, data: DirectorySettings) -> list[str]:
    """The ``PASSWORD_BOUND`` settings that ``data`` (validated) changes on ``directory``."""
    new = _fields(data)
    return [name for name in PASSWORD_BOUND if new[name] != getattr(directory, name)]


def check_connection_vouched(directory: Directory) -> None:
    """Raise ``DirectoryError("connection_unconfirmed")`` while the person who last saved the directory's
    settings may not administer its source (review 4: the IdP and SCIM credential cases, for
    directories). Whoever set the connection may control the server it reads, and the directory's
    data decides roles: a Cloud Admin adding an admin-granting rule, or an admin role becoming a
    default of its org, must not hand that power to a server a lesser admin pointed it at. An admin
    who holds the powers confirms the connection by saving the settings."""
    setter = directory.connection_set_by
    if setter is None or may_administer_source(Actor.for_user(setter), directory.source):
        return
    raise DirectoryError(
        "connection_unconfirmed",
        f"The connection of {directory.source.name} was last saved by {setter.get_username()}, who may not "
        "administer it now that it can grant more (its rules or its org's default roles): an admin holding "
        "those powers must open its settings and save them to confirm the server. Nothing was changed.")


def directory_update(*, actor: Actor, directory: Directory, data: DirectorySettings,
                     bind_password: str | None = None) -> Directory:
    """Change the settings; ``bind_password=None`` keeps the stored one. One audit event per change.

    Keeping a stored password is refused (``bind_password_required``) when the change touches the
    server URLs, bind DN or TLS settings (``PASSWORD_BOUND``). The connection acts with every power of
    the directory's source: only an actor who holds them all changes it (review F1a,
    ``provisioning.policy``)."""
    data = validate_settings(data)
    with transaction.atomic():
        # Lock, then read and judge (as source settings and rules are: ``provisioning.services``): a rule
        # or a change to the source saved meanwhile is seen by the checks, never raced past them.
        source = _lock_source(directory.source)
        directory.refresh_from_db()  # the stored settings, read after the lock (unsaved edits dropped)
        directory.source = source
        check_may_administer_source(actor=actor, source=source, action="change the connection of")
        check_password_sign_in_change(actor=actor, directory=directory, data=data)
        changed = password_bound_changes(directory, data)
        if bind_password is None and changed and directory.bind_password_encrypted:
            raise ValidationFailed(
                "bind_password_required",
                "Enter the bind password again: it is needed when the server URLs, bind DN or TLS settings change "
                f"(changed: {', '.join(changed)}).",
                field="bind_password",
            )
        before = _snapshot(directory)
        for name, value in _fields(data).items():
            setattr(directory, name, value)
        if bind_password is not None:
            directory.bind_password_encrypted = encrypt_secret(bind_password)
        # Saving, even unchanged, vouches for the connection: the actor may administer the source now.
        directory.connection_set_by = actor.console_user
        directory.save()
        after = _snapshot(directory)
        label = directory.source.name
        for name in _AUDITED:
            if before[name] != after[name]:
                record_event(actor=actor, action="directory_updated", target_type="source",
                             target_id=directory.source_id, target_label=label, field=name,
                             old=before[name], new=after[name])
        if bind_password is not None:
            record_event(actor=actor, action="directory_updated", target_type="source",
                         target_id=directory.source_id, target_label=label, field="bind_password",
                         old=None, new="(changed)")
    return directory


def preset_of(directory: Directory) -> DirectoryPreset:
    """The directory's preset with its attribute map and filters applied."""
    preset = PRESETS[directory.preset]
    overrides = {k: v for k, v in (directory.attribute_map or {}).items() if k in MAPPABLE and v}
    if directory.user_filter:
        overrides["user_filter"] = directory.user_filter
    if directory.group_filter:
        overrides["group_filter"] = directory.group_filter
    return dataclasses.replace(preset, **overrides)


@contextlib.contextmanager
def ca_bundle_file(directory: Directory) -> Iterator[str]:
    """The directory's CA bundle as a private temporary file while the block runs ("" when none):
    libldap reads CA certificates from a file only."""
    ca_path = ""
    try:
        if directory.ca_bundle:
            fd, ca_path = tempfile.mkstemp(prefix="idm-ca-", suffix=".pem")
            with os.fdopen(fd, "w") as handle:
                handle.write(directory.ca_bundle)
        yield ca_path
    finally:
        if ca_path:
            os.unlink(ca_path)


@contextlib.contextmanager
def open_client(directory: Directory, *, timeout_cap: float | None = None) -> Iterator[DirectoryClient]:
    """A bound client for the directory (the CA bundle written to a private temporary file).

    ``timeout_cap`` (seconds) lowers both of the directory's timeouts for an interactive caller, never
    raises them: "Test connection" runs in a web worker and must not wait the sync's 60 s."""
    connect_timeout, operation_timeout = directory.connect_timeout, directory.operation_timeout
    if timeout_cap is not None:
        connect_timeout, operation_timeout = min(connect_timeout, timeout_cap), min(operation_timeout, timeout_cap)
    with ca_bundle_file(directory) as ca_path:
        connection = DirectoryConnection(
            urls=tuple(directory.urls), bind_dn=directory.bind_dn,
            bind_password=decrypt_secret(directory.bind_password_encrypted),
            tls=TlsMode(directory.tls_mode), ca_file=ca_path, verify_tls=directory.verify_tls,
            connect_timeout=connect_timeout, operation_timeout=operation_timeout,
        )
        with DirectoryClient(connection) as client:
            yield client
