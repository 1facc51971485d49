"""Pure field validators of the identity service: each takes a raw value and returns the clean value
or raises a coded ``ValidationFailed`` (no database, no shared state)."""

from __future__ import annotations

import re
import secrets
import unicodedata
from typing import Any

from django.contrib.auth import password_validation
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX, make_password
from django.contrib.auth.models import BaseUserManager, User
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

from accounts.exceptions import ValidationFailed

USERNAME_MAX = 150  # auth.User.username
EMAIL_MAX = 254  # auth.User.email (Django's validator allows 320; PostgreSQL refuses more than the column)
NAME_MAX = 150  # auth.User.first_name / last_name
# UnicodeUsernameValidator's own pattern, compiled once: the validator object reaches its regex
# through a lazy proxy on every call, a measurable cost at 100k usernames per import.
_username_search = re.compile(UnicodeUsernameValidator.regex, UnicodeUsernameValidator.flags).search
_email_validator = EmailValidator()
# The plain shape nearly every address has (ASCII dot-atom local part, ASCII host names, a letters-only
# top-level domain): a strict subset of what ``EmailValidator`` accepts, so an address it matches
# needs no further check (one C-level match instead of the validator's several regexes and its
# IDNA step); any other address goes through ``EmailValidator`` itself.
_plain_email = re.compile(
    r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\Z"
).match


def normalize_username(value: str) -> str:
    """NFKC: compatibility forms become their plain letters (fullwidth ``ａｌｉｃｅ`` is ``alice``,
    ``ſam`` is ``sam``), so a look-alike spelling is the same name and stored as the plain one."""
    return value if value.isascii() else unicodedata.normalize("NFKC", value)  # ASCII is already NFKC


def username_key(value: str) -> str:
    """What two usernames are compared by: NFKC, then lower case. For every name ``validate_username``
    accepts this equals ``casefold()`` and PostgreSQL's ``lower()``, the key of the database's unique
    index ``idm_user_username_lower``."""
    return normalize_username(value).lower()


def _irregular_case(char: str) -> bool:
    """A letter whose case mapping is not one-to-one (``ı`` upper-cases to ``I``, ``ß`` folds to ``ss``,
    ``ς`` to ``σ``): databases and Python disagree on it, so names holding it could collide unseen."""
    lower = char.lower()
    return len(lower) != 1 or char.casefold() != lower or char.upper().lower() != lower


# Alphabets whose letters pass for one another ("а" Cyrillic / "a" Latin, "ο" Greek / "o" Latin,
# "օ" Armenian, "Ꭺ" Cherokee): a name may use one of them, never two. Other scripts (Han, kana,
# Hangul, Arabic, ...) are not look-alikes of these and combine freely, as Japanese names need.
LOOKALIKE_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC", "ARMENIAN", "CHEROKEE", "COPTIC")


def username_scripts(value: str) -> set[str]:
    """The look-alike alphabets (``LOOKALIKE_SCRIPTS``) the letters of ``value`` come from. Digits,
    ``@ . + - _`` and combining marks belong to no script. The script is the first word of the
    character's Unicode name ("CYRILLIC SMALL LETTER A"): exact for the letters of these alphabets,
    without a data file of its own."""
    if value.isascii():
        return {"LATIN"} if any(c.isalpha() for c in value) else set()
    scripts = set()
    for char in value:
        if unicodedata.category(char).startswith("L"):
            script = unicodedata.name(char, "").partition(" ")[0]
            if script in LOOKALIKE_SCRIPTS:
                scripts.add(script)
    return scripts


def is_mixed_script(value: str) -> bool:
    """Whether ``value`` mixes look-alike alphabets, as "sаra" (Cyrillic а) or "adмin" do."""
    return not value.isascii() and len(username_scripts(value)) > 1


