"""Review 2026-11-30 F9: usernames are NFKC-normalised and compared case-insensitively on both
databases; look-alikes are refused or become the plain name; sign-in and SSO never pick one of
several legacy rows that share a name."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection

from accounts.checks import check_username_collisions
from accounts.exceptions import IdentityError, ValidationFailed
from accounts.identity.service import apply_identity_change
from accounts.identity.types import IdentityChange, Mode
from accounts.identity.validators import username_key, validate_username
from accounts.selectors import user_by_username, users_named
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db
on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL case mapping")
on_sqlite = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's ASCII-only lower()")


@pytest.mark.parametrize(("typed", "stored"), [
    ("ａｌｉｃｅ.admin", "alice.admin"),  # fullwidth
    ("ſam.sales", "sam.sales"),  # long s
    ("Émile", "Émile"),
    ("E\u0301mile", "Émile"),  # decomposed accent: one spelling
    ("ﬁona", "fiona"),  # ligature
])
def test_usernames_are_stored_nfkc_normalised(typed, stored):
    assert validate_username(typed) == stored


@pytest.mark.parametrize("name", ["alıce.admin", "straße", "ΟΔΥΣΣΕΥΣ.ς", "İstanbul"])
def test_letters_whose_case_folding_is_not_one_to_one_are_refused(name):
    with pytest.raises(ValidationFailed) as info:
        validate_username(name)
    assert (info.value.code, info.value.field) == ("username_ambiguous_case", "username")


def test_the_comparison_key_is_casefold_of_nfkc():
    for name in ["Émile", "ÉMILE", "ａｌｉｃｅ", "Sam.Sales"]:
        assert username_key(name) == validate_username(name).casefold()


def create(username, org, system_actor, **fields):
    return apply_identity_change(change=IdentityChange(
        username=username, email=fields.pop("email", ""), org_id=org.pk, mode=Mode.CREATE, **fields),
        actor=system_actor)


@pytest.mark.parametrize(("first", "second"), [
    ("Émile", "émile"),
    ("émile", "ÉMILE"),
    ("alice.admin", "ａｌｉｃｅ.admin"),
    ("alice.admin", "ＡＬＩＣＥ.ADMIN"),
    ("sam.sales", "ſam.sales"),
    ("ſam.sales", "Sam.Sales"),
])
def test_a_second_user_with_the_same_normalised_name_is_refused(root_org, system_actor, first, second):
    create(first, root_org, system_actor)
    with pytest.raises(IdentityError) as info:
        create(second, root_org, system_actor)
    assert info.value.code == "username_taken"
    assert User.objects.count() == 1
    assert User.objects.get().username == validate_username(first)


def test_renaming_onto_a_normalised_name_is_refused(root_org, system_actor, user_factory):
    user_factory("Émile", email="emile@example.com")
    other = user_factory("zoe")
    with pytest.raises(IdentityError) as info:
        apply_identity_change(change=IdentityChange(user_id=other.pk, username="émile", mode=Mode.UPDATE),
                              actor=system_actor)
    assert info.value.code == "username_taken"
    other.refresh_from_db()
    assert other.username == "zoe"


def test_fullwidth_sign_in_finds_the_plain_account(client, user_factory):
    user_factory("alice.admin", roles=["console-user"])
    response = client.post("/sign-in/", {"username": "ａｌｉｃｅ.admin", "password": TEST_PASSWORD, "next": "/"})
    assert response.status_code == 302
    assert int(client.session["_auth_user_id"]) == User.objects.get(username="alice.admin").pk


def _legacy(*names: str) -> list[User]:
    """Rows written straight to the table, as before names were normalised."""
    return [User.objects.create(username=n, password=make_password(TEST_PASSWORD)) for n in names]


def _assert_refused_everywhere(client, typed: str, rows: list[User]):
    assert {u.pk for u in users_named(typed, limit=5)} == {u.pk for u in rows}
    assert user_by_username(typed) is None
    response = client.post("/sign-in/", {"username": typed, "password": TEST_PASSWORD, "next": "/"})
    assert response.status_code == 400
    assert "The username or password is not correct." in response.content.decode()
    assert "_auth_user_id" not in client.session
    problems = check_username_collisions(None, databases=["default"])
    assert [p.id for p in problems] == ["idm.W030"]
    assert all(repr(u.username) in problems[0].msg for u in rows)


@on_sqlite
def test_sqlite_legacy_case_variants_are_refused_not_picked(client):
    rows = _legacy("Émile", "émile")  # SQLite's lower() index let both in
    _assert_refused_everywhere(client, "émile", rows)
    _assert_refused_everywhere(client, "Émile", rows)


@on_postgresql
def test_postgresql_legacy_long_s_rows_are_refused_not_picked(client):
    rows = _legacy("sam.sales", "ſam.sales")  # lower('ſ') is 'ſ': the unique index let both in
    assert User.objects.filter(username__iexact="sam.sales").count() == 2  # what the review saw
    _assert_refused_everywhere(client, "sam.sales", rows)
    _assert_refused_everywhere(client, "ſam.sales", rows)


@on_postgresql
def test_postgresql_dotless_i_is_refused_and_legacy_rows_stay_apart(client, root_org, system_actor):
    create("alice.admin", root_org, system_actor)
    with pytest.raises(ValidationFailed) as info:
        create("alıce.admin", root_org, system_actor)
    assert info.value.code == "username_ambiguous_case"
    legacy = _legacy("alıce.admin")[0]
    # upper() pairs them (the review's iexact saw two users); the normalised comparison does not.
    assert User.objects.filter(username__iexact="alice.admin").count() == 2
    assert user_by_username("alice.admin") == User.objects.get(username="alice.admin")
    assert user_by_username("alıce.admin") == legacy


def test_no_warning_without_collisions(user_factory):
    user_factory("Émile", email="emile@example.com")
    user_factory("emile")  # a different name: accents count
    assert check_username_collisions(None, databases=["default"]) == []
    assert check_username_collisions(None) == []  # only with --database


def test_check_command_reports_collisions():
    _legacy("Émile", "émile") if connection.vendor == "sqlite" else _legacy("sam.sales", "ſam.sales")
    with pytest.raises(SystemCheckError):
        call_command("check", "--database", "default", "--fail-level", "WARNING")


@pytest.mark.parametrize("value", ["a\x00b", "x\ud800"])
def test_names_with_unstorable_characters_are_a_coded_error_on_every_channel(root_org, system_actor, value):
    with pytest.raises(ValidationFailed) as info:
        create("nul.name", root_org, system_actor, first_name=value)
    assert (info.value.code, info.value.field) == ("invalid_character", "first_name")
    assert not User.objects.filter(username="nul.name").exists()
