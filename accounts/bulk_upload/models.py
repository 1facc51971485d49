"""Bulk upload records: the upload (who, when, file, counts, progress, report) and the password
hashes waiting to be applied. Imported into ``accounts.models`` so the models belong to ``accounts``."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class BulkUpload(models.Model):
    """One uploaded file from preview to result report.

    ``source_file`` is a normalised copy of the upload *without* its password column (a leading
    ``line`` column keeps the original line numbers); ``report`` is the result CSV. The id is the
    ``job_id`` of every audit event the upload writes.
    """

    class Status(models.TextChoices):
        INVALID = "invalid", "Refused (file error)"
        PREVIEW = "preview", "Validated, waiting for confirmation"
        QUEUED = "queued", "Queued"
        HASHING = "hashing", "Hashing passwords"
        APPLYING = "applying", "Applying"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class ApplyMode(models.TextChoices):
        ALL_VALID = "all_valid", "Apply all valid rows"
        NO_ERRORS = "no_errors", "Apply only if there are no errors"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=255)
    # Who confirmed the apply: its changes run with their rights and are audited with them as actor.
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    confirmed_by_label = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    file_name = models.CharField(max_length=255)
    file_size = models.BigIntegerField(default=0)
    operation = models.CharField(max_length=20, default="upsert")
    default_org = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    delimiter = models.CharField(max_length=5, blank=True)
    columns = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PREVIEW)
    apply_mode = models.CharField(max_length=10, choices=ApplyMode.choices, blank=True)
    message = models.TextField(blank=True, help_text="File-level error or failure reason.")

    # Preview (dry run): counts plus per-line outcomes, errors and diffs (see validate.Preview.as_json).
    preview = models.JSONField(default=dict, blank=True)
    rows_total = models.PositiveIntegerField(default=0)

    # Progress of the background apply, polled by the console.
    hash_total = models.PositiveIntegerField(default=0)
    hash_done = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    apply_started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # Result counts.
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    unchanged_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)

    source_file = models.FileField(upload_to="bulk/%Y/%m/", blank=True)
    report = models.FileField(upload_to="bulk/%Y/%m/", blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.get_status_display()})"

    @property
    def job_id(self) -> str:
        return str(self.id)

    @property
    def is_running(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.HASHING, self.Status.APPLYING)


class BulkUploadSecret(models.Model):
    """A password row of an upload: its hash once a hashing task has made it. Never plaintext.

    Deleted when the upload is applied or cancelled.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for a hashing task"
        HASHED = "hashed", "Hashed"
        SAME = "same", "Same as the current password"
        INVALID = "invalid", "Refused by the password rules"

    upload = models.ForeignKey(BulkUpload, on_delete=models.CASCADE, related_name="secrets")
    line = models.PositiveIntegerField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    password_hash = models.CharField(max_length=256, blank=True)
    message = models.CharField(max_length=500, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["upload", "line"], name="bulk_secret_line_unique")]

    def __str__(self) -> str:
        return f"line {self.line}: {self.state}"


__all__ = ["BulkUpload", "BulkUploadSecret"]
