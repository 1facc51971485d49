"""Helpers shared by the bulk upload tests: upload a CSV string as a given admin."""

from __future__ import annotations

import io

import pytest

from accounts.bulk_upload.apply import create_upload, hash_passwords, password_chunks


@pytest.fixture
def media(settings, tmp_path):
    """Uploaded files and reports go to a temporary directory."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                    "OPTIONS": {"location": str(tmp_path / "media")}},
    }
    return tmp_path / "media"


def upload_text(text: str, *, user, operation: str = "upsert", org=None, hash_now: bool = True,
                file_name: str = "users.csv"):
    """Create (parse + validate) an upload; hash its passwords inline like the tasks would."""
    data = text.encode("utf-8")
    upload, passwords = create_upload(io.BytesIO(data), file_name=file_name, size=len(data), operation=operation,
                                      default_org=org, user=user)
    if hash_now:
        for chunk in password_chunks(passwords):
            hash_passwords(upload.pk, chunk)
    return upload, passwords
