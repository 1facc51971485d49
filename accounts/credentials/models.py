"""Credential data that Django's ``User`` has no field for. Imported into ``accounts.models``.

* ``RequiredAction``: something the user must do at their next password sign-in (change the
  password, set up two-factor authentication), set by an admin or by ``create_first_admin``.
* ``RecoveryCode``: single-use two-factor recovery codes, stored as SHA-256 hashes.
* ``Invitation``: the current invitation of an invited user; its ``nonce`` is part of the link's
  token, so resending (a new nonce) kills the older links.
* ``SignInLock``: usernames locked by sign-in throttling, so the console can list and unlock them.
* ``SecurityStamp``: a random value that changes when the user's privilege rises; reset and
  invitation tokens cover it, so links issued before the rise stop working (review 3 H2).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class RequiredAction(models.Model):
    """One action a user must complete at their next password sign-in."""

    class Kind(models.TextChoices):
        CHANGE_PASSWORD = "change_password", "Change password"
        ENROL_MFA = "enrol_mfa", "Set up two-factor authentication"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="required_actions")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    set_by = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "kind"], name="required_action_once")]
        ordering = ["kind"]

    def __str__(self) -> str:
        return f"{self.kind} for {self.user_id}"


class RecoveryCode(models.Model):
    """A two-factor recovery code: SHA-256 of an 80-bit random code (too much entropy to guess offline)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recovery_codes")
    code_hash = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "code_hash"], name="recovery_code_unique")]

    def __str__(self) -> str:
        return f"recovery code of {self.user_id}{' (used)' if self.used_at else ''}"


class Invitation(models.Model):
    """The latest invitation sent (or copied) for an invited user."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="invitation")
    nonce = models.CharField(max_length=32)
    sent_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    sent_by = models.CharField(max_length=255, blank=True)
    emailed_to = models.CharField(max_length=254, blank=True)

    def __str__(self) -> str:
        return f"invitation of {self.user_id} until {self.expires_at:%Y-%m-%d %H:%M}"


class SignInLock(models.Model):
    """A username locked by sign-in throttling until ``locked_until`` (the counters live in the cache)."""

    username = models.CharField(max_length=150, unique=True)  # accounts.identity.validators.username_key
    locked_until = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.username} locked until {self.locked_until:%Y-%m-%d %H:%M}"


class SecurityStamp(models.Model):
    """The user's security stamp (ASP.NET Identity's name for the idea): part of every reset and
    invitation token (``tokens``), replaced when the user's privilege rises
    (``accounts.credentials.revocation``). No row: the empty stamp, so most users have none."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="security_stamp")
    value = models.CharField(max_length=32)
    changed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"security stamp of {self.user_id} ({self.changed_at:%Y-%m-%d %H:%M})"


__all__ = ["Invitation", "RecoveryCode", "RequiredAction", "SecurityStamp", "SignInLock"]
