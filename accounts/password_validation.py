"""Password rules from the product description (code42-features.md §1.3) as Django validators.

Django's own validators cover length, common passwords and similarity to user attributes; these
add character classes, no whitespace, no runs of 3+ identical characters, no common words and no
reuse of recent passwords.
"""

from __future__ import annotations

import re

from django.contrib.auth.hashers import check_password
from django.core.exceptions import ValidationError


class CharacterClassValidator:
    """At least one uppercase letter, one lowercase letter and one digit."""

    def validate(self, password: str, user=None) -> None:
        missing = []
        if not re.search(r"[A-Z]", password):
            missing.append("an uppercase letter")
        if not re.search(r"[a-z]", password):
            missing.append("a lowercase letter")
        if not re.search(r"\d", password):
            missing.append("a number")
        if missing:
            raise ValidationError(
                "The password needs %(missing)s.", code="password_character_classes",
                params={"missing": ", ".join(missing)},
            )

    def get_help_text(self) -> str:
        return "Use at least one uppercase letter, one lowercase letter and one number."


class NoWhitespaceValidator:
    """No spaces (or other whitespace)."""

    def validate(self, password: str, user=None) -> None:
        if re.search(r"\s", password):
            raise ValidationError("The password cannot contain spaces.", code="password_whitespace")

    def get_help_text(self) -> str:
        return "Do not use spaces."


class RepeatedCharacterValidator:
    """No character repeated more than ``max_repeat`` times in a row ("aaa", "111")."""

    def __init__(self, max_repeat: int = 2):
        self.max_repeat = max_repeat

    def validate(self, password: str, user=None) -> None:
        if re.search(rf"(.)\1{{{self.max_repeat},}}", password.lower()):
            raise ValidationError(
                "The password cannot repeat a character %(n)d or more times in a row.",
                code="password_repeated", params={"n": self.max_repeat + 1},
            )

    def get_help_text(self) -> str:
        return f"Do not repeat a character {self.max_repeat + 1} or more times in a row."


class CommonWordValidator:
    """No common words such as "password" or "letmein" anywhere in the password."""

    WORDS = ("password", "passw0rd", "letmein", "welcome", "qwerty", "admin", "iloveyou", "monkey", "dragon")

    def validate(self, password: str, user=None) -> None:
        lowered = password.lower()
        for word in self.WORDS:
            if word in lowered:
                raise ValidationError(
                    "The password cannot contain the common word %(word)r.", code="password_common_word",
                    params={"word": word},
                )

    def get_help_text(self) -> str:
        return "Do not use common words such as 'password' or 'letmein'."


class PasswordHistoryValidator:
    """Never reuse one of the last ``history`` passwords (hashes kept in ``PasswordHistory``)."""

    def __init__(self, history: int = 5):
        self.history = history

    def validate(self, password: str, user=None) -> None:
        if user is None or getattr(user, "pk", None) is None:
            return
        from accounts.models import PasswordHistory

        for old in PasswordHistory.objects.filter(user_id=user.pk)[: self.history].values_list("password", flat=True):
            if check_password(password, old):
                raise ValidationError("You used this password recently; choose another.", code="password_reused")

    def get_help_text(self) -> str:
        return f"Do not reuse any of your last {self.history} passwords."
