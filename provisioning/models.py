"""Provisioning data model: the sources that own users, their mapping rules, where grants came from,
and a journal of every provisioning run.

* ``Source``: one SCIM provider or one LDAP directory (issue 8 "Sources"); protocol settings come with
  their own issues and live in ``settings`` until they get columns.
* ``MappingRule``: one ordered, declarative rule of a source (org / role / active); evaluated only by
  ``provisioning.rules`` (the pure evaluator) after ``MappingRule.to_rule()``.
* ``RoleGrant``: why a user holds a role: granted by a source's rules (``source`` set) or by hand
  (``source`` NULL = manual). The role's ``auth.Group`` membership stays the thing ``has_perm()``
  reads; a membership is kept while at least one grant row for it remains.
* ``OrgPlacement``: who put a user in their current org (a source, or an admin), so "later moves by
  an admin stick" can be decided.
* ``UserBlock``: who blocked a user and why, and when a source's block turns into a deactivation.
* ``ProvisioningRun`` + ``JournalEntry``: every sync, SCIM request, rules re-application or bulk
  upload, with its field-level changes (also for dry runs, which write only the journal).

Nothing here writes identities: user, role and group changes go through ``accounts.identity``.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models

from provisioning import rules as rules_mod

DEFAULT_GRACE_PERIOD = timedelta(minutes=15)


def new_run_id() -> str:
    """A random run id; audit events carry it as ``job_id`` so each event links to its run."""
    return uuid.uuid4().hex


class Source(models.Model):
    """A provisioning source: a SCIM provider or an LDAP/AD directory that owns users and groups.

    ``slug`` is the stable key other tables use as their free-text ``provider`` (``ExternalIdentity``,
    ``AuditEvent``); the real reference is the ``owner_source`` foreign key on profiles and groups.
    """

    class Kind(models.TextChoices):
        SCIM = "scim", "SCIM provider"
        LDAP = "ldap", "LDAP / AD directory"

    class AdoptBy(models.TextChoices):
        USERNAME = "username", "Username"
        EMAIL = "email", "Email address"

    class OrgMode(models.TextChoices):
        FIXED = rules_mod.OrgMode.FIXED.value, "All new users into one organization"
        ATTRIBUTE = rules_mod.OrgMode.ATTRIBUTE.value, "Organization named by an attribute"
        RULES = rules_mod.OrgMode.RULES.value, "Ordered rules with a fallback"
        UNMANAGED = rules_mod.OrgMode.UNMANAGED.value, "Don't manage organizations"

    # Org modes in which the source's rules decide the org of its users (it owns the org field);
    # in "fixed" and "unmanaged" mode an admin may move the source's users and the move sticks.
    ORG_MAPPING_MODES = (OrgMode.ATTRIBUTE, OrgMode.RULES)

    slug = models.SlugField(max_length=60, unique=True)
    name = models.CharField("display name", max_length=120, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    grace_period = models.DurationField(
        default=DEFAULT_GRACE_PERIOD,
        help_text="Time between blocking a user the source calls inactive or gone and deactivating them.",
    )
    adoption_enabled = models.BooleanField(
        default=False, help_text="Take over existing users that match (never break-glass users or Cloud Admins)."
    )
    adopt_by = models.CharField(max_length=10, choices=AdoptBy.choices, default=AdoptBy.USERNAME)

    org_mode = models.CharField(max_length=12, choices=OrgMode.choices, default=OrgMode.FIXED)
    fixed_org = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="Fixed mode: where new users go.",
    )
    org_attribute = models.CharField(max_length=120, blank=True, help_text="Attribute mode: the attribute naming the org.")
    org_create_under = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="Attribute mode: create orgs that do not exist under this parent (empty: never create).",
    )
    fallback_org = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="Attribute and rules modes: the org when nothing else names one.",
    )
    # Protocol settings (SCIM token hashes, LDAP URLs...) until their issues give them columns.
    settings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def org_policy(self) -> rules_mod.OrgPolicy:
        """The source's org settings as the evaluator's frozen value."""
        return rules_mod.OrgPolicy(
            mode=rules_mod.OrgMode(self.org_mode),
            fixed_org_id=self.fixed_org_id,
            attribute=self.org_attribute,
            create_under_id=self.org_create_under_id,
            fallback_org_id=self.fallback_org_id,
        )

    def rule_set(self) -> tuple[rules_mod.Rule, ...]:
        """The source's rules, in order, as frozen values (one query)."""
        return tuple(r.to_rule() for r in self.rules.prefetch_related("roles").order_by("kind", "position", "pk"))


