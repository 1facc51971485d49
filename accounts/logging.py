"""Logging filter that keeps secrets out of logs."""

from __future__ import annotations

import logging
import re

_PATTERNS = [
    (re.compile(r"(?i)(Bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[redacted]"),
    (re.compile(r"(?i)(password|passwd|secret|token|authorization|SAMLResponse|csrfmiddlewaretoken)"
                r"(['\"]?\s*[:=]\s*['\"]?)([^\s'\",&]+)"), r"\1\2[redacted]"),
]


def redact(text: str) -> str:
    """Replace secret-looking values (password=..., Bearer ...) with ``[redacted]``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


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
