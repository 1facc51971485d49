"""RFC 6238 TOTP (HMAC-SHA1, 6 digits, 30-second steps), the provisioning URI and its QR code.

Hand-written on ``hmac`` / ``struct`` / ``base64``: the algorithm is twenty lines and is checked
against the RFC's SHA1 test vectors (tests/accounts/test_mfa.py).
"""

from __future__ import annotations

import base64
import hmac
import secrets
import struct
import time
from urllib.parse import quote, urlencode

STEP = 30
DIGITS = 6
WINDOW = 1  # steps accepted either side of now (clock drift)
ISSUER = "idm"


def new_secret() -> str:
    """A random 160-bit secret, base32 without padding (32 characters)."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii")


def _key(secret: str) -> bytes:
    clean = secret.replace(" ", "").upper()
    return base64.b32decode(clean + "=" * (-len(clean) % 8))


def hotp(key: bytes, counter: int, digits: int = DIGITS) -> str:
    """RFC 4226 HOTP value of ``counter`` (dynamic truncation of HMAC-SHA1)."""
    mac = hmac.new(key, struct.pack(">Q", counter), "sha1").digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def step_at(at: float | None = None) -> int:
    """The time step (counter) of Unix time ``at`` (default: now)."""
    return int((time.time() if at is None else at) // STEP)


def totp(secret: str, at: float | None = None, digits: int = DIGITS) -> str:
    """The code of base32 ``secret`` at Unix time ``at`` (default: now)."""
    return hotp(_key(secret), step_at(at), digits)


def normalise_code(code: str | None) -> str | None:
    """``"123 456"`` -> ``"123456"``; ``None`` unless exactly six ASCII digits."""
    clean = (code or "").replace(" ", "").replace("-", "").strip()
    if len(clean) == DIGITS and clean.isascii() and clean.isdigit():
        return clean
    return None


def matching_step(secret: str, code: str | None, at: float | None = None, window: int = WINDOW) -> int | None:
    """The step whose code equals ``code`` within ±``window`` steps of ``at``, else ``None``.

    The caller refuses a step not later than the last one used (no replay within the window).
    """
    clean = normalise_code(code)
    if clean is None:
        return None
    key, now = _key(secret), step_at(at)
    found = None
    for step in range(now - window, now + window + 1):  # compare all, in constant time each
        if hmac.compare_digest(hotp(key, step), clean):
            found = step
    return found


def provisioning_uri(secret: str, username: str) -> str:
    """``otpauth://totp/idm:{username}?secret=...&issuer=idm`` for authenticator apps."""
    label = quote(f"{ISSUER}:{username}", safe=":@")
    return f"otpauth://totp/{label}?{urlencode({'secret': secret, 'issuer': ISSUER})}"


def qr_svg(uri: str) -> str:
    """The URI as an inline SVG QR code (segno, pure Python)."""
    import segno

    return segno.make(uri, error="m").svg_inline(scale=5, border=2, dark="#111", light="#fff")