class MappingRule(models.Model):
    """One ordered rule of a source: "if <condition> then <org | roles | inactive>".

    Validated by ``provisioning.rules.validate_rule`` before saving (see ``provisioning.services``).
    ``saved_by_cloud_admin`` is set when a Customer Cloud Admin last saved the rule: only such rules
    may grant admin roles, and no rule ever grants Customer Cloud Admin.
    """

    class Kind(models.TextChoices):
        ORG = rules_mod.RuleKind.ORG.value, "Organization"
        ROLE = rules_mod.RuleKind.ROLE.value, "Roles"
        ACTIVE = rules_mod.RuleKind.ACTIVE.value, "Inactive when"

    class Condition(models.TextChoices):
        MEMBER_OF_GROUP = rules_mod.ConditionKind.MEMBER_OF_GROUP.value, "Member of group"
        ATTRIBUTE_EQUALS = rules_mod.ConditionKind.ATTRIBUTE_EQUALS.value, "Attribute equals"
        ATTRIBUTE_MATCHES = rules_mod.ConditionKind.ATTRIBUTE_MATCHES.value, "Attribute matches (regex)"
        DN_UNDER = rules_mod.ConditionKind.DN_UNDER.value, "DN under"

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="rules")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    position = models.PositiveIntegerField(default=0)
    condition = models.CharField(max_length=20, choices=Condition.choices)
    attribute = models.CharField(max_length=120, blank=True)
    value = models.CharField(max_length=1000)
    target_org = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    roles = models.ManyToManyField("accounts.Role", blank=True, related_name="+")
    saved_by_cloud_admin = models.BooleanField(default=False, editable=False)
    saved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    saved_by_label = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["source", "kind", "position", "pk"]
        indexes = [models.Index(fields=["source", "kind", "position"])]

    def __str__(self) -> str:
        return f"{self.source} {self.kind} #{self.position}"

    def to_rule(self) -> rules_mod.Rule:
        """This row as the evaluator's frozen ``Rule`` (``roles`` should be prefetched)."""
        return rules_mod.Rule(
            kind=rules_mod.RuleKind(self.kind),
            condition=rules_mod.Condition(
                kind=rules_mod.ConditionKind(self.condition), attribute=self.attribute, value=self.value
            ),
            position=self.position,
            org_id=self.target_org_id,
            roles=frozenset(r.slug for r in self.roles.all()),
            saved_by_cloud_admin=self.saved_by_cloud_admin,
            rule_id=self.pk,
        )

    def snapshot(self) -> dict:
        """Plain values for the audit log's old/new columns."""
        return {
            "kind": self.kind, "position": self.position, "condition": self.condition,
            "attribute": self.attribute, "value": self.value, "target_org": self.target_org_id,
            "roles": sorted(r.slug for r in self.roles.all()) if self.pk else [],
            "saved_by_cloud_admin": self.saved_by_cloud_admin,
        }


class RoleGrant(models.Model):
    """Why a user holds a role. ``source`` NULL means granted by hand (manual).

    The role's ``auth.Group`` membership is what ``has_perm()`` and ``Access`` read; grant rows say who
    put it there. A source's run deletes only its own rows, and the membership goes only when no row
    remains, so a manual grant survives a source that stops granting the same role.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="role_grants")
    role = models.ForeignKey("accounts.Role", on_delete=models.CASCADE, related_name="grants")
    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.CASCADE, related_name="role_grants")
    granted_at = models.DateTimeField(auto_now_add=True)
    granted_by_label = models.CharField(max_length=255, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "role", "source"], condition=models.Q(source__isnull=False),
                name="role_grant_unique_per_source",
            ),
            models.UniqueConstraint(
                fields=["user", "role"], condition=models.Q(source__isnull=True), name="role_grant_unique_manual"
            ),
        ]
        indexes = [models.Index(fields=["source", "role"])]

    def __str__(self) -> str:
        return f"{self.role_id} of {self.user_id} from {self.source_id or 'manual'}"

    @property
    def is_manual(self) -> bool:
        return self.source_id is None


class OrgPlacement(models.Model):
    """Who placed a user in their current org: a source's rules (``source`` set) or an admin (NULL).

    In the fixed-org mode a source sets the org only for users it creates; an admin's later move
    (``source`` NULL) is never undone by the source.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="org_placement")
    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    placed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"org of {self.user_id} from {self.source_id or 'manual'}"