def validate_username(value: Any, *, current: str | None = None) -> str:
    """A non-empty username of at most 150 letters, digits and ``@ . + - _`` without edge spaces,
    returned NFKC-normalised (review F9: fullwidth and compatibility look-alikes are the plain name).

    Letters from two look-alike alphabets are refused (``username_mixed_script``, second review N9):
    NFKC leaves Cyrillic "а" as it is, so "аdmin" was a second account that reads as "admin".
    ``current`` is the user's stored name on an update: keeping it unchanged never fails on this
    newer rule, so existing users stay as they are (``manage.py check`` lists them, ``idm.W031``)."""
    if not isinstance(value, str) or not value:
        raise ValidationFailed("username_required", "Enter a username.", field="username")
    value = normalize_username(value)
    if value != value.strip():
        raise ValidationFailed("username_spaces", "Remove leading or trailing spaces from the username.",
                               field="username")
    if len(value) > USERNAME_MAX:
        raise ValidationFailed("username_too_long", f"Usernames are at most {USERNAME_MAX} characters.",
                               field="username")
    if not _username_search(value):
        raise ValidationFailed(
            "username_invalid", "Usernames may contain only letters, digits and @ . + - _", field="username"
        )
    if not value.isascii():
        odd = next((c for c in value if _irregular_case(c)), None)
        if odd is not None:
            raise ValidationFailed(
                "username_ambiguous_case",
                f"Usernames may not contain {odd!r}: ignoring case turns it into another letter "
                f"({odd.upper().lower()!r}), so the name could pass for someone else's. Use that letter instead.",
                field="username",
            )
        if value != current and is_mixed_script(value):
            scripts = " and ".join(sorted(s.title() for s in username_scripts(value)))
            raise ValidationFailed(
                "username_mixed_script",
                f"Usernames may not mix {scripts} letters: some look alike, so the name could pass for "
                "someone else's. Type the whole name in one alphabet.",
                field="username",
            )
    return value


def validate_email(value: Any) -> str:
    """An empty string or a valid, normalised email address of at most 254 characters."""
    if value in (None, ""):
        return ""
    if not isinstance(value, str):
        raise ValidationFailed("email_invalid", "Enter a valid email address.", field="email")
    if value != value.strip():
        raise ValidationFailed("email_spaces", "Remove leading or trailing spaces from the email.", field="email")
    if len(value) > EMAIL_MAX:
        raise ValidationFailed("email_too_long", f"Email addresses are at most {EMAIL_MAX} characters.",
                               field="email")
    try:
        if not _plain_email(value):
            _email_validator(value)
    except ValidationError as exc:
        raise ValidationFailed("email_invalid", f"{value!r} is not a valid email address.", field="email") from exc
    return BaseUserManager.normalize_email(value)


def validate_name(value: Any, field_name: str) -> str:
    """A first or last name: text of at most 150 characters without edge spaces (``None`` -> "")."""
    value = "" if value is None else value
    if not isinstance(value, str):
        raise ValidationFailed("invalid", "Enter text.", field=field_name)
    if value != value.strip():
        raise ValidationFailed("spaces", "Remove leading or trailing spaces.", field=field_name)
    if len(value) > NAME_MAX:
        raise ValidationFailed("too_long", f"At most {NAME_MAX} characters.", field=field_name)
    if "\x00" in value or (not value.isascii() and not _encodable(value)):
        # PostgreSQL refuses NUL in text and nobody can store a lone surrogate: a coded error for
        # LDAP, SAML and every other channel instead of a DataError (review F6).
        raise ValidationFailed("invalid_character", "Remove the control character (NUL) or broken character.",
                               field=field_name)
    return value


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unusable_password() -> str:
    """Same as ``make_password(None)`` but ~20x faster (one token instead of 40 ``secrets.choice`` calls)."""
    return UNUSABLE_PASSWORD_PREFIX + secrets.token_urlsafe(30)


def hash_checked_password(raw: str, user: User) -> str:
    """Validate ``raw`` against the password rules for ``user`` and return its hash."""
    try:
        password_validation.validate_password(raw, user)
    except ValidationError as exc:
        raise ValidationFailed("password_invalid", " ".join(exc.messages), field="password") from exc
    return make_password(raw)
