"""Signed-in sessions, tracked per user so they can be listed and ended server-side (issue 7 §5).

Django's sessions do not know their user, so blocking a user only hid their session (the auth
backend refuses inactive users) and unblocking brought it back. Here:

* ``UserSession`` — one row per signed-in session: ``session_key``, ``user``, ``created_at``,
  ``last_seen_at`` (refreshed at most every ``SEEN_EVERY`` seconds), ``ip``, ``user_agent``,
  ``method`` (``password`` or ``sso``). Recorded on ``user_logged_in`` (console password, second
  factor, SAML), deleted on ``user_logged_out``.
* ``end_user_sessions(*, user_ids, except_session_key=None, actor=None, reason="")`` — deletes the
  users' sessions from the configured session store and their rows, and writes one
  ``user.sessions_ended`` audit event per user that had any. The identity service calls it (on
  commit) for users who became blocked or deactivated, or whose password someone else set.
* ``UserSessionMiddleware`` — a signed-in request whose session has no row is signed out (the
  session was ended, or predates tracking), so ending a session holds even for a session store that
  cannot delete (signed cookies); it also follows session key rotation (``update_session_auth_hash``,
  ``cycle_key``) and refreshes ``last_seen_at``.

API for the sessions list UI: ``sessions_of(user)`` (newest first), ``end_session(*, session_key,
actor)`` for "sign out this session", ``end_user_sessions`` for "sign out everywhere" (pass the
current key as ``except_session_key`` to keep it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, user_logged_in, user_logged_out
from django.contrib.auth.models import AnonymousUser
from django.db import models
from django.dispatch import receiver
from django.utils import timezone

logger = logging.getLogger(__name__)

SEEN_EVERY = 300  # seconds between last_seen_at writes for one session


class UserSession(models.Model):
    """One signed-in session of a user (the session store holds its data; this knows its owner)."""

    class Method(models.TextChoices):
        PASSWORD = "password", "Password"
        SSO = "sso", "Single sign-on"

    session_key = models.CharField(max_length=40, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="idm_sessions")
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=255, blank=True)
    method = models.CharField(max_length=10, choices=Method.choices, default=Method.PASSWORD)

    class Meta:
        app_label = "accounts"
        indexes = [models.Index(fields=["user", "-last_seen_at"], name="accounts_us_user_seen")]

    def __str__(self) -> str:
        return f"session of user {self.user_id} since {self.created_at:%Y-%m-%d %H:%M}"


def _store():
    return import_module(settings.SESSION_ENGINE).SessionStore


def _valid_ip(value) -> str | None:
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_ipv46_address

    try:
        validate_ipv46_address(value)
    except ValidationError:
        return None
    return value


def record_session(request, user) -> UserSession | None:
    """Record the session ``request`` was just signed in with (called from ``user_logged_in``)."""
    session = getattr(request, "session", None)
    if session is None:
        return None
    if not session.session_key:
        # ``login()`` flushed the session of another user: the new one has no key until saved.
        session.save()
    key = session.session_key
    # login() stores the backend in the session; ``user.backend`` is set only by authenticate().
    backend = str(session.get(BACKEND_SESSION_KEY) or getattr(user, "backend", "") or "")
    now = timezone.now()
    row, _ = UserSession.objects.update_or_create(session_key=key, defaults={
        "user": user, "created_at": now, "last_seen_at": now,
        "ip": _valid_ip(getattr(request, "client_ip", None) or request.META.get("REMOTE_ADDR")),
        "user_agent": str(request.META.get("HTTP_USER_AGENT", ""))[:255],
        "method": UserSession.Method.SSO if "saml" in backend.lower() else UserSession.Method.PASSWORD,
    })
    # Rows of this user's sessions that have expired since (not seen for longer than a session lives).
    stale = now - timedelta(seconds=settings.SESSION_COOKIE_AGE + SEEN_EVERY)
    UserSession.objects.filter(user=user, last_seen_at__lt=stale).delete()
    return row


@receiver(user_logged_in, dispatch_uid="accounts.sessions.record")
def _on_login(sender, request, user, **kwargs) -> None:
    if request is not None:
        record_session(request, user)


@receiver(user_logged_out, dispatch_uid="accounts.sessions.forget")
def _on_logout(sender, request, user, **kwargs) -> None:
    key = getattr(getattr(request, "session", None), "session_key", None)
    if key:
        UserSession.objects.filter(session_key=key).delete()


def sessions_of(user) -> models.QuerySet:
    """The user's signed-in sessions, most recently seen first."""
    return UserSession.objects.filter(user=user).order_by("-last_seen_at")


