"""The local directory's data model, on Django's own ``auth.User`` and ``auth.Group``.

* ``Organization``: a tree; each user belongs to exactly one. Settings are inherited from the parent
  unless the org overrides them (``None`` / ``inherit_*`` means "inherit").
* ``Role``: a named permission set backed by one ``auth.Group`` so ``user.has_perm()`` works.
* ``DirectoryGroup``: a group pushed by SCIM or read from LDAP; also an ``auth.Group``, kept apart from roles.
* ``UserProfile``: org, lifecycle state and owning source of a ``User``.
* ``ExternalIdentity``: link (source, provider, external id) -> user. Never the username.
* ``AuditEvent``: append-only record of every change.

Nothing here writes identities: all changes go through ``accounts.identity.service``.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MinLengthValidator
from django.db import models
from django.db.models.functions import Lower

from accounts.identity.types import AuthMethod, Source, UserState


class OrganizationQuerySet(models.QuerySet):
    def subtree(self, org: Organization) -> OrganizationQuerySet:
        """The org and all of its descendants (materialised path prefix)."""
        return self.filter(path__startswith=org.path)


class Organization(models.Model):
    """A node of the organization tree.

    ``path`` is a materialised path ("/1/4/9/") kept by ``accounts.identity.orgs``; it makes
    "this org and its sub-orgs" one indexed prefix query, which the users list needs at 100k users.
    """

    name = models.CharField(max_length=220, validators=[MinLengthValidator(3)])
    parent = models.ForeignKey("self", null=True, blank=True, related_name="children", on_delete=models.PROTECT)
    path = models.CharField(max_length=1000, db_index=True, editable=False, default="")
    depth = models.PositiveIntegerField(default=0, editable=False)
    external_ref = models.CharField("external reference", max_length=200, blank=True)
    notes = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)

    # Inheritable settings: None means "inherit from parent" (the root falls back to defaults).
    auth_method = models.CharField(  # noqa: DJ001 - NULL means "inherit", distinct from any method
        max_length=10, choices=AuthMethod.choices, null=True, blank=True
    )
    auth_provider = models.ForeignKey(
        "sso.IdentityProvider", null=True, blank=True, related_name="organizations", on_delete=models.PROTECT
    )
    two_factor_required = models.BooleanField(null=True, blank=True)
    inherit_default_roles = models.BooleanField(default=True)
    default_roles = models.ManyToManyField("accounts.Role", blank=True, related_name="default_for_orgs")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        ordering = ["path"]
        constraints = [
            models.UniqueConstraint(Lower("name"), "parent", name="org_name_unique_among_siblings"),
            models.UniqueConstraint(
                Lower("name"), condition=models.Q(parent__isnull=True), name="org_name_unique_at_root"
            ),
        ]
        permissions = [
            # The permission catalogue roles are built from (see accounts/roles.py).
            ("console_access", "Can sign in to the console"),
            ("desktop_access", "Can sign in to the desktop app"),
            ("view_directory", "Can view users and organizations"),
            ("manage_users", "Can create, edit, block, deactivate and move users"),
            ("modify_user_profile", "Can edit user profile fields"),
            ("assign_roles", "Can assign roles to users"),
            ("manage_orgs", "Can create, edit, move and deactivate organizations"),
            ("reset_passwords", "Can send password resets"),
            ("view_audit_log", "Can view and export the audit log"),
            ("manage_identity", "Can configure identity providers and provisioning"),
            ("manage_mfa", "Can manage multi-factor authentication"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.name != self.name.strip():
            raise ValidationError({"name": ValidationError("Remove leading or trailing spaces.", code="spaces")})

    def ancestors(self) -> list[Organization]:
        """Ancestors from the root down, excluding self (one query)."""
        ids = [int(part) for part in self.path.strip("/").split("/") if part][:-1]
        by_id = Organization.objects.in_bulk(ids)
        return [by_id[i] for i in ids if i in by_id]

    def is_descendant_of(self, other: Organization) -> bool:
        """True when self is ``other`` or lies below it."""
        return self.path.startswith(other.path)

    def full_name(self) -> str:
        """Path of names from the root, e.g. "Acme / Engineering / Platform"."""
        return " / ".join([o.name for o in self.ancestors()] + [self.name])


class Role(models.Model):
    """A named set of permissions, backed by a Django group (``role.group``).

    ``scope`` says where the permissions apply: everywhere, or in the holder's own org subtree.
    """

    class Scope(models.TextChoices):
        GLOBAL = "global", "All organizations"
        ORG = "org", "Own organization and sub-organizations"

    slug = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.GLOBAL)
    is_admin_role = models.BooleanField(default=False, help_text="Assignment notifies all Customer Cloud Admins.")
    builtin = models.BooleanField(default=False)
    group = models.OneToOneField(Group, on_delete=models.PROTECT, related_name="role")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DirectoryGroup(models.Model):
    """A group from a directory source (SCIM push or LDAP sync), stored as a Django group.

    Kept apart from role groups: a directory group grants nothing by itself; mapping rules
    turn membership into orgs and roles.
    """

    group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="directory_group")
    display_name = models.CharField(max_length=255)
    source = models.CharField(max_length=10, choices=Source.choices)
    provider = models.CharField(max_length=100, blank=True)
    external_id = models.CharField(max_length=255, blank=True)
    # The provisioning source that owns the group (a real reference; ``source``/``provider`` stay as
    # the protocol keys). PROTECT: a source is released from its groups before it is deleted.
    owner_source = models.ForeignKey(
        "provisioning.Source", null=True, blank=True, on_delete=models.PROTECT, related_name="groups"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "provider", "external_id"],
                condition=~models.Q(external_id=""),
                name="directory_group_external_id_unique",
            )
        ]

    def __str__(self) -> str:
        return self.display_name


class UserProfile(models.Model):
    """Directory data of a ``User`` that Django's model has no field for."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="profiles")
    state = models.CharField(max_length=12, choices=UserState.choices, default=UserState.ACTIVE, db_index=True)
    blocked_at = models.DateTimeField(null=True, blank=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(blank=True)
    # Which source owns (manages) the user: local, or a SCIM provider / LDAP directory.
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.LOCAL, db_index=True)
    source_provider = models.CharField(max_length=100, blank=True)
    # The provisioning source that owns the user (NULL: local). Replaces reading ``source_provider``
    # as a key; see provisioning/models.py and migration 0005_prov_owner_source.
    owner_source = models.ForeignKey(
        "provisioning.Source", null=True, blank=True, on_delete=models.PROTECT, related_name="profiles"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["org", "state"])]

    def __str__(self) -> str:
        return f"profile of {self.user_id}"


