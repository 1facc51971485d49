"""Secrets never reach the logs."""

from __future__ import annotations

import logging

from accounts.logging import RedactSecretsFilter, redact


def test_redact_masks_passwords_tokens_and_saml():
    text = "login password=Hunter2x token: abc.def Authorization: Bearer eyJhbGci SAMLResponse=PHNhbWw"
    cleaned = redact(text)
    for secret in ("Hunter2x", "abc.def", "eyJhbGci", "PHNhbWw"):
        assert secret not in cleaned
    assert "[redacted]" in cleaned


def test_filter_rewrites_record():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "user %s password=%s", ("bob", "S3cret!"), None)
    RedactSecretsFilter().filter(record)
    assert "S3cret!" not in record.getMessage() and "bob" in record.getMessage()
