"""Every credential write: reset links, temporary passwords, invitations, required actions,
recovery codes and unlocks. Each is audited.

Passwords are set only through ``accounts.identity`` (``services.user_set_password``), so its
policy guards apply (scope, the privilege rule, provider ownership) and it keeps the history.
Writes that are not identity changes (a link sent, a required action set) first pass the same
scope and privilege guards (``privilege.check_may_change_credentials``): one rule, one place.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import caches
from django.core.mail import send_mail
from django.db import transaction
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone

from accounts import console_actions as services
from accounts.credentials.email_trust import EMAIL_CONFIRMED, email_trust, unconfirmed_message
from accounts.credentials.models import Invitation, RecoveryCode, RequiredAction, SignInLock
from accounts.credentials.tokens import encode_uid, invitation_tokens, reset_tokens
from accounts.exceptions import IdentityError, PolicyDenied, ValidationFailed
from accounts.identity.audit import record_event
from accounts.identity.privilege import check_may_change_credentials, check_may_vouch_email
from accounts.identity.types import Actor, UserState
from accounts.identity.validators import username_key
from accounts.selectors import users_named
from accounts.throttle import bump, summary_due

Kind = RequiredAction.Kind


# --------------------------------------------------------------------------------------------
# Shared guards and helpers


def _audit(action: str, *, actor: Actor, user: User, new: dict | None = None, message: str = "") -> None:
    record_event(actor=actor, action=action, target_type="user", target_id=user.pk,
                 target_label=user.get_username(), new=new, message=message)


def directory_password_source(user: User) -> str | None:
    """The directory that holds ``user``'s password (``sso.signin.directory_password_source``), else ``None``."""
    from sso.signin import directory_password_source as holder

    return holder(user)


def sso_provider_name(user: User) -> str | None:
    """The identity provider ``user`` must sign in with (passwords do not apply), else ``None``."""
    from sso.signin import sso_provider_for

    provider = sso_provider_for(user)
    return provider.name if provider is not None else None


def check_may_change(*, actor: Actor, user: User) -> None:
    """Raise ``IdentityError`` unless ``actor`` may change ``user``'s credentials or sessions: scope in
    the user's org and the privilege rule, the same guards the identity service applies to a password
    change (``privilege.check_may_change_credentials``)."""
    check_may_change_credentials(actor, user)


def check_may_reset(*, actor: Actor, user: User) -> None:
    """``check_may_change``, and not one's own account, and not a user whose password does not apply."""
    if actor.user is not None and actor.user.pk == user.pk:
        raise PolicyDenied("self_reset", "Use My account to change your own password or two-factor settings.")
    provider = sso_provider_name(user)
    if provider:
        raise ValidationFailed("sso_user", f"{user.username} signs in with {provider}: passwords do not apply.")
    check_may_change(actor=actor, user=user)


def check_password_is_local(user: User) -> None:
    """Refuse to set or send a local password for a user whose password a directory holds (review N10)."""
    directory = directory_password_source(user)
    if directory:
        raise ValidationFailed("directory_user", f"{user.username} signs in with the password of the directory "
                               f"{directory}: reset it there.")


def end_sessions(*, user: User, actor: Actor, reason: str, keep_session_key: str | None = None) -> int:
    """End the user's sessions (``accounts.sessions.end_user_sessions``, audited there); how many ended.

    Without session tracking, Django still drops every session whose password hash changed.
    """
    try:
        from accounts.sessions import end_user_sessions
    except ImportError:
        return 0
    return end_user_sessions(user_ids=[user.pk], except_session_key=keep_session_key, actor=actor, reason=reason)


def _absolute(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + path


def _send(user: User, subject: str, body: str) -> None:
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email], fail_silently=False)


