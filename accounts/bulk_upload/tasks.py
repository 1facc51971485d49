"""Celery tasks of the bulk upload: thin wrappers around ``accounts.bulk_upload.apply``.

Passwords travel to the hashing tasks through the broker, so they are encrypted first (Fernet, key
derived from ``SECRET_KEY``, 1-day TTL): Redis and the result backend never hold a plaintext
password, and ``argsrepr`` keeps even the ciphertext out of worker logs and monitoring.
"""

from __future__ import annotations

import json
import logging

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from accounts.bulk_upload.apply import apply_upload, hash_passwords, password_chunks
from accounts.bulk_upload.models import BulkUpload
from accounts.crypto import fernet_for

logger = logging.getLogger(__name__)
PAYLOAD_TTL = 24 * 3600


def _fernet():
    return fernet_for("bulk_upload.passwords")


def seal(items: list) -> str:
    """Encrypt a chunk of (line, username, password) for the broker."""
    return _fernet().encrypt(json.dumps(items).encode()).decode()


def unseal(token: str) -> list:
    return json.loads(_fernet().decrypt(token.encode(), ttl=PAYLOAD_TTL))


def dispatch_hashing(upload: BulkUpload, passwords: dict[int, tuple[str, str]]) -> int:
    """Queue one ``bulk_hash_passwords`` task per chunk (after the upload row is committed)."""
    chunks = password_chunks(passwords)
    sealed = [seal(chunk) for chunk in chunks]

    def send() -> None:
        for token in sealed:
            bulk_hash_passwords.apply_async(args=[str(upload.pk), token], argsrepr="(upload, <sealed passwords>)")

    transaction.on_commit(send)
    return len(chunks)


@shared_task(name="accounts.bulk_upload.hash_passwords", acks_late=True)
def bulk_hash_passwords(upload_id: str, token: str) -> int:
    """Hash one chunk of an upload's passwords (``make_password``) and store the hashes."""
    items = [tuple(item) for item in unseal(token)]
    hash_passwords(upload_id, items)
    return len(items)


@shared_task(name="accounts.bulk_upload.apply", bind=True, max_retries=3600, acks_late=True)
def bulk_apply_upload(self, upload_id: str) -> dict:
    """Apply a confirmed upload; waits (retrying every second) while its passwords are still hashing."""
    upload = BulkUpload.objects.select_related("created_by").get(pk=upload_id)
    if upload.status not in (BulkUpload.Status.QUEUED, BulkUpload.Status.HASHING):
        return {"status": upload.status}
    if upload.secrets.filter(state="pending").exists():
        if self.request.is_eager:  # eager hashing already ran; a pending hash will never arrive
            BulkUpload.objects.filter(pk=upload.pk).update(
                status=BulkUpload.Status.FAILED, finished_at=timezone.now(),
                message="Some passwords were never hashed; upload the file again.")
            return {"status": BulkUpload.Status.FAILED}
        if upload.status != BulkUpload.Status.HASHING:
            BulkUpload.objects.filter(pk=upload.pk).update(status=BulkUpload.Status.HASHING)
        raise self.retry(countdown=1)
    try:
        upload = apply_upload(upload)
    except Exception:
        logger.exception("bulk upload %s failed", upload_id)
        BulkUpload.objects.filter(pk=upload_id).update(
            status=BulkUpload.Status.FAILED, finished_at=timezone.now(),
            message="The upload failed unexpectedly; see the server log. Rows already applied stay applied.",
        )
        raise
    return {"status": upload.status, "created": upload.created_count, "updated": upload.updated_count,
            "unchanged": upload.unchanged_count, "errors": upload.error_count}


@shared_task(name="accounts.bulk_upload.send_invitations")
def bulk_send_invitations(upload_id: str, base_url: str, actor_id: int | None = None) -> int:
    """Email an invitation to every invited user the upload created (who has an email) whom the
    admin ``actor_id`` may change. Without an admin (an old queued task) nothing is sent."""
    from django.contrib.auth.models import User

    from accounts.bulk_upload.invitations import send_invitations
    from accounts.identity.types import Actor

    admin = User.objects.filter(pk=actor_id, is_active=True).first() if actor_id is not None else None
    if admin is None:
        return 0
    return send_invitations(BulkUpload.objects.get(pk=upload_id), actor=Actor.for_user(admin), base_url=base_url)


__all__ = ["bulk_apply_upload", "bulk_hash_passwords", "bulk_send_invitations", "expire_previews"]


@shared_task(name="accounts.bulk_upload.expire_previews")
def expire_previews() -> int:
    """Cancel previews nobody confirmed within ``IDM_UPLOAD_PREVIEW_TTL_HOURS`` and drop their hashes.

    Run by Celery beat every hour; returns how many uploads were cancelled.
    """
    from datetime import timedelta

    from accounts.bulk_upload import conf

    cutoff = timezone.now() - timedelta(hours=conf.preview_ttl_hours())
    stale = BulkUpload.objects.filter(status=BulkUpload.Status.PREVIEW, created_at__lt=cutoff)
    ids = list(stale.values_list("pk", flat=True))
    with transaction.atomic():
        from accounts.bulk_upload.models import BulkUploadSecret

        BulkUploadSecret.objects.filter(upload_id__in=ids).delete()
        BulkUpload.objects.filter(pk__in=ids, status=BulkUpload.Status.PREVIEW).update(
            status=BulkUpload.Status.CANCELLED)
    if ids:
        logger.info("cancelled %d unconfirmed upload previews", len(ids))
    return len(ids)
