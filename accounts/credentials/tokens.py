"""Links by email: Django's password-reset tokens with their own lifetimes.

A token covers the user's password hash and last sign-in, so it works once: setting the password
(or signing in) changes both. Invitation tokens also cover the invitation's nonce, so a resent
invitation kills the earlier links. Both cover the user's security stamp (``SecurityStamp``), which
changes when the user's privilege rises, so a link obtained before a promotion is void after it
(review 3 H2). Lifetimes: ``IDM_PASSWORD_RESET_TIMEOUT`` (1 hour) for reset
links, ``IDM_INVITATION_TIMEOUT`` (7 days) for invitations.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.utils.crypto import constant_time_compare
from django.utils.encoding import force_bytes, force_str
from django.utils.http import base36_to_int, urlsafe_base64_decode, urlsafe_base64_encode

_EPOCH = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)  # Django's token clock starts here


class _TimedTokens(PasswordResetTokenGenerator):
    timeout_setting = ""
    default_timeout = 3600

    @property
    def timeout(self) -> int:
        return int(getattr(settings, self.timeout_setting, self.default_timeout))

    def _make_hash_value(self, user, timestamp) -> str:
        return super()._make_hash_value(user, timestamp) + security_stamp(user)

    def check_token(self, user, token) -> bool:
        """Django's check with this generator's lifetime instead of ``PASSWORD_RESET_TIMEOUT``."""
        if not (user and isinstance(token, str)):
            return False
        try:
            ts_b36, _ = token.split("-")
            ts = base36_to_int(ts_b36)
        except ValueError:
            return False
        if not any(constant_time_compare(self._make_token_with_timestamp(user, ts, secret), token)
                   for secret in [self.secret, *self.secret_fallbacks]):
            return False
        return 0 <= self._num_seconds(self._now()) - ts <= self.timeout

    def expires_at(self, token: str) -> dt.datetime | None:
        """When ``token`` stops working (from its own timestamp)."""
        try:
            ts = base36_to_int(token.split("-")[0])
        except ValueError:
            return None
        return _EPOCH + dt.timedelta(seconds=ts + self.timeout)


class ResetTokens(_TimedTokens):
    key_salt = "idm.credentials.password_reset"
    timeout_setting = "IDM_PASSWORD_RESET_TIMEOUT"
    default_timeout = 3600


class InvitationTokens(_TimedTokens):
    key_salt = "idm.credentials.invitation"
    timeout_setting = "IDM_INVITATION_TIMEOUT"
    default_timeout = 7 * 24 * 3600

    def _make_hash_value(self, user, timestamp) -> str:
        invitation = getattr(user, "invitation", None)
        return super()._make_hash_value(user, timestamp) + (invitation.nonce if invitation else "")


def security_stamp(user) -> str:
    """The user's current security stamp ("" until their privilege first rises)."""
    from django.core.exceptions import ObjectDoesNotExist

    if user.pk is None:
        return ""
    try:
        return user.security_stamp.value  # (cached on the instance, like ``user.invitation``)
    except ObjectDoesNotExist:
        return ""


reset_tokens = ResetTokens()
invitation_tokens = InvitationTokens()


def encode_uid(user) -> str:
    return urlsafe_base64_encode(force_bytes(user.pk))


def decode_uid(uidb64: str) -> int | None:
    try:
        return int(force_str(urlsafe_base64_decode(uidb64)))
    except (ValueError, TypeError, OverflowError, UnicodeDecodeError):
        return None