def _minutes(seconds: int) -> str:
    if seconds % 86400 == 0 and seconds >= 86400:
        days = seconds // 86400
        return f"{days} day{'s' if days != 1 else ''}"
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{max(1, seconds // 60)} minutes"


# --------------------------------------------------------------------------------------------
# Password reset links (by an admin, or asked for on the sign-in page)


def reset_path(user: User) -> str:
    return reverse("accounts:password_reset_confirm", kwargs={"uidb64": encode_uid(user),
                                                              "token": reset_tokens.make_token(user)})


def _reset_mail(user: User, link: str) -> None:
    _send(user, "Reset your idm password",
          f"Hello {user.first_name or user.username},\n\nA password reset was asked for your account "
          f"({user.username}). Choose a new password here:\n\n{link}\n\nThe link works once, for "
          f"{_minutes(reset_tokens.timeout)}. If you did not ask for it, ignore this email.\n")


def send_reset_link(*, actor: Actor, user: User, base_url: str) -> None:
    """An admin emails ``user`` a reset link; the user's sessions end (the account may be compromised)."""
    check_may_reset(actor=actor, user=user)
    check_password_is_local(user)
    if not user.email:
        raise ValidationFailed("no_email", f"{user.username} has no email address. Set a temporary password "
                               "instead, or add an email address first.")
    if user.profile.state not in (UserState.ACTIVE, UserState.INVITED):
        raise ValidationFailed("not_active", f"{user.username} is {user.profile.get_state_display().lower()}.")
    check_email_confirmed(user)
    _reset_mail(user, _absolute(base_url, reset_path(user)))
    _audit("user.password_reset_sent", actor=actor, user=user, new={"email": user.email})
    end_sessions(user=user, actor=actor, reason="password reset link sent")


def check_email_confirmed(user: User) -> None:
    """Refuse (``email_unconfirmed``) a set-password link to an address whose setter may not change
    ``user`` now (review 4 F1, ``accounts.credentials.email_trust``)."""
    trust = email_trust(user)
    if not trust.trusted:
        raise ValidationFailed("email_unconfirmed", unconfirmed_message(user, trust), field="email")


def confirm_email(*, actor: Actor, user: User) -> bool:
    """``actor`` vouches for ``user``'s current email address (the "Confirm email" button, or saving
    the address unchanged on Edit): recorded as ``user.email_confirmed`` when the address is not
    trusted yet, so links may go to it again. ``actor`` must be allowed to set the address now
    (``privilege.check_may_vouch_email``). Returns whether an event was written."""
    if not user.email:
        raise ValidationFailed("no_email", f"{user.username} has no email address.")
    if actor.user is None:
        raise PolicyDenied("not_a_voucher", "Only a console user can confirm an email address.")
    trust = email_trust(user)
    if trust.trusted:  # nothing to vouch for (and an Edit save pays only this check)
        return False
    check_may_vouch_email(actor.user, user)
    _audit(EMAIL_CONFIRMED, actor=actor, user=user, new={"email": user.email, "set_by": trust.set_by})
    return True


@dataclass
class ForgotResult:
    sent: int
    throttled: bool = False


def _forgot_throttled(identifier: str, ip: str | None) -> str | None:
    """At most ``IDM_PASSWORD_RESET_MAX_REQUESTS`` (5) per identifier and 20 per address per hour.

    Returns which limit refuses this request (``"address"`` before ``"identifier"``), else ``None``."""
    cache = caches["security"]
    limit = int(getattr(settings, "IDM_PASSWORD_RESET_MAX_REQUESTS", 5))
    keys = []
    if ip:
        keys.append(("address", f"forgot:ip:{_digest(ip)}", limit * 4))
    keys.append(("identifier", f"forgot:id:{_digest(_identifier_key(identifier))}", limit))
    over = None
    for name, key, cap in keys:
        if bump(cache, key, 3600) > cap and over is None:
            over = name
    return over


def _user_throttled(user: User, actor: Actor) -> bool:
    """At most ``IDM_PASSWORD_RESET_MAX_REQUESTS`` (5) links per user per hour, however the user was
    named (username, email, case or space variants: review 4 L2). Refusals are summarised, not
    audited one by one; the page answers as for anyone."""
    cache = caches["security"]
    limit = int(getattr(settings, "IDM_PASSWORD_RESET_MAX_REQUESTS", 5))
    if bump(cache, f"forgot:user:{user.pk}", 3600) <= limit:
        return False
    refused = summary_due(cache, f"forgot:user-refused:{user.pk}", 3600)
    if refused is not None:
        record_event(actor=actor, action="auth.password_reset_throttled", target_type="user", target_id=user.pk,
                     target_label=user.get_username(), new={"refused_requests": refused, "limit": "user"})
    return True


def _identifier_key(identifier: str) -> str:
    """What a forgot-password identifier counts as: ``username_key`` (NFKC, lower case), so every
    spelling that finds the same user (``users_named``) meets the same counter (review 3 M2)."""
    return username_key(identifier)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def request_password_reset(*, identifier: str, request, base_url: str) -> ForgotResult:
    """Self-service "forgot password": email a reset link to the local users ``identifier`` names.

    ``identifier`` is a username or an email address. Users of SSO orgs get an email telling them to
    use their identity provider; blocked and deactivated users, and users whose password a directory
    holds (directory password sign-in), get nothing. The caller shows the same
    answer whatever happened, so the page does not reveal who exists.
    """
    identifier = identifier.strip()[:254].replace("\x00", "")
    actor = Actor(label=identifier or "(empty)", type="anonymous", request_id=getattr(request, "request_id", ""),
                  ip=getattr(request, "client_ip", None))
    limit = _forgot_throttled(identifier, actor.ip)
    if limit is not None:
        # One summary counter per client (its address, else the identifier), whichever limit refused.
        client = _digest(actor.ip or _identifier_key(identifier))
        refused = summary_due(caches["security"], f"forgot:refused:{client}", 3600)
        if refused is not None:
            record_event(actor=actor, action="auth.password_reset_throttled", target_type="user",
                         target_label=identifier[:150], new={"refused_requests": refused, "limit": limit})
        return ForgotResult(sent=0, throttled=True)
    if "@" in identifier:
        users = list(User.objects.select_related("profile__org").filter(email__iexact=identifier)
                     .exclude(email="")[:5])
    else:  # the sign-in page's lookup: one user by normalised name, none when legacy look-alikes clash
        named = users_named(identifier)
        users = [u for u in named if u.email] if len(named) == 1 else []
    sent = 0
    for user in users:
        state = getattr(getattr(user, "profile", None), "state", None)
        if state not in (UserState.ACTIVE, UserState.INVITED) or not user.is_active:
            _audit("auth.password_reset_requested", actor=actor, user=user, new={"sent": False, "reason": state})
            continue
        if directory_password_source(user) is not None:
            # The directory holds the password: no link, and the page answers as for an unknown user.
            _audit("auth.password_reset_requested", actor=actor, user=user, new={"sent": False, "reason": "directory"})
            continue
        if _user_throttled(user, actor):
            continue
        provider = sso_provider_name(user)
        if provider:
            _send(user, "Your idm sign-in", f"Hello {user.first_name or user.username},\n\nSomeone asked to reset "
                  f"the password of {user.username}. Your organization signs in with {provider}: use it on the "
                  "idm sign-in page; your password is managed there, not in idm.\n")
            _audit("auth.password_reset_requested", actor=actor, user=user, new={"sent": False, "reason": "sso"})
            continue
        if not email_trust(user).trusted:
            # Set by someone who may not change this user now (review 4 F1): no link to it.
            _audit("auth.password_reset_requested", actor=actor, user=user,
                   new={"sent": False, "reason": "email_unconfirmed"})
            continue
        _reset_mail(user, _absolute(base_url, reset_path(user)))
        _audit("auth.password_reset_requested", actor=actor, user=user, new={"sent": True})
        sent += 1
    if not users:
        record_event(actor=actor, action="auth.password_reset_requested", target_type="user",
                     target_label=identifier[:150], new={"sent": False, "reason": "unknown"})
    return ForgotResult(sent=sent)


def link_is_valid(user: User | None, token: str, kind: str) -> bool:
    """Whether ``token`` is a live reset link (``kind="reset"``) or invitation (``"invitation"``) of ``user``.

    A reset link is void once the password changes and never works for users of an SSO org; an
    invitation is void once accepted (its ``Invitation`` row goes)."""
    if user is None or not user.is_active:
        return False
    if kind == "invitation":
        return is_waiting_for_invitation(user) and invitation_tokens.check_token(user, token)
    return (reset_tokens.check_token(user, token) and sso_provider_name(user) is None
            and directory_password_source(user) is None)


def set_password_from_link(*, user: User, password: str, request, kind: str, token: str) -> None:
    """The user sets a password from a reset link or an invitation (as themselves, so the validators
    and the history rule apply); it satisfies a required password change and ends other sessions.

    The link is checked again on the locked user row, so two requests sending the same link at the
    same moment set one password: the second finds the link used (``IdentityError("link_used")``)."""
    with transaction.atomic():
        user = User.objects.select_for_update(of=("self",)).select_related("profile").get(pk=user.pk)
        if not link_is_valid(user, token, kind):
            raise IdentityError("link_used", "This link has already been used or has expired. "
                                "Ask for a new one.")
        actor = Actor.for_user(user, request=request)
        services.user_set_password(actor=actor, user=user, password=password)
        RequiredAction.objects.filter(user=user, kind=Kind.CHANGE_PASSWORD).delete()
        if kind == "invitation":
            Invitation.objects.filter(user=user).delete()
        _audit("auth.password_reset_completed" if kind == "reset" else "auth.invitation_accepted",
               actor=actor, user=user)
    session = getattr(request, "session", None)
    end_sessions(user=user, actor=actor, reason=f"password set from {'an invitation' if kind == 'invitation' else 'a reset link'}",
                 keep_session_key=getattr(session, "session_key", None))


# Set-password links (reset and invitation) as they appear in mail: scheme and host optional.
_CREDENTIAL_LINK = re.compile(
    r"(?:https?://[^\s/]+)?/(?:sign-in/reset|invitation)/(?P<uid>[A-Za-z0-9_-]+)/[A-Za-z0-9_-]+/?")
HIDDEN_LINK = "[set-password link hidden: you may not change this user's credentials]"


def redact_credential_links(text: str, *, viewer: Actor) -> str:
    """``text`` with each reset or invitation link replaced unless ``viewer`` may change the
    credentials of the user it is for (the privilege rule: a link is a password change waiting to
    happen). The Outbox shows mail through this, so reading mail never outranks the rule."""
    from accounts.credentials.tokens import decode_uid

    allowed: dict[str, bool] = {}

    def replace(match: re.Match) -> str:
        uid = match.group("uid")
        if uid not in allowed:
            pk = decode_uid(uid)
            user = User.objects.select_related("profile").filter(pk=pk).first() if pk is not None else None
            try:
                if user is None or viewer.user is None:
                    raise PolicyDenied("unknown_user", "no such user")
                if viewer.user.pk != user.pk:
                    check_may_change(actor=viewer, user=user)
                allowed[uid] = True
            except IdentityError:
                allowed[uid] = False
        return match.group(0) if allowed[uid] else HIDDEN_LINK

    return _CREDENTIAL_LINK.sub(replace, text)


# --------------------------------------------------------------------------------------------
# Temporary password


def _generated_password() -> str:
    alphabet = string.ascii_letters + string.digits
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(16))
        low = candidate.lower()
        if (any(c.isupper() for c in candidate) and any(c.islower() for c in candidate)
                and any(c.isdigit() for c in candidate)
                and not any(low[i] == low[i + 1] == low[i + 2] for i in range(len(low) - 2))):
            return candidate


def set_temporary_password(*, actor: Actor, user: User) -> str:
    """A generated password the user must change at their next sign-in; returns it (shown once)."""
    check_may_reset(actor=actor, user=user)
    check_password_is_local(user)
    password = _generated_password()
    with transaction.atomic():
        services.user_set_password(actor=actor, user=user, password=password)
        _, created = RequiredAction.objects.get_or_create(user=user, kind=Kind.CHANGE_PASSWORD,
                                                          defaults={"set_by": actor.label})
        if created:
            _audit("user.required_action_set", actor=actor, user=user, new={"kind": Kind.CHANGE_PASSWORD})
        _audit("user.temporary_password_set", actor=actor, user=user)
    end_sessions(user=user, actor=actor, reason="temporary password set")
    return password


# --------------------------------------------------------------------------------------------
# Invitations


def invitation_path(user: User) -> str:
    return reverse("accounts:invitation_accept", kwargs={"uidb64": encode_uid(user),
                                                         "token": invitation_tokens.make_token(user)})


def invite(*, actor: Actor, user: User, base_url: str, email: bool) -> tuple[str, Invitation]:
    """A fresh invitation link for an invited user (earlier links stop working), emailed or returned."""
    if user.profile.state != UserState.INVITED or user.has_usable_password():
        raise ValidationFailed("not_invited", f"{user.username} is not waiting for an invitation: they have "
                               "a password. Send a password reset instead.")
    check_may_reset(actor=actor, user=user)
    check_password_is_local(user)  # accepting sets a local password the directory's would not let in
    if email and not user.email:
        raise ValidationFailed("no_email", f"{user.username} has no email address: copy the link instead.")
    if email:
        check_email_confirmed(user)
    now = timezone.now()
    with transaction.atomic():
        invitation, _ = Invitation.objects.update_or_create(user=user, defaults={
            "nonce": uuid.uuid4().hex, "sent_at": now, "sent_by": actor.label,
            "expires_at": now + timezone.timedelta(seconds=invitation_tokens.timeout),
            "emailed_to": user.email if email else "",
        })
        user.invitation = invitation
        link = _absolute(base_url, invitation_path(user))
        _audit("user.invitation_sent", actor=actor, user=user, new={
            "channel": "email" if email else "link", "expires_at": invitation.expires_at.isoformat(timespec="seconds")})
    if email:
        _send(user, "Your idm account", f"Hello {user.first_name or user.username},\n\nAn account was created for "
              f"you ({user.username}). Set your password here:\n\n{link}\n\nThe link works once, until "
              f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC.\n")
    return link, invitation


def is_waiting_for_invitation(user: User | None) -> bool:
    """An invited local user without a password: they sign in by accepting their invitation. Not a
    user whose password a directory holds (an invitation taken over by a directory is void)."""
    return (user is not None and not user.has_usable_password()
            and getattr(getattr(user, "profile", None), "state", None) == UserState.INVITED
            and directory_password_source(user) is None)


# --------------------------------------------------------------------------------------------
# Required actions at the next sign-in


def pending_actions(user: User) -> set[str]:
    return set(RequiredAction.objects.filter(user=user).values_list("kind", flat=True))


def set_required_actions(*, actor: Actor, user: User, kinds: set[str]) -> tuple[set[str], set[str]]:
    """Make ``kinds`` exactly the user's required actions; returns (added, removed)."""
    unknown = kinds - set(Kind.values)
    if unknown:
        raise ValidationFailed("unknown_action", f"Unknown required action: {', '.join(sorted(unknown))}.")
    check_may_reset(actor=actor, user=user)
    with transaction.atomic():
        current = set(RequiredAction.objects.select_for_update().filter(user=user).values_list("kind", flat=True))
        added, removed = kinds - current, current - kinds
        RequiredAction.objects.filter(user=user, kind__in=removed).delete()
        RequiredAction.objects.bulk_create([RequiredAction(user=user, kind=k, set_by=actor.label) for k in added])
        for k in sorted(added):
            _audit("user.required_action_set", actor=actor, user=user, new={"kind": k})
        for k in sorted(removed):
            _audit("user.required_action_cleared", actor=actor, user=user, new={"kind": k})
    return added, removed


def complete_action(*, actor: Actor, user: User, kind: str) -> bool:
    """The user did ``kind`` (changed the password, enrolled a device): the requirement ends."""
    deleted, _ = RequiredAction.objects.filter(user=user, kind=kind).delete()
    if deleted:
        _audit("auth.required_action_completed", actor=actor, user=user, new={"kind": kind})
    return bool(deleted)


def require_password_change(*, actor: Actor, user: User) -> None:
    """For setup commands (``create_first_admin``): no privilege check, the actor is the system."""
    RequiredAction.objects.get_or_create(user=user, kind=Kind.CHANGE_PASSWORD, defaults={"set_by": actor.label})
    _audit("user.required_action_set", actor=actor, user=user, new={"kind": Kind.CHANGE_PASSWORD})


def change_own_password(*, user: User, password: str, request) -> None:
    """The required password change at sign-in (the user just proved the current one)."""
    actor = Actor.for_user(user, request=request)
    with transaction.atomic():
        services.user_set_password(actor=actor, user=user, password=password)
        complete_action(actor=actor, user=user, kind=Kind.CHANGE_PASSWORD)
    end_sessions(user=user, actor=actor, reason="password changed at sign-in",
                 keep_session_key=request.session.session_key)


# --------------------------------------------------------------------------------------------
# Recovery codes for two-factor authentication

RECOVERY_CODE_COUNT = 10
_CODE_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # base32: 16 characters = 80 bits
_CODE_LEN = 16


def _hash_code(code: str) -> str:
    return hashlib.sha256(code.encode("ascii")).hexdigest()


def normalise_recovery_code(code: str | None) -> str | None:
    """``"ABCD-efgh ijkl-mnop"`` -> ``"abcdefghijklmnop"``; ``None`` unless it has the recovery code shape."""
    clean = (code or "").strip().lower().replace("-", "").replace(" ", "")
    if len(clean) == _CODE_LEN and all(c in _CODE_ALPHABET for c in clean):
        return clean
    return None


def generate_recovery_codes(*, actor: Actor, user: User) -> list[str]:
    """Ten new codes (the old ones stop working), returned once for display; only hashes are kept."""
    codes = ["".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LEN)) for _ in range(RECOVERY_CODE_COUNT)]
    with transaction.atomic():
        RecoveryCode.objects.filter(user=user).delete()
        RecoveryCode.objects.bulk_create([RecoveryCode(user=user, code_hash=_hash_code(c)) for c in codes])
        _audit("auth.recovery_codes_generated", actor=actor, user=user, new={"count": len(codes)})
    return ["-".join(c[i:i + 4] for i in range(0, _CODE_LEN, 4)) for c in codes]


