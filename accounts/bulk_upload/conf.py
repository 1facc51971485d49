"""Bulk upload settings (``IDM_UPLOAD_*``) with their defaults, read through one accessor."""

from __future__ import annotations

from django.conf import settings


def max_bytes() -> int:
    """``IDM_UPLOAD_MAX_BYTES``: largest accepted file, checked before the file is read (default 50 MB)."""
    return int(getattr(settings, "IDM_UPLOAD_MAX_BYTES", 50 * 1024 * 1024))


def max_rows() -> int:
    """``IDM_UPLOAD_MAX_ROWS``: most data rows per file (default 100,000)."""
    return int(getattr(settings, "IDM_UPLOAD_MAX_ROWS", 100_000))


def hash_chunk_size() -> int:
    """``IDM_UPLOAD_HASH_CHUNK``: passwords per hashing task (several tasks run in parallel)."""
    return int(getattr(settings, "IDM_UPLOAD_HASH_CHUNK", 25))


def preview_show() -> int:
    """``IDM_UPLOAD_PREVIEW_SHOW``: errors / diffs listed on the preview page (all are in the CSV)."""
    return int(getattr(settings, "IDM_UPLOAD_PREVIEW_SHOW", 500))


def preview_ttl_hours() -> int:
    """``IDM_UPLOAD_PREVIEW_TTL_HOURS``: an unconfirmed preview is cancelled (and its password
    hashes deleted) after this many hours (default 24, the lifetime of the sealed passwords)."""
    return int(getattr(settings, "IDM_UPLOAD_PREVIEW_TTL_HOURS", 24))
