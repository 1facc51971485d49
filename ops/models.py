"""Operations records: the last run of each scheduled job and each backup, read by /readyz and the dashboard."""

from __future__ import annotations

from django.db import models


class JobRun(models.Model):
    """The last run of one Celery task by name (one row per task, updated by ``ops.signals``)."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        OK = "ok", "Succeeded"
        FAILED = "failed", "Failed"

    task = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)  # exception class and message, never arguments

    def __str__(self) -> str:
        return f"{self.task}: {self.status}"


class BackupRecord(models.Model):
    """One backup attempt: file, size, checksum, result (the console and /readyz read the newest)."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    path = models.CharField(max_length=500, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    error = models.CharField(max_length=500, blank=True)
    trigger = models.CharField(max_length=20, default="schedule")  # schedule | command

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"backup {self.created_at:%Y-%m-%d %H:%M} {'ok' if self.ok else 'failed'}"


class OutboxMessage(models.Model):
    """An email idm would have sent, kept because no mail server is configured (``ops.mail``).

    Any feature's mail lands here (role-grant alerts, password resets, invitations), so a new install
    can see it in the console. It may hold set-password links: only Customer Cloud Admins see the page,
    and messages older than IDM_OUTBOX_DAYS are deleted by the audit purge task."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    from_email = models.CharField(max_length=255, blank=True)
    to = models.JSONField(default=list)
    cc = models.JSONField(default=list, blank=True)
    bcc = models.JSONField(default=list, blank=True)
    subject = models.CharField(max_length=998)
    body = models.TextField(blank=True)
    html_body = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {', '.join(self.to)}: {self.subject}"


class DailyCount(models.Model):
    """A finished day's count for a dashboard series (``ops.dashboard``), computed once from the audit log.

    A row with an empty ``key`` marks the day as counted, so days without events are not counted again."""

    day = models.DateField()
    series = models.CharField(max_length=20)
    key = models.CharField(max_length=40, blank=True)
    n = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["series", "day", "key"], name="ops_dailycount_unique")]

    def __str__(self) -> str:
        return f"{self.series} {self.day} {self.key}: {self.n}"