def use_recovery_code(*, actor: Actor, user: User, code: str | None) -> bool:
    """Accept an unused recovery code of ``user`` once (audited with the number left)."""
    clean = normalise_recovery_code(code)
    if clean is None:
        return False
    with transaction.atomic():
        row = (RecoveryCode.objects.select_for_update()
               .filter(user=user, code_hash=_hash_code(clean), used_at__isnull=True).first())
        if row is None:
            _audit("auth.mfa_failed", actor=actor, user=user, new={"reason": "invalid_recovery_code",
                                                                    "context": "sign_in"})
            return False
        row.used_at = timezone.now()
        row.save(update_fields=["used_at"])
        left = RecoveryCode.objects.filter(user=user, used_at__isnull=True).count()
        _audit("auth.recovery_code_used", actor=actor, user=user, new={"remaining": left})
    return True


def recovery_codes_left(user: User) -> int:
    return RecoveryCode.objects.filter(user=user, used_at__isnull=True).count()


def delete_recovery_codes(user: User) -> None:
    RecoveryCode.objects.filter(user=user).delete()


# --------------------------------------------------------------------------------------------
# Sign-in locks (accounts/throttle.py)


def active_lock(user: User) -> SignInLock | None:
    return SignInLock.objects.filter(username=username_key(user.username), locked_until__gt=timezone.now()).first()