class UserBlock(models.Model):
    """The reason a user is blocked, and when a source's block becomes a deactivation.

    An admin block (``source`` NULL) is never lifted by a source saying "active"; a source block is
    lifted by that source within the grace period. ``deactivate_after`` is read by the beat sweep
    (``provisioning.tasks.deactivate_due``), so nothing is held in a worker's memory.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="block")
    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    blocked_by_label = models.CharField(max_length=255)
    reason = models.CharField(max_length=255, blank=True)
    blocked_at = models.DateTimeField(auto_now_add=True)
    deactivate_after = models.DateTimeField(null=True, blank=True, db_index=True)

    def __str__(self) -> str:
        return f"block of {self.user_id} by {self.blocked_by_label}"


class ProvisioningRun(models.Model):
    """One provisioning run or request, the unit a journal belongs to."""

    class Kind(models.TextChoices):
        SYNC = "sync", "Directory sync"
        SCIM_REQUEST = "scim_request", "SCIM request"
        RULES_REAPPLY = "rules_reapply", "Rules re-application"
        BULK_UPLOAD = "bulk_upload", "Bulk upload"
        ADOPTION = "adoption", "Adoption"
        LIFECYCLE = "lifecycle", "Deactivation sweep"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        # A directory sync that applied everything except deactivations above its threshold.
        HELD = "held", "Held for review"

    # 32 hex digits, or a bulk upload's id (36 characters with dashes), which its audit events carry.
    run_id = models.CharField(max_length=36, unique=True, default=new_run_id)
    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    counts = models.JSONField(default=dict, blank=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    # A directory sync's live progress (provisioning.ldap.progress): what it is doing and how many
    # entries it has read so far; progress_done counts the entries it handed to the identity service.
    progress_phase = models.CharField(max_length=32, blank=True)
    progress_read = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    started_by_label = models.CharField(max_length=255, blank=True)
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.run_id[:8]}"


class JournalEntry(models.Model):
    """One field or membership change of one user in a run (planned, applied or refused)."""

    class Result(models.TextChoices):
        APPLIED = "applied", "Applied"
        PLANNED = "planned", "Would apply (dry run)"
        REFUSED = "refused", "Refused"

    run = models.ForeignKey(ProvisioningRun, on_delete=models.CASCADE, related_name="entries")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    user_label = models.CharField(max_length=255, blank=True)
    subject = models.CharField(max_length=64, help_text="A field name, 'roles', 'org', 'state' or 'membership'.")
    old_value = models.JSONField(null=True, blank=True)
    new_value = models.JSONField(null=True, blank=True)
    result = models.CharField(max_length=10, choices=Result.choices)
    code = models.CharField(max_length=64, blank=True)
    message = models.TextField(blank=True)
    ref = models.CharField(max_length=255, blank=True, help_text="The front door's reference: DN, SCIM id, line.")

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["run", "result"]), models.Index(fields=["run", "subject"])]
        verbose_name_plural = "journal entries"

    def __str__(self) -> str:
        return f"{self.run_id} {self.user_label} {self.subject}"


class Directory(models.Model):
    """How to reach and read one LDAP / AD directory: the connection settings of a ``Source`` of kind
    ``ldap`` (``Source.enabled`` is its on/off switch).

    The bind password is stored encrypted (``provisioning.ldap.secrets``) and never shown again.
    ``lock_owner`` / ``lock_expires_at`` make one sync run per directory at a time across workers: a run
    takes the lock with one conditional UPDATE and extends it (heartbeat) while it works, so a crashed
    worker's lock simply expires.
    """

    class TlsMode(models.TextChoices):
        LDAPS = "ldaps", "LDAPS (ldaps:// URLs)"
        START_TLS = "starttls", "StartTLS"
        NONE = "none", "None (plain LDAP)"

    class Preset(models.TextChoices):
        ACTIVE_DIRECTORY = "active-directory", "Active Directory"
        OPENLDAP = "openldap", "OpenLDAP"
        FREEIPA = "freeipa", "FreeIPA"

    source = models.OneToOneField(Source, on_delete=models.CASCADE, related_name="directory")
    urls = models.JSONField(default=list, help_text="Server URLs, tried in order.")
    tls_mode = models.CharField(max_length=10, choices=TlsMode.choices, default=TlsMode.NONE)
    ca_bundle = models.TextField(blank=True, help_text="PEM certificates of the CA(s) that sign the server's certificate.")
    verify_tls = models.BooleanField(default=True)
    bind_dn = models.CharField(max_length=500, blank=True)
    bind_password_encrypted = models.TextField(blank=True, editable=False)
    # The console user who last saved the settings (NULL: a setup command, or saved before setters
    # were kept). Whoever controls the server acts with the directory's powers, so a run refuses to
    # sync while this person may not administer the source (``directories.check_connection_vouched``).
    connection_set_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                          on_delete=models.SET_NULL, related_name="+", editable=False)
    base_dns = models.JSONField(default=list)
    user_filter = models.CharField(max_length=1000, blank=True, help_text="Empty: the preset's filter.")
    group_filter = models.CharField(max_length=1000, blank=True, help_text="Empty: the preset's filter.")
    page_size = models.PositiveIntegerField(default=500)
    connect_timeout = models.FloatField(default=5.0)
    operation_timeout = models.FloatField(default=60.0)
    interval = models.DurationField(default=timedelta(hours=12))
    preset = models.CharField(max_length=20, choices=Preset.choices, default=Preset.OPENLDAP)
    attribute_map = models.JSONField(default=dict, blank=True,
                                     help_text="Overrides of the preset's attribute names (username, email, anchor...).")
    deactivation_threshold_percent = models.PositiveIntegerField(default=10)
    deactivation_threshold_min = models.PositiveIntegerField(default=50)
    # Users this directory owns may sign in to the console with their directory password, checked by a
    # live bind (provisioning.ldap.backends.IdmLDAPBackend); the password is never stored. Needs TLS
    # with certificate verification (directories.validate_settings).
    password_sign_in = models.BooleanField(
        default=False, help_text="Users this directory manages may sign in with their directory password.")
    last_run_started_at = models.DateTimeField(null=True, blank=True)
    # The rules, org and search settings the last run applied (provisioning.ldap.sync.config_digest):
    # while they are unchanged, unchanged entries are skipped and runs may be incremental.
    applied_config_digest = models.CharField(max_length=64, blank=True, editable=False)
    # Incremental runs (provisioning.ldap.incremental): where the last run's reading ended, and when the
    # last full run (which also finds deleted entries) finished reading.
    high_water = models.CharField(max_length=64, blank=True, editable=False)
    last_full_at = models.DateTimeField(null=True, blank=True, editable=False)
    full_every = models.DurationField(default=timedelta(hours=24),
                                      help_text="How often a run reads every entry (and finds deletions).")
    # Between full runs, an incremental run also reads every user's anchor (and nothing else) when this
    # much time has passed, so deleted and moved-out entries are blocked within it (issue 10).
    last_reconciled_at = models.DateTimeField(null=True, blank=True, editable=False)
    reconcile_every = models.DurationField(
        default=timedelta(hours=1),
        help_text="How often an incremental run checks every anchor (finds deleted or moved-out users).")
    lock_owner = models.CharField(max_length=32, blank=True, editable=False)
    lock_expires_at = models.DateTimeField(null=True, blank=True, editable=False)

    def __str__(self) -> str:
        return self.source.name


# SCIM protocol tables (provider tokens, pushed resources, request log); defined beside the SCIM code.
from provisioning.scim.models import ScimBasicCredential, ScimRequest, ScimResource, ScimToken  # noqa: E402, F401