def _delete_keys(keys: list[str]) -> None:
    if not keys:
        return
    store = _store()
    if settings.SESSION_ENGINE == "django.contrib.sessions.backends.db":
        model = store.get_model_class()
        for start in range(0, len(keys), 2000):
            model.objects.filter(session_key__in=keys[start:start + 2000]).delete()
        return
    for key in keys:  # cache, cached_db, file: one delete each (the store knows where the data is)
        store(session_key=key).delete(key)


def end_user_sessions(*, user_ids: Iterable[int], except_session_key: str | None = None, actor=None,
                      reason: str = "") -> int:
    """End every session of ``user_ids`` (but ``except_session_key``); returns how many ended.

    Deletes the sessions from the configured store and their ``UserSession`` rows (the middleware
    refuses a session without a row, so the end holds even where the store cannot delete), and
    audits ``user.sessions_ended`` per user with the count and ``reason``.
    """
    ids = sorted(set(user_ids))
    if not ids:
        return 0
    rows = UserSession.objects.filter(user_id__in=ids)
    if except_session_key:
        rows = rows.exclude(session_key=except_session_key)
    return _end(rows, actor, reason)


def end_session(*, session_key: str, actor=None, user=None, reason: str = "signed out one session") -> bool:
    """End one session (only if it is ``user``'s, when given). For "sign out this session"."""
    rows = UserSession.objects.filter(session_key=session_key)
    if user is not None:
        rows = rows.filter(user=user)
    return _end(rows, actor, reason) > 0


def _end(rows: models.QuerySet, actor, reason: str) -> int:
    from accounts.identity.audit import build_event, save_events
    from accounts.identity.types import Actor

    found = list(rows.values_list("pk", "session_key", "user_id", "user__username"))
    if not found:
        return 0
    _delete_keys([key for _, key, _, _ in found])
    pks = [pk for pk, _, _, _ in found]
    for start in range(0, len(pks), 2000):
        UserSession.objects.filter(pk__in=pks[start:start + 2000]).delete()
    per_user: dict[int, list] = {}
    for _, _, uid, username in found:
        per_user.setdefault(uid, [username, 0])[1] += 1
    actor = actor or Actor.system("sessions")
    save_events([build_event(actor=actor, action="user.sessions_ended", target_type="user", target_id=uid,
                             target_label=username, field="sessions", old=count, new=0, message=reason)
                 for uid, (username, count) in sorted(per_user.items())])
    return len(found)


def end_sessions_on_commit(*, actor, changes: Iterable[tuple[int, str, Iterable[str]]]) -> None:
    """From the identity service's write step: ``(user_id, new state, changed fields)`` per written
    update. Users who became blocked or deactivated, or whose password was set by someone else,
    lose every session once the transaction commits (nothing ends if it rolls back)."""
    from django.db import transaction

    from accounts.identity.types import UserState

    actor_id = getattr(getattr(actor, "user", None), "pk", None)
    by_reason: dict[str, list[int]] = {}
    for user_id, state, changed in changes:
        changed = set(changed)
        if "state" in changed and state in (UserState.BLOCKED, UserState.DEACTIVATED):
            by_reason.setdefault(f"user {UserState(state).label.lower()}", []).append(user_id)
        elif "password" in changed and user_id != actor_id:
            by_reason.setdefault("password set by someone else", []).append(user_id)
    for reason, ids in by_reason.items():
        transaction.on_commit(lambda ids=ids, reason=reason: end_user_sessions(user_ids=ids, actor=actor,
                                                                               reason=reason))


class UserSessionMiddleware:
    """Signs out a session that was ended; follows key rotation; refreshes ``last_seen_at``.

    Goes right after ``AuthenticationMiddleware``.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        session = getattr(request, "session", None)
        key_before = getattr(session, "session_key", None)
        user = getattr(request, "user", None)
        if key_before and user is not None and user.is_authenticated:
            seen = UserSession.objects.filter(session_key=key_before).values_list("last_seen_at", flat=True).first()
            if seen is None:
                # Ended server-side (or never tracked): this session signs in no one any more.
                session.flush()
                request.user = AnonymousUser()
                key_before = None
            elif (timezone.now() - seen).total_seconds() >= SEEN_EVERY:
                # Kept out of the session data on purpose: saving the session would slide its expiry.
                UserSession.objects.filter(session_key=key_before).update(last_seen_at=timezone.now())
        response = self.get_response(request)
        key_after = getattr(session, "session_key", None)
        if key_before and key_after and key_after != key_before:
            # The key rotated (update_session_auth_hash, a fresh sign-in): the row follows it, unless
            # the sign-in already recorded the new key, in which case the old row is dead.
            if UserSession.objects.filter(session_key=key_after).exists():
                UserSession.objects.filter(session_key=key_before).delete()
            else:
                UserSession.objects.filter(session_key=key_before).update(session_key=key_after)
        return response
