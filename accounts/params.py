"""Parsing of request parameters that must never turn bad input into a 500."""

from __future__ import annotations


def int_param(value: str | None, *, max_digits: int = 18) -> int | None:
    """A posted or query-string integer: plain ASCII digits of a sane size, else ``None``.

    ``str.isdigit`` alone accepts "²" or "١٢", which ``int()`` refuses or reads unexpectedly.
    """
    if value and value.isascii() and value.isdigit() and len(value) <= max_digits:
        return int(value)
    return None
