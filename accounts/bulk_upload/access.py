"""Who may open an upload: the rule of the upload pages, shared with the run page of its journal."""

from __future__ import annotations

from django.contrib.auth.models import User

from accounts.access import Access
from accounts.bulk_upload.models import BulkUpload


def may_view_upload(access: Access, user: User, upload: BulkUpload) -> bool:
    """``manage_users`` and the upload's uploader, or ``manage_users`` in every organization."""
    return access.has("manage_users") and (upload.created_by_id == user.pk or access.is_global("manage_users"))
