"""Bind passwords encrypted at rest (Fernet: AES-128-CBC + HMAC-SHA256, from ``cryptography``).

The key is derived from ``settings.IDM_DIRECTORY_SECRET_KEY`` when set, else from ``SECRET_KEY``
(HKDF-SHA256 with a purpose label, so the session signing key is never used as-is). Rotating the
Django secret key therefore needs the bind passwords to be entered again; set
``IDM_DIRECTORY_SECRET_KEY`` to keep them across such a rotation. Decrypted values are never logged.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from accounts.exceptions import IdentityError

_PURPOSE = b"idm directory bind password v1"


def _fernet() -> Fernet:
    secret = getattr(settings, "IDM_DIRECTORY_SECRET_KEY", "") or settings.SECRET_KEY
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(secret.encode("utf-8"))
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_secret(plain: str) -> str:
    """The password as a Fernet token (text), or "" for no password."""
    if not plain:
        return ""
    return _fernet().encrypt(plain.encode("utf-8")).decode("ascii")


def decrypt_secret(token: str) -> str:
    """The password back; a coded error when the key changed since it was stored."""
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise IdentityError(
            "bind_password_unreadable",
            "The stored bind password cannot be decrypted (the secret key changed). Enter it again.",
            field="bind_password",
        ) from None
