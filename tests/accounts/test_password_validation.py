"""Password rules (code42-features.md §1.3) through Django's validate_password."""

from __future__ import annotations

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("Ab1", "password_too_short"),
        ("alllowercase1", "password_character_classes"),
        ("ALLUPPERCASE1", "password_character_classes"),
        ("NoDigitsHere", "password_character_classes"),
        ("Has Space1x", "password_whitespace"),
        ("Abccc12345", "password_repeated"),
        ("Letmein2024X", "password_common_word"),
        ("MyPassword9", "password_common_word"),
    ],
)
def test_rule_violations_have_codes(password, code):
    with pytest.raises(ValidationError) as err:
        validate_password(password)
    assert code in {e.code for e in err.value.error_list}


def test_good_password_passes():
    validate_password("Zebra-Lamp-42x")


def test_reuse_of_recent_password_refused(user_factory):
    from accounts.identity.service import apply_identity_change
    from accounts.identity.types import Actor, IdentityChange

    user = user_factory("hist", password="First-Lemon-11")
    for pw in ("Second-Lemon-22", "Third-Lemon-33"):
        apply_identity_change(actor=Actor.system(), change=IdentityChange(user_id=user.pk, password=pw))
    with pytest.raises(ValidationError) as err:
        validate_password("First-Lemon-11", user)
    assert "password_reused" in {e.code for e in err.value.error_list}


def test_generated_admin_passwords_always_pass_the_rules():
    from accounts.management.commands.create_first_admin import _generated_password

    for _ in range(300):
        validate_password(_generated_password())
