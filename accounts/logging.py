"""Logging filter that keeps secrets out of logs, and the redaction helpers it shares with the
gunicorn access log (``idm.gunicorn_logging``) and the SCIM request log."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote, unquote_plus

_PATTERNS = [
    (re.compile(r"(?i)(Bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[redacted]"),
    (re.compile(r"(?i)(password|passwd|secret|token|authorization|SAMLResponse|csrfmiddlewaretoken)"
                r"(['\"]?\s*[:=]\s*['\"]?)([^\s'\",&]+)"), r"\1\2[redacted]"),
]


# The token of a set-password link in a path (review 3 L1): /sign-in/reset/<uid>/<token>/ and
# /invitation/<uid>/<token>/. The form's own URL (token "set-password") says nothing and stays. Django's
# route takes any characters but "/" for uid and token, so the pattern does too (fourth review Info 1:
# "/sign-in/reset/O%51/<token>/" is the same link as "/sign-in/reset/OQ/<token>/").
_SEGMENT = r"[^/\s?#\"'<>]+"
_LINK_TOKEN = re.compile(rf"(/(?:sign-in/reset|invitation)/{_SEGMENT}/)(?!set-password/){_SEGMENT}")
# The same link in a decoded path (every character but "/" belongs to a segment there).
_DECODED_LINK_TOKEN = re.compile(r"(/(?:sign-in/reset|invitation)/[^/]+/)(?!set-password/)[^/]+")
# A URL-like run holding a percent escape: the prefix, uid or token may be encoded (Django decodes the
# path before routing, gunicorn's PATH_INFO too), so such a run is matched in its decoded form.
_ENCODED_RUN = re.compile(r"[^\s\"'<>]*%[0-9A-Fa-f]{2}[^\s\"'<>]*")


def _fully_decoded(text: str) -> str:
    """``text`` percent-decoded until nothing changes (a few rounds: double encoding is decoded too)."""
    for _ in range(5):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return text


def _redact_encoded_run(match: re.Match) -> str:
    """An encoded run naming a set-password link, as its decoded path with the token redacted (the
    query stays as sent, for ``redact_query``); any other run unchanged."""
    run = match.group(0)
    path, sep, query = run.partition("?")
    plain = _fully_decoded(path)
    if plain == path or not _DECODED_LINK_TOKEN.search(plain):
        return run
    return _DECODED_LINK_TOKEN.sub(r"\1[redacted]", plain) + sep + query


def redact_decoded_path(path: str) -> str:
    """A decoded request path (``PATH_INFO``) with a set-password link's token redacted."""
    return _DECODED_LINK_TOKEN.sub(r"\1[redacted]", path)


# Query parameter names whose values are secrets (matched anywhere in the name, any case):
# password, passwd, pwd, token, access_token, secret, client_secret, key, api_key, auth, signature,
# one-time codes (code, otp, OAuth's ?code=), bearer, jwt, SAML assertion, nonce, ticket... A name that
# only looks like one (zipCode) loses its value in the log, which costs nothing.
_SECRET_PARAM = re.compile(r"(?i)pass|pwd|token|secret|key|auth|sig|credential|session|cookie|saml|code|otp|bearer"
                           r"|jwt|assertion|nonce|ticket")


def redact_link_tokens(text: str) -> str:
    """``text`` with the token of every set-password link path replaced by ``[redacted]``, also when
    the path is percent-encoded (then it is logged decoded)."""
    if "%" in text:
        text = _ENCODED_RUN.sub(_redact_encoded_run, text)
    return _LINK_TOKEN.sub(r"\1[redacted]", text)


def redact_query(url: str) -> str:
    """``url`` (a path with its query string) with the values of secret-looking query parameters
    replaced by ``[redacted]``; everything else stays as it was sent."""
    path, sep, query = url.partition("?")
    if not sep:
        return url
    parts = []
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        if eq and value and _SECRET_PARAM.search(unquote_plus(name)):
            part = f"{name}=[redacted]"
        parts.append(part)
    return f"{path}?{'&'.join(parts)}"


def redact_url(url: str) -> str:
    """Both: set-password link tokens and secret-looking query parameters."""
    return redact_query(redact_link_tokens(url))


def redact(text: str) -> str:
    """Replace secret-looking values (password=..., Bearer ..., set-password link tokens) with ``[redacted]``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return redact_link_tokens(text)


class RedactSecretsFilter(logging.Filter):
    """Redacts secrets from the formatted message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is logged as-is
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class OneLineForbiddenFilter(logging.Filter):
    """Logs a refused request (403) as one line with its reason, not a traceback.

    Django's request logger attaches the ``PermissionDenied`` exception to its "Forbidden" warning;
    a 403 is an expected answer, so the line says what was refused and why, and drops the stack.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403 and record.exc_info:
            exc = record.exc_info[1]
            reason = str(exc) if exc is not None else ""
            message = record.getMessage()
            record.msg, record.args = (f"{message} ({reason})" if reason else message), None
            record.exc_info, record.exc_text = None, None
        return True
