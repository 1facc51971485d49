"""Reset and invitation tokens (accounts/credentials/tokens.py) without a database: lifetimes,
single use, separation of the two kinds, nonce, expiry time, uid encoding."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.contrib.auth.tokens import default_token_generator

from accounts.credentials import tokens
from accounts.credentials.models import Invitation
from accounts.credentials.tokens import InvitationTokens, ResetTokens


def make_user(pk: int = 7, password: str = "pbkdf2_sha256$1$salt$hash", email: str = "a@example.com") -> User:
    user = User(pk=pk, username=f"user{pk}", email=email, password=password)
    user.last_login = None
    user._state.fields_cache["invitation"] = None  # no invitation row (and no database query for it)
    user._state.fields_cache["security_stamp"] = None  # no security stamp row either
    return user


class Clock:
    """Token generator whose clock the test moves."""

    def __init__(self, generator):
        self.generator = generator
        self.now = dt.datetime(2026, 1, 1, 12, 0, 0)
        generator._now = lambda: self.now

    def advance(self, seconds: int) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def reset(settings):
    settings.IDM_PASSWORD_RESET_TIMEOUT = 3600
    return Clock(ResetTokens())


@pytest.fixture
def invitation(settings):
    settings.IDM_INVITATION_TIMEOUT = 7 * 86400
    return Clock(InvitationTokens())


def test_reset_token_lives_exactly_its_timeout(reset):
    user = make_user()
    token = reset.generator.make_token(user)
    assert reset.generator.check_token(user, token)
    reset.advance(3600)
    assert reset.generator.check_token(user, token)
    reset.advance(1)
    assert not reset.generator.check_token(user, token)


def test_token_from_the_future_is_refused(reset):
    user = make_user()
    token = reset.generator.make_token(user)
    reset.advance(-10)
    assert not reset.generator.check_token(user, token)


def test_timeout_follows_the_setting(reset, settings):
    settings.IDM_PASSWORD_RESET_TIMEOUT = 60
    user = make_user()
    token = reset.generator.make_token(user)
    reset.advance(61)
    assert not reset.generator.check_token(user, token)
    assert reset.generator.timeout == 60


def test_default_timeouts_without_settings(settings):
    del settings.IDM_PASSWORD_RESET_TIMEOUT
    del settings.IDM_INVITATION_TIMEOUT
    assert ResetTokens().timeout == 3600
    assert InvitationTokens().timeout == 7 * 24 * 3600


def test_token_dies_when_the_password_or_last_login_changes(reset):
    user = make_user()
    token = reset.generator.make_token(user)
    user.password = "pbkdf2_sha256$1$salt$other"
    assert not reset.generator.check_token(user, token)
    user = make_user()
    user.last_login = dt.datetime(2026, 1, 1, 13, 0, tzinfo=dt.UTC)
    assert not reset.generator.check_token(user, token)


def test_token_is_bound_to_the_user(reset):
    token = reset.generator.make_token(make_user(pk=7))
    assert not reset.generator.check_token(make_user(pk=8), token)


def test_kinds_do_not_accept_each_others_tokens(reset, invitation):
    user = make_user()
    assert not invitation.generator.check_token(user, reset.generator.make_token(user))
    assert not reset.generator.check_token(user, invitation.generator.make_token(user))
    assert not reset.generator.check_token(user, default_token_generator.make_token(user))


@pytest.mark.parametrize("bad", ["", None, "nodash", "zz!-abc", "-", "1-2-3", 12345])
def test_malformed_tokens_are_refused(reset, bad):
    assert not reset.generator.check_token(make_user(), bad)


def test_no_user_is_refused(reset):
    assert not reset.generator.check_token(None, reset.generator.make_token(make_user()))


def test_invitation_nonce_is_part_of_the_token(invitation):
    user = make_user()
    user.invitation = Invitation(nonce="first")
    token = invitation.generator.make_token(user)
    assert invitation.generator.check_token(user, token)
    user.invitation = Invitation(nonce="second")  # resent: the earlier link dies
    assert not invitation.generator.check_token(user, token)


def test_invitation_lives_seven_days(invitation):
    user = make_user()
    token = invitation.generator.make_token(user)
    invitation.advance(7 * 86400)
    assert invitation.generator.check_token(user, token)
    invitation.advance(1)
    assert not invitation.generator.check_token(user, token)


def test_expires_at(reset):
    token = reset.generator.make_token(make_user())
    assert reset.generator.expires_at(token) == dt.datetime(2026, 1, 1, 13, 0, tzinfo=dt.UTC)
    assert reset.generator.expires_at("!!-x") is None


def test_token_made_with_a_fallback_secret_still_works(reset, settings):
    user = make_user()
    settings.SECRET_KEY = "old-secret-key-" + "x" * 40
    token = reset.generator.make_token(user)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "new-secret-key-" + "y" * 40
    assert reset.generator.check_token(user, token)
    settings.SECRET_KEY_FALLBACKS = []
    assert not reset.generator.check_token(user, token)


@pytest.mark.parametrize(("value", "expected"), [("Nw", 7), ("MTIz", 123), ("%%%", None), ("", None),
                                                 ("YWJj", None), ("_w", None)])
def test_decode_uid(value, expected):
    assert tokens.decode_uid(value) == expected


def test_uid_round_trip():
    assert tokens.decode_uid(tokens.encode_uid(make_user(pk=98765))) == 98765


def test_security_stamp_is_part_of_the_token(reset, invitation):
    """Review 3 H2: a new stamp (the user's privilege rose) voids both kinds of links."""
    from accounts.credentials.models import SecurityStamp

    user = make_user()
    user._state.fields_cache["invitation"] = Invitation(user=user, nonce="n1")
    made = {gen: gen.generator.make_token(user) for gen in (reset, invitation)}
    user._state.fields_cache["security_stamp"] = SecurityStamp(user=user, value="after-a-promotion")
    for gen, token in made.items():
        assert not gen.generator.check_token(user, token)
        assert gen.generator.check_token(user, gen.generator.make_token(user))


@pytest.mark.parametrize("kind", ["reset", "invitation"])
def test_a_token_with_a_later_timestamp_is_refused(kind, reset, invitation):
    """The timestamp is covered by the hash: moving it forward (a longer life) breaks the token."""
    from django.utils.http import base36_to_int, int_to_base36

    clock = reset if kind == "reset" else invitation
    user = make_user()
    ts_b36, digest = clock.generator.make_token(user).split("-")
    forged = f"{int_to_base36(base36_to_int(ts_b36) + 86400)}-{digest}"
    clock.advance(86400)
    assert not clock.generator.check_token(user, forged)
