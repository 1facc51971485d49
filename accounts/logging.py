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
