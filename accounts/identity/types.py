"""Typed values that front doors build and the identity service applies.

Front doors (console forms, bulk upload, SCIM, SAML, LDAP) translate their protocol data into an
``IdentityChange`` and hand it to ``accounts.identity.service``; they never write models themselves.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import models


class Source(models.TextChoices):
    """Where a change comes from; also which source owns a user."""

    LOCAL = "local", "Console"
    BULK = "bulk", "Bulk upload"
    SCIM = "scim", "SCIM provisioning"
    SAML = "saml", "SAML single sign-on"
    LDAP = "ldap", "Directory sync"
    SYSTEM = "system", "System"


class UserState(models.TextChoices):
    """Lifecycle state of a user (code42-features.md §1.6)."""

    ACTIVE = "active", "Active"
    INVITED = "invited", "Invited"
    BLOCKED = "blocked", "Blocked"
    DEACTIVATED = "deactivated", "Deactivated"


class AuthMethod(models.TextChoices):
    """An organization's authentication method."""

    LOCAL = "local", "Local (password)"
    SSO = "sso", "Single sign-on"


class Unset:
    """Marker for "this change does not touch the field" (``None`` is a real value for some fields)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = Unset()


class Mode(models.TextChoices):
    """Whether a change may create a user, update one, or both."""

    CREATE_OR_UPDATE = "upsert", "Create or update"
    CREATE = "create", "Create only"
    UPDATE = "update", "Update only"


@dataclass(frozen=True)
class ExternalLink:
    """An external identity to match on and/or to link: (source, provider, external_id)."""

    source: str
    provider: str
    external_id: str
    raw: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Actor:
    """Who makes a change, for policy and for the audit record.

    ``user`` is the console user (if any). Providers and sync jobs have a label and no user.
    ``global_admin`` short-circuits scope checks for system work (sync jobs, seeders).
    """

    label: str
    type: str = "user"
    user: Any = None
    source: str = Source.LOCAL
    provider: str = ""
    request_id: str = ""
    job_id: str = ""
    ip: str | None = None
    enforce_scope: bool = True

    @classmethod
    def system(cls, label: str = "system", *, job_id: str = "") -> Actor:
        """An actor for system work: no user, no scope limits."""
        return cls(label=label, type="system", source=Source.SYSTEM, job_id=job_id, enforce_scope=False)

    @property
    def console_user(self) -> Any:
        """The saved console user acting, for "who did this" columns; ``None`` for providers, sync
        jobs and setup commands (system actors)."""
        return self.user if getattr(self.user, "pk", None) else None

    @classmethod
    def for_user(cls, user: Any, *, source: str = Source.LOCAL, request: Any = None, job_id: str = "") -> Actor:
        """An actor for a console user, with request id and IP from ``request`` when given."""
        request_id = getattr(request, "request_id", "") if request is not None else ""
        ip = getattr(request, "client_ip", None) if request is not None else None
        return cls(
            label=user.get_username(), type="user", user=user, source=source,
            request_id=request_id, job_id=job_id, ip=ip,
        )

    @classmethod
    def provider_actor(cls, *, source: str, provider: str, label: str, job_id: str = "") -> Actor:
        """An actor for a provisioning provider or sync job: it acts only on users its source owns."""
        kind = "sync" if source == Source.LDAP else "provider"
        return cls(label=label, type=kind, source=source, provider=provider, job_id=job_id, enforce_scope=False)


@dataclass(frozen=True, slots=True)  # slots: a 100k-row upload holds 100k of these
class IdentityChange:
    """One change to one user. Fields left ``UNSET`` are not touched.

    Matching: ``user_id`` if given; else ``match_link`` (an external identity); else ``username``
    (case-insensitive) when the source's policy allows matching by username.

    Roles and groups: ``roles`` (a full set of role slugs) replaces the user's roles; ``roles_add`` /
    ``roles_remove`` edit them. A provider actor never removes a role that another grant (manual or
    another source's) still holds: it only ends its own grant (``grants_release``). Same for directory ``groups`` (group ids). ``link`` adds or refreshes
    an external identity. ``password`` is a raw password (validated and hashed in the service);
    ``password_hash`` an already-hashed one (bulk imports hash off the request path).
    """

    user_id: int | None = None
    username: Any = UNSET
    email: Any = UNSET
    first_name: Any = UNSET
    last_name: Any = UNSET
    notes: Any = UNSET
    password: Any = UNSET
    password_hash: Any = UNSET
    state: Any = UNSET
    org_id: Any = UNSET
    roles: Any = UNSET
    roles_add: frozenset[str] = frozenset()
    roles_remove: frozenset[str] = frozenset()
    # Provider actors only: roles whose grant by the actor's source ends while the role itself stays
    # (another grant row holds it); the writer deletes only that source's grant row.
    grants_release: frozenset[str] = frozenset()
    groups: Any = UNSET
    groups_add: frozenset[int] = frozenset()
    groups_remove: frozenset[int] = frozenset()
    match_link: ExternalLink | None = None
    link: ExternalLink | None = None
    # Adoption: the ``provisioning.Source`` id that takes the user over (with ``link``, its external
    # identity). Console and system actors only; never break-glass users, Customer Cloud Admins or
    # users another source owns (``accounts.identity.policy.check_adoption``).
    owner_source_id: Any = UNSET
    mode: str = Mode.CREATE_OR_UPDATE
    # Django admin access (is_staff + is_superuser). Only system actors (setup commands) may set it.
    django_admin: Any = UNSET
    # Opaque key a front door uses to relate results to its input (line number, SCIM id...).
    ref: Any = None


@dataclass(slots=True)
class ChangeResult:
    """What happened to one change: small values only, so a 100k-row run keeps little in memory.

    ``status``: "created", "updated", "unchanged" or "refused". A refused change carries ``error``
    (an ``IdentityError``) and wrote nothing. ``user_id`` is the user's id; ``user`` (the saved
    object) is filled only by ``apply_identity_change``, never in bulk results.
    """

    ref: Any
    status: str
    user_id: int | None = None
    changed_fields: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: Any = None
    user: Any = None

    @property
    def ok(self) -> bool:
        return self.status != "refused"


@dataclass
class BulkResult:
    """Per-item results of a bulk apply, in input order, with counts."""

    results: list[ChangeResult]

    def counts(self) -> dict[str, int]:
        out = {"created": 0, "updated": 0, "unchanged": 0, "refused": 0}
        for result in self.results:
            out[result.status] += 1
        return out


def new_job_id() -> str:
    """A short random id for a job (upload, sync run) to tie its audit events together."""
    return uuid.uuid4().hex[:16]
