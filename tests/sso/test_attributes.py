"""sso.attributes: pure mapping from SAML attributes to the identity idm signs in."""

from __future__ import annotations

import pytest

from sso.attributes import CLAIMS, OID_EPPN, OID_MAIL, PRESETS, Mapping, MappingFailed, map_identity


def test_default_mapping_uses_name_id_and_code42_names():
    got = map_identity(name_id="alice", attributes={"mail": ["a@x.test"], "givenName": ["A"], "sn": ["L"]},
                       mapping=Mapping())
    assert (got.username, got.email, got.first_name, got.last_name) == ("alice", "a@x.test", "A", "L")


def test_default_mapping_accepts_claim_uri_and_oid_aliases():
    got = map_identity(name_id="alice", attributes={f"{CLAIMS}emailaddress": ["a@x.test"], "urn:oid:2.5.4.42": ["A"]},
                       mapping=Mapping())
    assert (got.email, got.first_name) == ("a@x.test", "A")


def test_email_falls_back_to_email_shaped_name_id():
    assert map_identity(name_id="a@x.test", attributes={}, mapping=Mapping()).email == "a@x.test"


def test_custom_username_attribute():
    mapping = Mapping(username=OID_EPPN, email=OID_MAIL, use_aliases=False)
    got = map_identity(name_id="opaque", attributes={OID_EPPN: ["alice@uni.test"]}, mapping=mapping)
    assert (got.username, got.name_id) == ("alice@uni.test", "opaque")


def test_missing_name_id_or_username_attribute_fails():
    with pytest.raises(MappingFailed):
        map_identity(name_id="", attributes={}, mapping=Mapping())
    with pytest.raises(MappingFailed):
        map_identity(name_id="x", attributes={}, mapping=Mapping(username="uid"))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_maps_its_own_attribute_names(preset):
    names = PRESETS[preset][1]
    attrs = {names[f]: [f"{f}-value"] for f in ("email", "first_name", "last_name")}
    if names["username"]:
        attrs[names["username"]] = ["user-value"]
    mapping = Mapping(username=names["username"], email=names["email"], first_name=names["first_name"],
                      last_name=names["last_name"], use_aliases=False)
    got = map_identity(name_id="nid", attributes=attrs, mapping=mapping)
    assert (got.email, got.first_name, got.last_name) == ("email-value", "first_name-value", "last_name-value")
