"""The TOTP device of a user. Imported into ``accounts.models`` so the model belongs to ``accounts``.

The secret is stored encrypted (Fernet, key derived from ``SECRET_KEY``; ``SECRET_KEY_FALLBACKS``
still decrypt, so a key rotation does not lock everyone out). A device without ``confirmed_at`` is an
enrolment in progress: it protects nothing until the user has entered one code from it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from accounts.crypto import fernet_for


def _fernet():
    return fernet_for("mfa.totp_secret")


class TotpDevice(models.Model):
    """One authenticator app per user (RFC 6238, 160-bit secret)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="totp_device")
    encrypted_secret = models.TextField(editable=False)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # Highest time step accepted so far: a code of this step or an earlier one is refused (no replay).
    last_used_step = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "TOTP device"

    def __str__(self) -> str:
        return f"TOTP device of {self.user_id}{'' if self.confirmed_at else ' (unconfirmed)'}"

    @property
    def secret(self) -> str:
        """The base32 secret (decrypted)."""
        return _fernet().decrypt(self.encrypted_secret.encode()).decode()

    @secret.setter
    def secret(self, value: str) -> None:
        self.encrypted_secret = _fernet().encrypt(value.encode()).decode()

    @property
    def is_confirmed(self) -> bool:
        return self.confirmed_at is not None


__all__ = ["TotpDevice"]
