"""Set-password links for users an upload created without a password ("invited").

The link is Django's password-reset token (``default_token_generator``): it stops working once the
user has set a password, because the token covers the password hash.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mass_mail
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.bulk_upload.models import BulkUpload
from accounts.identity.types import UserState
from accounts.models import AuditEvent


def invited_users(upload: BulkUpload):
    """Users this upload created who are still invited (found through the upload's audit events)."""
    ids = AuditEvent.objects.filter(job_id=upload.job_id, action="user.created").values_list("target_id", flat=True)
    return (User.objects.filter(pk__in=[int(i) for i in ids if i], profile__state=UserState.INVITED)
            .order_by("username"))


def invite_path(user: User) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return reverse("bulk:invite", kwargs={"uidb64": uid, "token": default_token_generator.make_token(user)})


def send_invitations(upload: BulkUpload, *, base_url: str) -> int:
    """Email each invited user with an email address their link; returns how many were sent."""
    messages = []
    for user in invited_users(upload).exclude(email=""):
        body = (f"Hello {user.first_name or user.username},\n\nAn account was created for you ({user.username}). "
                f"Set your password here:\n\n{base_url.rstrip('/')}{invite_path(user)}\n")
        messages.append(("Set your idm password", body, settings.DEFAULT_FROM_EMAIL, [user.email]))
    if messages:
        send_mass_mail(messages, fail_silently=False)
    return len(messages)