def locked_usernames():
    """Lower-case usernames locked right now (a subquery for the users list filter)."""
    return SignInLock.objects.filter(locked_until__gt=timezone.now()).values("username")


def locked_users(qs):
    return qs.annotate(_username_lower=Lower("username")).filter(_username_lower__in=locked_usernames())


def unlock(*, actor: Actor, user: User) -> bool:
    """End a throttling lock of ``user``'s username early (the per-address counter stays).

    The privilege rule applies as for resets: nobody unlocks a more privileged user
    (``target_more_privileged``), since unlocking reopens password guessing on that account.
    """
    from accounts.identity.privilege import check_may_change_user
    from accounts.throttle import SignInThrottle

    if actor.user is not None and actor.user.pk == user.pk:
        raise PolicyDenied("self_reset", "You cannot unlock your own account.")
    check_may_change_user(actor, user)
    lock = active_lock(user)
    SignInThrottle(username=user.username, ip=None).reset()
    if lock is None:
        return False
    _audit("user.unlocked", actor=actor, user=user, new={"locked_until": lock.locked_until.isoformat(
        timespec="seconds")})
    return True





# --------------------------------------------------------------------------------------------
# Sessions (accounts/sessions.py tracks them)


def user_sessions(user: User) -> list:
    """The user's signed-in sessions, most recently seen first (empty without session tracking)."""
    try:
        from accounts.sessions import sessions_of
    except ImportError:
        return []
    return list(sessions_of(user))


