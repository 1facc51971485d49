"""provisioning.scim.filters: the RFC 7644 filter grammar, PATCH paths, and compiling to ORM queries.

Parser tests need no database; the compiler runs its queries on the real test database (SQLite
and PostgreSQL in CI) against Django's own User, with an attribute map like the Users endpoint's.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group, User

from provisioning.scim.filters import (
    MAX_DEPTH,
    MAX_FILTER_LENGTH,
    And,
    Attribute,
    AttrPath,
    Compare,
    FilterCompiler,
    Not,
    Or,
    PatchPath,
    ScimFilterError,
    ValuePath,
    compile_filter,
    parse_filter,
    parse_patch_path,
)

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def cmp(attr: str, op: str, value=None, sub: str | None = None, schema: str | None = None) -> Compare:
    return Compare(AttrPath(attr, sub, schema), op, value)


# --- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ('userName eq "bjensen"', cmp("userName", "eq", "bjensen")),
    ('userName Eq "bjensen"', cmp("userName", "eq", "bjensen")),
    ('name.familyName co "O\'Malley"', cmp("name", "co", "O'Malley", sub="familyName")),
    ('userName sw "J"', cmp("userName", "sw", "J")),
    ('title pr', cmp("title", "pr")),
    ('title PR', cmp("title", "pr")),
    ('meta.lastModified gt "2011-05-13T04:42:34Z"', cmp("meta", "gt", "2011-05-13T04:42:34Z", sub="lastModified")),
    ('meta.lastModified ge "x"', cmp("meta", "ge", "x", sub="lastModified")),
    ('meta.lastModified lt "x"', cmp("meta", "lt", "x", sub="lastModified")),
    ('meta.lastModified le "x"', cmp("meta", "le", "x", sub="lastModified")),
    ('userName ne "x"', cmp("userName", "ne", "x")),
    ('userName ew "x"', cmp("userName", "ew", "x")),
    ('active eq true', cmp("active", "eq", True)),
    ('active eq True', cmp("active", "eq", True)),
    ('active eq FALSE', cmp("active", "eq", False)),
    ('manager eq null', cmp("manager", "eq", None)),
    ('age gt 30', cmp("age", "gt", 30)),
    ('score lt -1.5e3', cmp("score", "lt", -1500.0)),
    ('userName eq "a\\"b"', cmp("userName", "eq", 'a"b')),
    ('userName eq "caf\\u00e9 \\\\ /"', cmp("userName", "eq", "café \\ /")),
    (f'{ENTERPRISE}:employeeNumber eq "701984"', cmp("employeeNumber", "eq", "701984", schema=ENTERPRISE)),
    (f'{ENTERPRISE}:manager.value eq "26118915"', cmp("manager", "eq", "26118915", sub="value", schema=ENTERPRISE)),
    (f'{CORE_USER}:name.givenName eq "B"', cmp("name", "eq", "B", sub="givenName", schema=CORE_USER)),
])
def test_single_expressions(text, expected):
    assert parse_filter(text) == expected


def test_not_binds_tighter_than_and_and_and_tighter_than_or():
    a, b, c = cmp("a", "pr"), cmp("b", "pr"), cmp("c", "pr")
    assert parse_filter("a pr or b pr and c pr") == Or(a, And(b, c))
    assert parse_filter("a pr and b pr or c pr") == Or(And(a, b), c)
    assert parse_filter("(a pr or b pr) and c pr") == And(Or(a, b), c)
    assert parse_filter("not (a pr) and b pr") == And(Not(a), b)
    assert parse_filter("a pr AND not(b pr or c pr)") == And(a, Not(Or(b, c)))
    assert parse_filter("a pr or b pr or c pr") == Or(Or(a, b), c)


def test_value_path_filters():
    assert parse_filter('emails[type eq "work" and value co "@example.com"]') == ValuePath(
        AttrPath("emails"), And(cmp("type", "eq", "work"), cmp("value", "co", "@example.com")))
    assert parse_filter('userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")') == \
        And(cmp("userType", "eq", "Employee"),
            Or(cmp("emails", "co", "example.com"), cmp("emails", "co", "example.org", sub="value")))


@pytest.mark.parametrize(("text", "message"), [
    ("", "The filter is empty."),
    ("   ", "The filter is empty."),
    ("userName", 'The filter ends where an operator after "userName" was expected.'),
    ('userName eq', "The filter ends where a value was expected."),
    ('userName xx "a"', "Unknown operator 'xx' at position 10."),
    ('userName eq bjensen', "Expected a value (a quoted string, a number, true, false or null) at position 13, "
                            "found 'bjensen'."),
    ('userName eq "a" extra', "Unexpected 'extra' at position 17."),
    ('userName eq "unterminated', "Unexpected character '\"' at position 13."),
    ('(userName pr', 'The filter ends where ")" was expected.'),
    ('not userName pr', 'Expected "(" after "not" at position 5, found \'userName\'.'),
    ('emails[type eq "work"', 'The filter ends where "]" was expected.'),
    ('"a" eq "b"', "Expected an attribute name at position 1, found '\"a\"'."),
    ('userName eq "a" or', 'The filter ends where an attribute or "(" was expected.'),
    ('userName eq "a"; drop', "Unexpected character ';' at position 16."),
    ('userName eq 01', "Unexpected character '0' at position 13."),
])
def test_invalid_filters_say_where_and_why(text, message):
    with pytest.raises(ScimFilterError) as caught:
        parse_filter(text)
    assert caught.value.message == message
    assert (caught.value.status, caught.value.scim_type, caught.value.code) == (400, "invalidFilter",
                                                                                "invalid_filter")


def test_length_and_depth_are_bounded():
    with pytest.raises(ScimFilterError) as caught:
        parse_filter('userName eq "' + "a" * MAX_FILTER_LENGTH + '"')
    assert caught.value.message == f"The filter is longer than {MAX_FILTER_LENGTH} characters."
    nested = "(" * (MAX_DEPTH + 1) + "a pr" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(ScimFilterError) as caught:
        parse_filter(nested)
    assert caught.value.message == f"The filter nests deeper than {MAX_DEPTH} levels."
    ok = "(" * (MAX_DEPTH - 1) + "a pr" + ")" * (MAX_DEPTH - 1)
    assert parse_filter(ok) == cmp("a", "pr")


# --- PATCH paths -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("active", PatchPath(AttrPath("active"))),
    ("name.givenName", PatchPath(AttrPath("name", "givenName"))),
    ('emails[type eq "work"].value', PatchPath(AttrPath("emails"), cmp("type", "eq", "work"), "value")),
    ('members[value eq "2819c223"]', PatchPath(AttrPath("members"), cmp("value", "eq", "2819c223"))),
    (f"{ENTERPRISE}:department", PatchPath(AttrPath("department", schema=ENTERPRISE))),
    (f"{ENTERPRISE}:manager.value", PatchPath(AttrPath("manager", "value", ENTERPRISE))),
    ('addresses[type eq "work" and primary eq true].locality',
     PatchPath(AttrPath("addresses"), And(cmp("type", "eq", "work"), cmp("primary", "eq", True)), "locality")),
])
def test_patch_paths(text, expected):
    assert parse_patch_path(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("", "The path is empty."),
    ('members[value eq "1"', 'The filter ends where "]" was expected.'),
    ("name.givenName[type eq \"x\"]", "A value filter cannot follow the sub-attribute in 'name.givenName[type eq \"x\"]'."),
    ('"quoted"', "Expected an attribute name at position 1, found '\"quoted\"'."),
    ("active eq true", "Unexpected 'eq' at position 8."),
])
def test_invalid_patch_paths_are_invalid_path(text, message):
    with pytest.raises(ScimFilterError) as caught:
        parse_patch_path(text)
    assert (caught.value.scim_type, caught.value.code, caught.value.message) == ("invalidPath", "invalid_path",
                                                                                 message)


# --- compiling against the database ------------------------------------------------------------

USERS = FilterCompiler(
    {
        "userName": Attribute("username"),
        "name.givenName": Attribute("first_name"),
        "name.familyName": Attribute("last_name", case_exact=True),
        "emails.value": Attribute("email"),
        "emails.type": Attribute(constant="work"),
        "emails.primary": Attribute(kind="boolean", constant=True),
        "active": Attribute("is_active", kind="boolean"),
        "meta.created": Attribute("date_joined", kind="datetime"),
        "x-logins": Attribute("pk", kind="integer"),
        "groups.value": Attribute("groups__name", multi_valued=True),
    },
    schemas=(CORE_USER,),
)


@pytest.fixture
def people(db):
    made = {}
    for name, first, last, email, active, joined in [
        ("bjensen", "Barbara", "Jensen", "bjensen@example.com", True, datetime(2020, 1, 1, tzinfo=UTC)),
        ("BJones", "Bob", "jones", "bob@EXAMPLE.org", True, datetime(2021, 6, 1, tzinfo=UTC)),
        ("carol", "Carol", "", "", False, datetime(2022, 1, 1, tzinfo=UTC)),
        ('quo"te', "Q", "Uote", "q@example.com", True, datetime(2023, 1, 1, tzinfo=UTC)),
    ]:
        made[name] = User.objects.create(username=name, first_name=first, last_name=last, email=email,
                                         is_active=active, date_joined=joined)
    eng = Group.objects.create(name="Engineering")
    ops = Group.objects.create(name="Ops")
    made["bjensen"].groups.add(eng, ops)
    made["BJones"].groups.add(eng)
    return made


def names(text: str) -> list[str]:
    compiled = compile_filter(text, USERS)
    query = User.objects.filter(compiled.q)
    if compiled.distinct:
        query = query.distinct()
    return sorted(query.values_list("username", flat=True))


@pytest.mark.parametrize(("text", "expected"), [
    ('userName eq "BJENSEN"', ["bjensen"]),
    ('USERNAME eq "bjensen"', ["bjensen"]),
    (f'{CORE_USER}:userName eq "bjensen"', ["bjensen"]),
    ('userName sw "b"', ["BJones", "bjensen"]),
    ('userName ew "SEN"', ["bjensen"]),
    ('userName co "JE"', ["bjensen"]),
    ('userName ne "bjensen"', ["BJones", "carol", 'quo"te']),
    ('userName eq "quo\\"te"', ['quo"te']),
    ('userName gt "bk"', ["carol", 'quo"te']),
    ('userName ge "carol"', ["carol", 'quo"te']),
    ('userName lt "BJO"', ["bjensen"]),
    ('userName le "bjones"', ["BJones", "bjensen"]),
    ('name.familyName eq "jones"', ["BJones"]),
    ('name.familyName eq "Jones"', []),  # caseExact
    ('name.familyName pr', ["BJones", "bjensen", 'quo"te']),
    ('not (name.familyName pr)', ["carol"]),
    ('name.familyName eq null', ["carol"]),
    ('name.familyName ne null', ["BJones", "bjensen", 'quo"te']),
    ('emails co "example.com"', ["bjensen", 'quo"te']),
    ('emails.value ew "@example.org"', ["BJones"]),
    ('emails[type eq "work" and value co "EXAMPLE.COM"]', ["bjensen", 'quo"te']),
    ('emails[type eq "home"]', []),
    ('emails[primary eq true and value sw "bob"]', ["BJones"]),
    ('active eq true', ["BJones", "bjensen", 'quo"te']),
    ('active eq false', ["carol"]),
    ('active ne true', ["carol"]),
    ('meta.created gt "2021-01-01T00:00:00Z"', ["BJones", "carol", 'quo"te']),
    ('meta.created le "2021-06-01T00:00:00+00:00"', ["BJones", "bjensen"]),
    ('meta.created lt "2021-06-01T02:00:00+02:00"', ["bjensen"]),
    ('meta.created ge "2022-01-01T00:00:00"', ["carol", 'quo"te']),
    ('groups[value eq "engineering"]', ["BJones", "bjensen"]),
    ('groups.value eq "Ops" or userName eq "carol"', ["bjensen", "carol"]),
    ('not (groups.value eq "Engineering")', ["carol", 'quo"te']),
    ('userName sw "b" and not (emails co "example.org")', ["bjensen"]),
])
def test_compiled_filters_select_the_right_rows(people, text, expected):
    assert names(text) == expected


def test_multi_valued_attributes_ask_for_distinct(people):
    assert compile_filter('groups.value sw "e"', USERS).distinct is True
    assert compile_filter('userName eq "a"', USERS).distinct is False
    assert names('groups.value sw "e" or groups.value sw "o"') == ["BJones", "bjensen"]


@pytest.mark.parametrize(("text", "message"), [
    ('nickName eq "x"', "Unknown attribute nickName."),
    ('name.middleName eq "x"', "Unknown attribute name.middleName."),
    (f'{ENTERPRISE}:employeeNumber eq "1"', f"Unknown attribute {ENTERPRISE}:employeeNumber (schema {ENTERPRISE} "
                                            "is not supported)."),
    ('emails[display eq "x"]', "Unknown attribute emails.display."),
    ('emails[value.x eq "x"]', "Unknown attribute emails.value.x."),
    ('name[givenName eq "x"].familyName eq "y"', "Unexpected '.familyName' at position 23."),
    ('active eq "yes"', "'eq' cannot compare active with \"yes\"."),
    ('active gt true', "'gt' cannot compare active with true."),
    ('userName eq 5', "'eq' cannot compare userName with 5."),
    ('userName gt null', "'gt' cannot compare userName with null."),
    ('x-logins co 5', "'co' cannot compare x-logins with 5."),
    ('x-logins eq true', "'eq' cannot compare x-logins with true."),
    ('meta.created gt "yesterday"', 'meta.created needs an RFC 3339 date-time such as "2026-11-29T12:00:00Z".'),
    ('meta.created co "2020"', 'meta.created needs an RFC 3339 date-time such as "2026-11-29T12:00:00Z".'),
    # Review 3, L2: dates parse_datetime matches but cannot build were a 500 (ValueError, OverflowError).
    ('meta.created gt "9999-99-99T00:00:00Z"',
     'meta.created needs an RFC 3339 date-time such as "2026-11-29T12:00:00Z".'),
    ('meta.created gt "2020-01-01T00:00:00+99:99"',
     'meta.created needs an RFC 3339 date-time such as "2026-11-29T12:00:00Z".'),
    ('meta.created lt "0001-01-01T00:00:00+01:00"',
     'meta.created needs an RFC 3339 date-time such as "2026-11-29T12:00:00Z".'),
    ('meta.created gt "9999-12-31T23:59:59-23:00"',
     'meta.created needs an RFC 3339 date-time such as "2026-11-29T12:00:00Z".'),
    ('emails[type eq "work" and emails[value pr]]', "A value filter cannot contain another value filter."),
    # Review 4, L1: a lone surrogate or NUL escape reached the database (UnicodeEncodeError, a 500).
    ('userName eq "\\ud800"', "The string at position 13 contains a character that cannot be stored (NUL or an "
                              "unpaired surrogate)."),
    ('emails[value gt "a\\udfff"]', "The string at position 17 contains a character that cannot be stored (NUL or "
                                    "an unpaired surrogate)."),
    ('userName sw "x\\u0000"', "The string at position 13 contains a character that cannot be stored (NUL or an "
                               "unpaired surrogate)."),
])
def test_unknown_attributes_and_bad_values_are_refused_not_ignored(db, text, message):
    with pytest.raises(ScimFilterError) as caught:
        compile_filter(text, USERS)
    assert caught.value.message == message
    assert caught.value.scim_type == "invalidFilter"


def test_integer_attributes_compare_as_numbers(people):
    pk = people["carol"].pk
    assert names(f"x-logins eq {pk}") == ["carol"]
    assert names(f"x-logins ge {pk}") == ["carol", 'quo"te']


def test_custom_compile_hook_takes_over(people):
    from django.db.models import Q

    def active(op: str, value) -> Q:  # e.g. "active" stored as a state column
        inactive = Q(is_active=False)
        return ~inactive if (op == "eq") == bool(value) else inactive

    compiler = FilterCompiler({"active": Attribute(compile=active)})
    query = User.objects.filter(compile_filter("active eq false", compiler).q)
    assert list(query.values_list("username", flat=True)) == ["carol"]
    query = User.objects.filter(compile_filter("active ne false", compiler).q)
    assert sorted(query.values_list("username", flat=True)) == ["BJones", "bjensen", 'quo"te']


def test_case_insensitive_equality_uses_the_lower_index_form(db):
    sql = str(User.objects.filter(compile_filter('userName eq "BJensen"', USERS).q).query)
    assert 'LOWER("auth_user"."username") = bjensen' in sql
    assert "UPPER" not in sql