class ExternalIdentity(models.Model):
    """A link from an external id at a source to a user. Unique per (source, provider)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities")
    source = models.CharField(max_length=10, choices=Source.choices)
    provider = models.CharField(max_length=100, blank=True)
    external_id = models.CharField(max_length=512)
    raw = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "provider", "external_id"], name="external_identity_unique"),
            models.UniqueConstraint(fields=["user", "source", "provider"], name="external_identity_one_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.provider}:{self.external_id}"


class PasswordHistory(models.Model):
    """Hashes of a user's previous passwords, for the "never reuse passwords" rule."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="password_history")
    password = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"password of {self.user_id} set {self.created_at:%Y-%m-%d}"


class AppendOnlyQuerySet(models.QuerySet):
    """Refuses bulk updates and deletes: audit events are never changed after the fact."""

    def update(self, **kwargs):  # noqa: D401
        raise PermissionError("audit events are append-only")

    def delete(self):
        raise PermissionError("audit events are append-only")


class AuditEvent(models.Model):
    """One recorded change or security event. Written only by ``accounts.identity.audit``."""

    class ActorType(models.TextChoices):
        USER = "user", "Console user"
        PROVIDER = "provider", "Provisioning provider"
        SYNC = "sync", "Sync job"
        SYSTEM = "system", "System"
        ANONYMOUS = "anonymous", "Anonymous"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=255)
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=32, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=255, blank=True)
    field = models.CharField(max_length=64, blank=True)
    old_value = models.JSONField(null=True, blank=True)
    new_value = models.JSONField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.LOCAL)
    request_id = models.CharField(max_length=64, blank=True)
    job_id = models.CharField(max_length=64, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    message = models.TextField(blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["target_type", "target_id"]),
            models.Index(fields=["actor_label"]),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.target_label}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise PermissionError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("audit events are append-only")
from accounts.bulk_upload.models import *  # noqa: E402,F401,F403
from accounts.credentials.models import *  # noqa: E402,F401,F403
from accounts.mfa.models import *  # noqa: E402,F401,F403
from accounts.sessions import UserSession  # noqa: E402,F401  (model defined beside its service)
