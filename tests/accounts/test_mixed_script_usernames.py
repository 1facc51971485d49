"""Second review N9: usernames mixing look-alike alphabets ("sаra.sales", "аdmin" with a Cyrillic
"а", "adмin") are refused by the identity service, so every front door refuses them; names in one
alphabet stay allowed, and existing users are left as they are and listed by ``manage.py check``."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User

from accounts.checks import check_mixed_script_usernames
from accounts.exceptions import IdentityError, ValidationFailed
from accounts.identity.service import apply_identity_change
from accounts.identity.types import IdentityChange, Mode
from accounts.identity.validators import validate_username
from accounts.models import AuditEvent

pytestmark = pytest.mark.django_db
CYRILLIC_A, CYRILLIC_EM, GREEK_OMICRON = "\u0430", "\u043c", "\u03bf"
LOOKALIKES = [f"s{CYRILLIC_A}ra.sales", f"{CYRILLIC_A}dmin", f"ad{CYRILLIC_EM}in", f"r{GREEK_OMICRON}ot",
              f"ivan.{CYRILLIC_A}\u0434\u043c\u0438\u043d"]


@pytest.mark.parametrize("name", LOOKALIKES)
def test_mixed_script_names_are_refused_with_a_code(name):
    with pytest.raises(ValidationFailed) as info:
        validate_username(name)
    assert (info.value.code, info.value.field) == ("username_mixed_script", "username")
    assert "Latin" in info.value.message


@pytest.mark.parametrize("name", ["админ", "δοκιμή", "Émile.Zola", "山田たろう", "yamada.山田", "sara-2@x.example",
                                  "ｓａｒａ", "иван_петров.99"])
def test_names_in_one_alphabet_are_allowed(name):
    assert validate_username(name)


def create(name, org, actor):
    return apply_identity_change(change=IdentityChange(username=name, org_id=org.pk, mode=Mode.CREATE),
                                 actor=actor)


def test_the_service_refuses_a_look_alike_next_to_the_real_name_and_writes_nothing(root_org, system_actor):
    create("sara.sales", root_org, system_actor)
    events = AuditEvent.objects.count()
    with pytest.raises(IdentityError) as info:
        create(f"s{CYRILLIC_A}ra.sales", root_org, system_actor)
    assert info.value.code == "username_mixed_script"
    assert list(User.objects.values_list("username", flat=True)) == ["sara.sales"]
    assert AuditEvent.objects.count() == events
    create("сара.продажи", root_org, system_actor)  # one alphabet: a name of its own


def test_existing_mixed_script_users_stay_usable_and_are_listed_by_check(root_org, system_actor, user_factory):
    user = user_factory("plain.user")
    legacy = f"{CYRILLIC_A}dmin"
    User.objects.filter(pk=user.pk).update(username=legacy)  # as made before the rule
    result = apply_identity_change(change=IdentityChange(user_id=user.pk, mode=Mode.UPDATE, username=legacy,
                                                         email="admin@example.com"), actor=system_actor)
    assert result.status == "updated"
    assert User.objects.get(pk=user.pk).email == "admin@example.com"
    with pytest.raises(IdentityError) as info:  # renaming to another mixed name is a new name: refused
        apply_identity_change(change=IdentityChange(user_id=user.pk, mode=Mode.UPDATE, username=f"ad{CYRILLIC_EM}in"),
                              actor=system_actor)
    assert info.value.code == "username_mixed_script"
    User.objects.create(username="δοκιμή", password=make_password(None))
    problems = check_mixed_script_usernames(None, databases=["default"])
    assert [p.id for p in problems] == ["idm.W031"]
    assert repr(legacy) in problems[0].msg and "δοκιμή" not in problems[0].msg
    assert check_mixed_script_usernames(None) == []  # only with --database
