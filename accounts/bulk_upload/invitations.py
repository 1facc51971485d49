"""Set-password links for users an upload created without a password ("invited").

The links are the credentials invitations (``accounts.credentials.service.invite``): each invited
user has one ``Invitation`` row, its nonce and expiry (``IDM_INVITATION_TIMEOUT``), so a resend from
the user page kills the links handed out here and the other way round. Links are only handed out for
users the requesting admin may change (scope and the privilege rule): an Org Admin must not get a
working link for a user who became more privileged after the upload.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.contrib.auth.models import User
from django.utils import timezone

from accounts.access import Access
from accounts.bulk_upload.models import BulkUpload
from accounts.credentials import service as credentials
from accounts.credentials.tokens import encode_uid, invitation_tokens
from accounts.exceptions import IdentityError
from accounts.identity.privilege import changeable_user_ids
from accounts.identity.types import Actor, UserState
from accounts.models import AuditEvent

_CHUNK = 500


def invited_users(upload: BulkUpload):
    """Users this upload created who are still invited (found through the upload's audit events)."""
    ids = AuditEvent.objects.filter(job_id=upload.job_id, action="user.created").values_list("target_id", flat=True)
    return (User.objects.filter(pk__in=[int(i) for i in ids if i], profile__state=UserState.INVITED)
            .select_related("profile", "invitation").order_by("username"))


def invitable_users(upload: BulkUpload, *, admin: User, limit: int | None = None) -> Iterator[User]:
    """The upload's invited users ``admin`` may change: in their scope, not more privileged, not themselves."""
    scoped = invited_users(upload).filter(Access.of(admin).org_filter("manage_users", "profile__org__path"))
    scoped = scoped.exclude(pk=admin.pk)
    handed = 0
    chunk: list[User] = []

    def allowed(users: list[User]) -> list[User]:
        ids = changeable_user_ids(admin, users)
        return [u for u in users if u.pk in ids and credentials.is_waiting_for_invitation(u)]

    for user in scoped.iterator(chunk_size=_CHUNK):
        chunk.append(user)
        if len(chunk) >= _CHUNK:
            for ok in allowed(chunk):
                if limit is not None and handed >= limit:
                    return
                handed += 1
                yield ok
            chunk = []
    for ok in allowed(chunk):
        if limit is not None and handed >= limit:
            return
        handed += 1
        yield ok


def _current_path(user: User) -> str | None:
    """The link of the user's invitation still running (the same link on every call), else ``None``."""
    invitation = getattr(user, "invitation", None)
    if invitation is None or invitation.expires_at <= timezone.now():
        return None
    sent = timezone.make_naive(invitation.sent_at, timezone.get_default_timezone())
    token = invitation_tokens._make_token_with_timestamp(user, invitation_tokens._num_seconds(sent),
                                                         invitation_tokens.secret)
    if not invitation_tokens.check_token(user, token):  # the lifetime setting shrank meanwhile
        return None
    from django.urls import reverse

    return reverse("accounts:invitation_accept", kwargs={"uidb64": encode_uid(user), "token": token})


def invitation_link(*, actor: Actor, user: User, base_url: str) -> str | None:
    """The user's running invitation link, or a new invitation (audited); ``None`` when refused."""
    path = _current_path(user)
    if path is not None:
        return base_url.rstrip("/") + path
    try:
        link, _ = credentials.invite(actor=actor, user=user, base_url=base_url, email=False)
    except IdentityError:
        return None
    return link


def invite_links(upload: BulkUpload, *, actor: Actor, base_url: str, limit: int | None = None):
    """``(user, link)`` for the upload's invited users ``actor`` may change."""
    for user in invitable_users(upload, admin=actor.user, limit=limit):
        link = invitation_link(actor=actor, user=user, base_url=base_url)
        if link is not None:
            yield user, link


def send_invitations(upload: BulkUpload, *, actor: Actor, base_url: str) -> int:
    """Email a fresh invitation to each invited user with an email address ``actor`` may change.

    Like "send invitation" on the user page: the earlier links of those users stop working.
    Returns how many were sent.
    """
    sent = 0
    for user in invitable_users(upload, admin=actor.user):
        if not user.email:
            continue
        try:
            credentials.invite(actor=actor, user=user, base_url=base_url, email=True)
        except IdentityError:
            continue
        sent += 1
    return sent
