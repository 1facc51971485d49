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


@pytest.fixture
def eager_celery(settings):
    """Celery tasks run inline (MD5 hashing keeps password rows fast)."""
    from idm.celery import app

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    old = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = old


def post_upload(client, text: str, *, org=None, operation: str = "upsert", name: str = "users.csv"):
    """POST a file to the upload dialog as the signed-in client."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    data = {"file": SimpleUploadedFile(name, text.encode(), content_type="text/csv"), "operation": operation}
    if org is not None:
        data["org"] = org.pk
    return client.post(reverse("bulk:start"), data)


def response_text(response) -> str:
    """The body of a normal or streaming response as text."""
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("utf-8")
    return response.content.decode("utf-8")
