"""Symmetric encryption of secrets at rest and in transit through the broker.

One Fernet key per purpose, derived from ``SECRET_KEY`` (and ``SECRET_KEY_FALLBACKS``, so a key
rotation that keeps the old key as a fallback can still decrypt). Deriving per purpose means a
value encrypted for one use (a TOTP secret) cannot be replayed as another (an upload password).
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings


def fernet_for(purpose: str) -> MultiFernet:
    """A ``MultiFernet`` that encrypts with the current key and decrypts with current or fallback keys."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([
        Fernet(base64.urlsafe_b64encode(hashlib.sha256(f"idm.{purpose}:{key}".encode()).digest()))
        for key in keys
    ])
