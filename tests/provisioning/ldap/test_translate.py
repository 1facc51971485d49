"""provisioning.ldap.translate: directory entries → DirectoryUser / groups. Pure, no database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from accounts.exceptions import MappingError
from provisioning.dn import normalize_dn
from provisioning.ldap.translate import (
    ACTIVE_DIRECTORY,
    FREEIPA,
    OPENLDAP,
    PRESETS,
    DirectoryGroupEntry,
    decode_anchor,
    expand_memberships,
    filetime_to_datetime,
    inactive_reason,
    translate_group,
    translate_user,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
GUID = uuid.UUID("775eb68c-28c2-4549-91a2-8fb679c92f47")


def filetime(when: datetime) -> bytes:
    ticks = int((when - datetime(1601, 1, 1, tzinfo=UTC)).total_seconds() * 10_000_000)
    return str(ticks).encode()


def ad_entry(**extra: list[bytes]) -> dict[str, list[bytes]]:
    entry = {
        "sAMAccountName": [b"jdoe"], "mail": [b"jdoe@corp.example"], "givenName": [b"J\xc3\xbcrgen"],
        "sn": [b"Doe"], "objectGUID": [GUID.bytes_le], "userAccountControl": [b"512"],
        "uSNChanged": [b"4242"], "accountExpires": [b"9223372036854775807"],
    }
    entry.update(extra)
    return entry


def reason(**attrs: str) -> str:
    return inactive_reason({k.lower(): [v.encode()] for k, v in attrs.items()}, now=NOW)


# --- users -------------------------------------------------------------------------------------


def test_ad_user_is_translated_with_guid_anchor_and_unicode_names():
    user = translate_user("CN=Doe\\, J\\C3\\BCrgen,OU=Sales,DC=corp,DC=example", ad_entry(), ACTIVE_DIRECTORY,
                          now=NOW)
    assert user.anchor == "775eb68c-28c2-4549-91a2-8fb679c92f47"
    assert (user.username, user.email, user.first_name, user.last_name) == (
        "jdoe", "jdoe@corp.example", "Jürgen", "Doe")
    assert user.active is True and user.inactive_reason == ""
    assert user.changed == "4242"
    assert user.dn == "cn=doe\\, jürgen,ou=sales,dc=corp,dc=example"
    assert user.attributes["samaccountname"] == ("jdoe",)
    assert "objectguid" not in user.attributes  # binary anchor is not a rule input


def test_attribute_names_are_case_insensitive():
    entry = {k.upper(): v for k, v in ad_entry().items()}
    assert translate_user("CN=x,DC=corp", entry, ACTIVE_DIRECTORY, now=NOW).username == "jdoe"


def test_values_are_stripped_and_the_first_value_wins():
    entry = ad_entry(mail=[b"  first@corp.example ", b"second@corp.example"])
    assert translate_user("CN=x,DC=corp", entry, ACTIVE_DIRECTORY, now=NOW).email == "first@corp.example"


def test_missing_optional_attributes_become_empty_strings():
    entry = {"uid": [b"ann"], "entryUUID": [b"3198C6F0-808F-1041-8438-5BD05B191077"]}
    user = translate_user("uid=ann,ou=people,dc=example,dc=org", entry, OPENLDAP, now=NOW)
    assert (user.email, user.first_name, user.last_name, user.changed) == ("", "", "", "")
    assert user.anchor == "3198c6f0-808f-1041-8438-5bd05b191077"


def test_missing_anchor_is_a_coded_error_naming_the_attribute():
    entry = ad_entry()
    del entry["objectGUID"]
    with pytest.raises(MappingError) as caught:
        translate_user("CN=x,DC=corp", entry, ACTIVE_DIRECTORY, now=NOW)
    assert caught.value.code == "missing_anchor"
    assert caught.value.field == "objectGUID"
    assert caught.value.message == (
        "The entry CN=x,DC=corp has no objectGUID; idm links directory users by it. Check that the sync "
        "account may read it.")


@pytest.mark.parametrize("value", [[], [b""], [b"   "]])
def test_missing_username_is_a_coded_error(value):
    with pytest.raises(MappingError) as caught:
        translate_user("CN=x,DC=corp", ad_entry(sAMAccountName=value), ACTIVE_DIRECTORY, now=NOW)
    assert caught.value.code == "missing_username"
    assert caught.value.field == "sAMAccountName"
    assert caught.value.message == "The entry CN=x,DC=corp has no sAMAccountName (the username attribute)."


def test_binary_values_that_are_not_utf8_are_left_out_of_rule_attributes():
    entry = ad_entry(thumbnailPhoto=[b"\xff\xd8\xff"], department=[b"Sales", b"\xff"])
    user = translate_user("CN=x,DC=corp", entry, ACTIVE_DIRECTORY, now=NOW)
    assert user.attributes["thumbnailphoto"] == ()
    assert user.attributes["department"] == ("Sales",)


def test_guid_must_be_sixteen_bytes():
    with pytest.raises(MappingError) as caught:
        decode_anchor(b"\x01\x02", is_guid=True)
    assert (caught.value.code, caught.value.field) == ("invalid_anchor", "anchor")
    assert caught.value.message == "The objectGUID value is not 16 bytes long."


def test_text_anchor_is_lower_cased_and_must_be_text():
    assert decode_anchor(b" ABC-def ", is_guid=False) == "abc-def"
    with pytest.raises(MappingError) as caught:
        decode_anchor(b"\xff\xfe", is_guid=False)
    assert (caught.value.code, caught.value.field) == ("invalid_anchor", "anchor")
    assert caught.value.message == "The anchor attribute is not text."


# --- active state ------------------------------------------------------------------------------


@pytest.mark.parametrize(("uac", "expected"), [
    ("512", ""), ("514", "disabled"), ("66050", "disabled"), ("66048", ""), ("2", "disabled"),
    ("0", ""), ("garbage", ""), ("", ""), (" 514", "disabled"), ("-2", "disabled"),
])
def test_user_account_control_disabled_bit(uac, expected):
    assert reason(userAccountControl=uac) == expected


def test_expired_entry_is_inactive_as_of_now():
    entry = ad_entry(accountExpires=[filetime(NOW - timedelta(days=1))])
    user = translate_user("CN=x,DC=corp", entry, ACTIVE_DIRECTORY, now=NOW)
    assert (user.active, user.inactive_reason) == (False, "expired")
    later = ad_entry(accountExpires=[filetime(NOW + timedelta(days=1))])
    assert translate_user("CN=x,DC=corp", later, ACTIVE_DIRECTORY, now=NOW).active is True


def test_disabled_entry_is_inactive_with_reason():
    user = translate_user("CN=x,DC=corp", ad_entry(userAccountControl=[b"514"]), ACTIVE_DIRECTORY, now=NOW)
    assert (user.active, user.inactive_reason) == (False, "disabled")


def test_account_expires():
    assert reason(accountExpires=filetime(NOW - timedelta(seconds=1)).decode()) == "expired"
    assert reason(accountExpires=filetime(NOW).decode()) == "expired"
    assert reason(accountExpires=filetime(NOW + timedelta(minutes=1)).decode()) == ""
    assert reason(accountExpires="0") == ""
    assert reason(accountExpires="9223372036854775807") == ""
    assert reason(accountExpires="-5") == ""


def test_filetime_conversion():
    assert filetime_to_datetime(116444736000000000) == datetime(1970, 1, 1, tzinfo=UTC)
    assert filetime_to_datetime(116444736000000010) == datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    assert filetime_to_datetime(0) is None
    assert filetime_to_datetime(0x7FFFFFFFFFFFFFFF) is None
    assert filetime_to_datetime(-1) is None


def test_shadow_expire_in_days_since_1970():
    today = (NOW.date() - datetime(1970, 1, 1, tzinfo=UTC).date()).days
    assert reason(shadowExpire=str(today)) == "expired"
    assert reason(shadowExpire=str(today - 1)) == "expired"
    assert reason(shadowExpire=str(today + 1)) == ""
    assert reason(shadowExpire="-1") == ""
    assert reason(shadowExpire="0") == "expired"


def test_389_and_freeipa_account_lock():
    assert reason(nsAccountLock="TRUE") == "locked"
    assert reason(nsAccountLock="true") == "locked"
    assert reason(nsAccountLock="FALSE") == ""


def test_openldap_ppolicy_lock():
    assert reason(pwdAccountLockedTime="000001010000Z") == "locked"
    assert reason(pwdAccountLockedTime="20261129120000Z") == "locked"
    assert reason() == ""


def test_disabled_wins_over_expired_and_locked():
    assert reason(userAccountControl="514", accountExpires="1", nsAccountLock="TRUE") == "disabled"
    assert reason(accountExpires="1", nsAccountLock="TRUE") == "expired"


# --- DNs and groups ----------------------------------------------------------------------------


def test_normalize_dn_folds_case_spaces_and_escapes():
    assert normalize_dn("CN=Smith\\, John, OU=Sales,DC=Corp") == normalize_dn("cn=smith\\2c john,ou=sales,dc=corp")
    assert normalize_dn("CN=Smith\\, John, OU=Sales,DC=Corp") == "cn=smith\\, john,ou=sales,dc=corp"


def test_invalid_dn_is_a_coded_error():
    with pytest.raises(MappingError) as caught:
        normalize_dn("not a dn")
    assert (caught.value.code, caught.value.field) == ("invalid_dn", "dn")
    assert caught.value.message == "'not a dn' is not a valid distinguished name."


def test_group_members_are_normalized_and_unique_member_suffixes_dropped():
    group = translate_group(
        "CN=Eng,OU=Groups,DC=corp",
        {"cn": [b"Eng"], "entryUUID": [b"G-1"],
         "member": [b"not a dn", b"UID=a,OU=People,DC=corp", b"CN=Team #1,OU=Groups,DC=corp"],
         "uniqueMember": [b"uid=b,ou=people,dc=corp#'0101'B"]},
        OPENLDAP,
    )
    assert group == DirectoryGroupEntry(
        dn="cn=eng,ou=groups,dc=corp", anchor="g-1", name="Eng",
        members=frozenset({"uid=a,ou=people,dc=corp", "uid=b,ou=people,dc=corp", "cn=team #1,ou=groups,dc=corp"}),
    )


def test_group_without_name_uses_its_dn_and_without_anchor_is_refused():
    group = translate_group("CN=X,DC=corp", {"objectGUID": [GUID.bytes_le]}, ACTIVE_DIRECTORY)
    assert (group.name, group.anchor, group.members) == ("CN=X,DC=corp", str(GUID), frozenset())
    with pytest.raises(MappingError) as caught:
        translate_group("CN=X,DC=corp", {"cn": [b"X"]}, ACTIVE_DIRECTORY)
    assert (caught.value.code, caught.value.field) == ("missing_anchor", "objectGUID")
    assert caught.value.message == "The group CN=X,DC=corp has no objectGUID."


def _group(name: str, *members: str) -> DirectoryGroupEntry:
    return DirectoryGroupEntry(dn=name, anchor=name, name=name, members=frozenset(members))


def test_nested_groups_are_expanded_transitively():
    closure = expand_memberships([_group("all", "staff"), _group("staff", "eng", "ann"), _group("eng", "bob")])
    assert closure["bob"] == {"eng", "staff", "all"}
    assert closure["ann"] == {"staff", "all"}
    assert closure["eng"] == {"staff", "all"}
    assert "all" not in closure  # a member of nothing


def test_every_path_up_the_tree_is_followed():
    # u is in a and x; a is in b and c; c is in b and d; b is in e.  Shared ancestors are reached twice.
    closure = expand_memberships([
        _group("a", "u"), _group("x", "u"), _group("b", "a", "c"), _group("c", "a"), _group("d", "c"),
        _group("e", "b"), _group("y", "x"),
    ])
    assert closure["u"] == {"a", "x", "b", "c", "d", "e", "y"}
    assert closure["c"] == {"b", "d", "e"}


def test_group_cycles_terminate_and_include_every_group_in_the_cycle():
    closure = expand_memberships([_group("a", "b", "u"), _group("b", "a"), _group("c", "c", "v")])
    assert closure["u"] == {"a", "b"}
    assert closure["a"] == {"a", "b"}
    assert closure["v"] == {"c"}


def test_presets_name_their_anchor_and_exclude_computer_accounts():
    assert set(PRESETS) == {"active-directory", "openldap", "freeipa"}
    assert "objectCategory=person" in ACTIVE_DIRECTORY.user_filter
    assert (ACTIVE_DIRECTORY.anchor, OPENLDAP.anchor, FREEIPA.anchor) == ("objectGUID", "entryUUID", "ipaUniqueID")
    assert "userAccountControl" in ACTIVE_DIRECTORY.user_attributes
    assert "uSNChanged" in ACTIVE_DIRECTORY.user_attributes
    assert ACTIVE_DIRECTORY.group_attributes == ("cn", "objectGUID", "member", "uSNChanged")


@pytest.mark.parametrize("dn", [
    "uid=user000001,ou=dept01,ou=people,dc=example,dc=org",
    "UID=J.Doe@Corp-1,OU=People_2,DC=Example",
    "uid=-lead,dc=x",
    "CN=Alice Smith,CN=Users,DC=idm,DC=test",
    "cn = spaced , ou = x",
    "CN=Smith\\, John,OU=Sales,DC=corp",
    "cn=a+sn=b,dc=x",
    "cn=Team #1,dc=x",
    "cn=#04024869,dc=x",
    "cn=J\\C3\\BCrgen,dc=x",
    "cn=Jürgen,dc=x",
    "cn=a\\=b,dc=x",
    "cn=\"quoted, value\",dc=x",
    "cn=trailing\\ ,dc=x",
    "2.5.4.3=oid,dc=x",
])
def test_normalize_dn_fast_path_agrees_with_the_parser(dn):
    import ldap.dn as ldap_dn

    parsed = ldap_dn.dn2str([[(a.lower(), v.lower(), k) for a, v, k in rdn] for rdn in ldap_dn.str2dn(dn)])
    assert normalize_dn(dn) == parsed


@pytest.mark.parametrize("dn", ["", "cn=", "=x", "cn=a,", "no equals"])
def test_normalize_dn_refuses_what_the_parser_refuses(dn):
    import ldap.dn as ldap_dn

    try:
        ldap_dn.str2dn(dn)
    except ldap_dn.ldap.DECODING_ERROR:
        with pytest.raises(MappingError):
            normalize_dn(dn)
    else:
        normalize_dn(dn)  # accepted by both


@pytest.mark.parametrize("dn", ["cn=\\ff,dc=x", "k =@-a@\\aaek"])
def test_an_escape_that_is_not_utf8_is_an_invalid_dn_not_a_crash(dn):
    # python-ldap's parser raises UnicodeDecodeError for these, not DECODING_ERROR.
    with pytest.raises(MappingError) as err:
        normalize_dn(dn)
    assert err.value.code == "invalid_dn"


def test_is_valid_dn():
    from provisioning.dn import is_valid_dn

    assert is_valid_dn("cn=a,dc=x") and is_valid_dn("CN=Smith\\, John,DC=x")
    assert not is_valid_dn("") and not is_valid_dn("  ") and not is_valid_dn("no equals") and not is_valid_dn("=x")


def test_a_sync_builds_the_same_record_as_source_record_build():
    """The sync builds records without re-normalising (``sync._record``); the skip of unchanged
    entries compares them with stored ``SourceRecord.build`` output, so they must be equal."""
    from provisioning.ldap.sync import GroupRefs, _record
    from provisioning.rules import SourceRecord

    groups = [translate_group(dn, {"cn": [name.encode()], "entryUUID": [str(uuid.uuid4()).encode()],
                                   "member": [b"UID=Zo\\C3\\AB\\2C Jr,OU=People,DC=Example"]}, OPENLDAP)
              for dn, name in [("CN=Ops\\, EMEA,OU=Groups,DC=Example", "Ops, EMEA"),
                               ("cn=Team\\=Sales\\+,ou=groups,dc=example", "Team=Sales+"),
                               ("cn=Ünïcode,ou=groups,dc=example", "ÜNÏCODE Straße")]]
    closure = expand_memberships(groups)
    user = translate_user("UID=Zo\\C3\\AB\\2C Jr,OU=People,DC=Example",
                          {"uid": [b"zoe"], "entryUUID": [str(GUID).encode()], "SN": ["Zoë".encode()],
                           "mail": [b"z@example.org"], "pwdAccountLockedTime": [b"20260101000000Z"]},
                          OPENLDAP, now=NOW)
    names = {g.dn: g.name for g in groups}
    group_dns = closure[user.dn]
    expected = SourceRecord.build(attributes=user.attributes, dn=user.dn, active=user.active,
                                  groups=list(group_dns) + [names[dn] for dn in group_dns])
    refs = GroupRefs(closure, names).of(user.dn)
    assert _record(user, refs) == expected
    assert _record(user, refs).to_json() == expected.to_json()
    assert len(expected.groups) == 6 and expected.active is False


def test_a_shared_dn_cache_gives_the_same_dns_and_learns_member_dns():
    cache: dict[str, str] = {}
    raw = "UID=Zo\\C3\\AB\\2C Jr,OU=People,DC=Example"
    group = translate_group("CN=Ops,OU=Groups,DC=Example", {"cn": [b"Ops"], "entryUUID": [b"x"],
                                                            "member": [raw.encode()]}, OPENLDAP, dn_cache=cache)
    assert group.members == {normalize_dn(raw)} and cache == {raw: normalize_dn(raw)}
    user = translate_user(raw, {"uid": [b"zoe"], "entryUUID": [b"y"]}, OPENLDAP, now=NOW, dn_cache=cache)
    other = translate_user("uid=other,ou=people,dc=example", {"uid": [b"o"], "entryUUID": [b"z"]}, OPENLDAP,
                           now=NOW, dn_cache=cache)
    assert user.dn == normalize_dn(raw) and other.dn == "uid=other,ou=people,dc=example"
    assert len(cache) == 1  # entries are read once: only member DNs are kept