def sign_out_session(*, actor: Actor, user: User, session_id: int) -> bool:
    """End one of ``user``'s sessions ("sign out" on the user page); audited by ``accounts.sessions``."""
    from accounts.sessions import UserSession, end_session

    if actor.user is None or actor.user.pk != user.pk:
        check_may_change(actor=actor, user=user)
    row = UserSession.objects.filter(pk=session_id, user=user).first()
    if row is None:
        return False
    return end_session(session_key=row.session_key, actor=actor, user=user, reason="signed out by an admin"
                       if actor.user is None or actor.user.pk != user.pk else "signed out by the user")


def sign_out_everywhere(*, actor: Actor, user: User, keep_session_key: str | None) -> int:
    """End every session of ``user`` (the actor's own current session stays when it is theirs)."""
    if actor.user is None or actor.user.pk != user.pk:
        check_may_change(actor=actor, user=user)
    return end_sessions(user=user, actor=actor, reason="signed out everywhere", keep_session_key=keep_session_key)


def end_sessions_if_console_access_lost(*, actor: Actor, user_ids: list[int]) -> int:
    """Users among ``user_ids`` (who just lost roles) without console access any more lose their sessions.

    Called by the identity service once the transaction commits; one query finds who still holds
    ``console_access`` through any role (or is a superuser).
    """
    from django.db.models import Q

    ids = set(user_ids)
    if not ids:
        return 0
    keep = set(User.objects.filter(pk__in=ids).filter(
        Q(is_superuser=True) | Q(groups__permissions__codename="console_access")).values_list("pk", flat=True))
    try:
        from accounts.sessions import end_user_sessions
    except ImportError:
        return 0
    return end_user_sessions(user_ids=ids - keep, actor=actor, reason="console access removed")
