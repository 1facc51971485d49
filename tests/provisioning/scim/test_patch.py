"""provisioning.scim.patch: RFC 7644 §3.5.2 PATCH on SCIM JSON, with the request shapes real clients send.

Request bodies marked "Okta" follow the examples of Okta's "SCIM 2.0 protocol reference" (user
deactivate, group rename that repeats the id, member add/remove); those marked "Entra" follow
Microsoft's "Known issues and resolutions with SCIM 2.0 protocol compliance of the Microsoft Entra
user provisioning service" (PascalCase ops, "False" strings, path-less value maps with dotted and
URN keys, legacy member removal with a value list) and its "Tutorial: Develop and plan
provisioning for a SCIM endpoint" (emails[type eq "work"].value). They are written from those
documents' shapes, with our own ids and names.
"""

from __future__ import annotations

import pytest

from provisioning.scim.patch import (
    MAX_OPERATIONS,
    PATCH_OP_SCHEMA,
    ResourceSchema,
    ScimPatchError,
    apply_patch,
    parse_operations,
)

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

USER = ResourceSchema(
    core_urn=CORE_USER,
    attributes=frozenset({"username", "name", "displayname", "emails", "active", "externalid", "title",
                          "phonenumbers", "id", "meta", "groups"}),
    multi_valued=frozenset({"emails", "phonenumbers", "groups"}),
    complex=frozenset({"name"}),
    booleans=frozenset({"active", "emails.primary"}),
    read_only=frozenset({"id", "meta", "schemas", "groups"}),
    extensions={ENTERPRISE: frozenset({"department", "employeenumber", "manager"})},
    spelling={"username": "userName", "displayname": "displayName", "externalid": "externalId",
              "phonenumbers": "phoneNumbers"},
)
GROUP = ResourceSchema(
    core_urn=CORE_GROUP,
    attributes=frozenset({"displayname", "members", "externalid", "id", "meta"}),
    multi_valued=frozenset({"members"}),
    spelling={"displayname": "displayName", "externalid": "externalId"},
)


def patch(*operations: dict) -> dict:
    return {"schemas": [PATCH_OP_SCHEMA], "Operations": list(operations)}


def alice() -> dict:
    return {
        "schemas": [CORE_USER], "id": "u1", "userName": "alice@example.com", "active": True,
        "name": {"givenName": "Alice", "familyName": "Smith"},
        "emails": [{"value": "alice@example.com", "type": "work", "primary": True}],
    }


def team() -> dict:
    return {"schemas": [CORE_GROUP], "id": "g1", "displayName": "Engineering",
            "members": [{"value": "u1"}, {"value": "u2"}, {"value": "u3"}]}


def run(document: dict, body: dict, schema: ResourceSchema = USER) -> dict:
    return apply_patch(document, parse_operations(body), schema)


# --- Okta --------------------------------------------------------------------------------------


def test_okta_deactivate_user_pathless_replace():
    result = run(alice(), patch({"op": "replace", "value": {"active": False}}))
    assert result["active"] is False
    assert result["userName"] == "alice@example.com"


def test_okta_group_rename_repeats_the_read_only_id():
    result = run(team(), patch({"op": "replace", "value": {"id": "g1", "displayName": "Engineering EU"}}), GROUP)
    assert result["displayName"] == "Engineering EU"
    assert result["id"] == "g1"


def test_okta_add_members_skips_existing_values():
    body = patch({"op": "add", "path": "members",
                  "value": [{"value": "u4", "display": "dave@example.com"}, {"value": "u1", "display": "alice"}]})
    result = run(team(), body, GROUP)
    assert [m["value"] for m in result["members"]] == ["u1", "u2", "u3", "u4"]
    assert result["members"][0] == {"value": "u1"}  # the existing member is kept as it was


def test_okta_remove_one_member_by_filter():
    result = run(team(), patch({"op": "remove", "path": 'members[value eq "u2"]'}), GROUP)
    assert [m["value"] for m in result["members"]] == ["u1", "u3"]


def test_replace_members_replaces_the_whole_list():
    result = run(team(), patch({"op": "replace", "path": "members", "value": [{"value": "u9"}]}), GROUP)
    assert result["members"] == [{"value": "u9"}]


def test_rename_sent_together_with_membership_changes():
    body = patch(
        {"op": "replace", "value": {"id": "g1", "displayName": "Platform"}},
        {"op": "add", "path": "members", "value": [{"value": "u5"}]},
        {"op": "remove", "path": 'members[value eq "u1"]'},
    )
    result = run(team(), body, GROUP)
    assert result["displayName"] == "Platform"
    assert [m["value"] for m in result["members"]] == ["u2", "u3", "u5"]


# --- Entra -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [("False", False), ("True", True), ("false", False), (" TRUE ", True)])
def test_entra_pascal_case_op_and_string_booleans(raw, expected):
    result = run(alice(), patch({"op": "Replace", "path": "active", "value": raw}))
    assert result["active"] is expected


def test_entra_pathless_value_map_with_dotted_and_urn_keys():
    body = patch({"op": "Replace", "value": {
        "displayName": "Alice S.",
        "name.givenName": "Alicia",
        "name.familyName": "Smith-Jones",
        f"{ENTERPRISE}:department": "Sales",
        f"{ENTERPRISE}:employeeNumber": "701984",
        "active": "False",
    }})
    result = run(alice(), body)
    assert result["displayName"] == "Alice S."
    assert result["name"] == {"givenName": "Alicia", "familyName": "Smith-Jones"}
    assert result[ENTERPRISE] == {"department": "Sales", "employeeNumber": "701984"}
    assert result["active"] is False


def test_entra_add_on_a_single_valued_attribute_sets_it():
    result = run(alice(), patch({"op": "Add", "path": "title", "value": "Engineer"}))
    assert result["title"] == "Engineer"


def test_entra_legacy_member_removal_removes_only_the_listed_members():
    body = patch({"op": "Remove", "path": "members", "value": [{"value": "u1"}, {"value": "u3"}]})
    result = run(team(), body, GROUP)
    assert result["members"] == [{"value": "u2"}]


def test_remove_members_without_value_removes_all():
    result = run(team(), patch({"op": "remove", "path": "members"}), GROUP)
    assert "members" not in result


def test_entra_replace_work_email_value():
    body = patch({"op": "replace", "path": 'emails[type eq "work"].value', "value": "alice@new.example"})
    result = run(alice(), body)
    assert result["emails"] == [{"value": "alice@new.example", "type": "work", "primary": True}]


def test_replacing_a_missing_work_email_creates_it():
    user = alice()
    user["emails"] = [{"value": "alice@home.example", "type": "home"}]
    body = patch({"op": "replace", "path": 'emails[type eq "work"].value', "value": "alice@work.example"})
    result = run(user, body)
    assert result["emails"] == [{"value": "alice@home.example", "type": "home"},
                                {"type": "work", "value": "alice@work.example"}]


def test_adding_a_work_email_to_a_user_without_emails():
    user = alice()
    del user["emails"]
    body = patch({"op": "add", "path": 'emails[type eq "work" and primary eq true].value', "value": "a@x.example"})
    assert run(user, body)["emails"] == [{"type": "work", "primary": True, "value": "a@x.example"}]


def test_replace_with_a_filter_that_describes_no_element_is_no_target():
    body = patch({"op": "replace", "path": 'emails[value co "home"]', "value": {"value": "x@y.example"}})
    with pytest.raises(ScimPatchError) as caught:
        run(alice(), body)
    assert (caught.value.scim_type, caught.value.message) == ("noTarget", "No value of emails matches the filter.")


def test_filtered_sub_attribute_boolean_is_coerced():
    body = patch({"op": "replace", "path": 'emails[type eq "work"].primary', "value": "False"})
    assert run(alice(), body)["emails"][0]["primary"] is False


# --- RFC semantics -----------------------------------------------------------------------------


def test_attribute_names_are_case_insensitive_and_keep_the_schema_spelling():
    result = run(alice(), patch({"op": "replace", "path": "USERNAME", "value": "alice2@example.com"}))
    assert result["userName"] == "alice2@example.com"
    assert "USERNAME" not in result


def test_sub_attribute_replace_and_remove():
    result = run(alice(), patch({"op": "replace", "path": "name.familyName", "value": "Jones"},
                                {"op": "remove", "path": "name.givenName"}))
    assert result["name"] == {"familyName": "Jones"}


def test_sub_attribute_on_an_absent_complex_attribute_creates_it():
    user = alice()
    del user["name"]
    assert run(user, patch({"op": "add", "path": "name.givenName", "value": "Al"}))["name"] == {"givenName": "Al"}


def test_complex_value_merges_into_the_existing_object():
    result = run(alice(), patch({"op": "replace", "path": "name", "value": {"familyName": "Lee"}}))
    assert result["name"] == {"givenName": "Alice", "familyName": "Lee"}


def test_object_for_a_single_valued_attribute_is_invalid_value():
    with pytest.raises(ScimPatchError) as caught:
        run(alice(), patch({"op": "replace", "path": "title", "value": {"x": 1}}))
    assert (caught.value.scim_type, caught.value.message) == ("invalidValue",
                                                              "title takes a single value, not an object.")


def test_remove_single_attribute_and_of_an_absent_one():
    result = run(alice(), patch({"op": "remove", "path": "name"}, {"op": "remove", "path": "title"}))
    assert "name" not in result and "title" not in result


def test_remove_matching_values_and_their_sub_attributes():
    user = alice()
    user["emails"].append({"value": "a@home.example", "type": "home"})
    result = run(user, patch({"op": "remove", "path": 'emails[type eq "home"]'}))
    assert [e["type"] for e in result["emails"]] == ["work"]
    result = run(user, patch({"op": "remove", "path": 'emails[type eq "work"].primary'}))
    assert result["emails"][0] == {"value": "alice@example.com", "type": "work"}


def test_filter_operators_inside_value_paths():
    group = team()
    group["members"].append({"value": "x10", "display": "Xavier"})
    result = run(group, patch({"op": "remove", "path": 'members[value sw "u" and not (value eq "u2")]'}), GROUP)
    assert [m["value"] for m in result["members"]] == ["u2", "x10"]
    result = run(group, patch({"op": "remove", "path": 'members[display pr or value ew "3"]'}), GROUP)
    assert [m["value"] for m in result["members"]] == ["u1", "u2"]
    result = run(group, patch({"op": "remove", "path": 'members[value gt "u2"]'}), GROUP)
    assert [m["value"] for m in result["members"]] == ["u1", "u2"]
    result = run(group, patch({"op": "remove", "path": 'members[display co "AVI" or value le "u1"]'}), GROUP)
    assert [m["value"] for m in result["members"]] == ["u2", "u3"]


def test_read_only_attributes_are_ignored():
    result = run(alice(), patch({"op": "replace", "value": {"id": "hacked", "meta": {"version": "x"},
                                                              "groups": [{"value": "admins"}]}}))
    assert result["id"] == "u1" and "meta" not in result and "groups" not in result


def test_the_input_document_is_not_modified():
    original = alice()
    run(original, patch({"op": "replace", "path": "name.givenName", "value": "Changed"},
                        {"op": "add", "path": "emails", "value": [{"value": "b@x.example"}]}))
    assert original == alice()


def test_add_to_a_multi_valued_attribute_appends():
    result = run(alice(), patch({"op": "add", "path": "emails", "value": [{"value": "b@x.example", "type": "other"}]}))
    assert [e["value"] for e in result["emails"]] == ["alice@example.com", "b@x.example"]
    result = run(alice(), patch({"op": "add", "path": "phoneNumbers", "value": {"value": "+1 555"}}))
    assert result["phoneNumbers"] == [{"value": "+1 555"}]


def test_extension_attribute_by_path_and_its_removal():
    result = run(alice(), patch({"op": "add", "path": f"{ENTERPRISE}:manager.value", "value": "u7"}))
    assert result[ENTERPRISE] == {"manager": {"value": "u7"}}
    assert ENTERPRISE not in run(alice(), patch({"op": "remove", "path": f"{ENTERPRISE}:department"}))


def test_core_urn_prefix_is_the_plain_attribute():
    result = run(alice(), patch({"op": "replace", "path": f"{CORE_USER}:userName", "value": "x@y.example"}))
    assert result["userName"] == "x@y.example"


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "scim_type", "message"), [
    ([], "invalidSyntax", "The request body must be a JSON object."),
    ({"Operations": [{"op": "add", "path": "title", "value": "x"}]}, "invalidSyntax",
     f"The request must list the schema {PATCH_OP_SCHEMA}."),
    ({"schemas": [PATCH_OP_SCHEMA]}, "invalidSyntax", "The request must have a non-empty Operations list."),
    ({"schemas": [PATCH_OP_SCHEMA], "Operations": []}, "invalidSyntax",
     "The request must have a non-empty Operations list."),
    (patch("add"), "invalidSyntax", "Operation 1 is not a JSON object."),
    (patch({"op": "move", "path": "title"}), "invalidSyntax", "Operation 1 has no op add, replace or remove."),
    (patch({"path": "title", "value": "x"}), "invalidSyntax", "Operation 1 has no op add, replace or remove."),
    (patch({"op": "add", "path": "title", "value": "x"}, {"op": "remove"}), "noTarget",
     "Operation 2: remove needs a path."),
    (patch({"op": "remove", "path": "  "}), "noTarget", "Operation 1: remove needs a path."),
    (patch({"op": "replace", "value": "x"}), "invalidValue", "Operation 1: without a path the value must be an object."),
    (patch({"op": "add", "path": "title"}), "invalidValue", "Operation 1: add needs a value."),
    (patch({"op": "add", "path": 5, "value": "x"}), "invalidPath", "Operation 1: path must be a string."),
    (patch({"op": "add", "path": 'emails[type eq', "value": "x"}), "invalidPath", "The filter ends where a value was expected."),
    (patch({"op": "replace", "value": {"bad key!": 1}}), "invalidPath", "Unexpected character '!' at position 8."),
])
def test_malformed_requests(body, scim_type, message):
    with pytest.raises(ScimPatchError) as caught:
        parse_operations(body)
    assert (caught.value.scim_type, caught.value.message, caught.value.status) == (scim_type, message, 400)


def test_operations_key_is_case_insensitive_and_bounded():
    body = {"schemas": [PATCH_OP_SCHEMA], "operations": [{"op": "replace", "path": "title", "value": "x"}]}
    assert run(alice(), body)["title"] == "x"
    too_many = patch(*[{"op": "replace", "path": "title", "value": "x"}] * (MAX_OPERATIONS + 1))
    with pytest.raises(ScimPatchError) as caught:
        parse_operations(too_many)
    assert caught.value.scim_type == "tooMany"


@pytest.mark.parametrize(("operation", "scim_type", "message"), [
    ({"op": "replace", "path": "nickName", "value": "x"}, "invalidPath", "Unknown attribute nickName."),
    ({"op": "replace", "path": "urn:example:other:1.0:User:x", "value": "x"}, "invalidPath",
     "Unknown attribute urn:example:other:1.0:User:x."),
    ({"op": "replace", "path": f"{ENTERPRISE}:costCenter", "value": "x"}, "invalidPath",
     f"Unknown attribute {ENTERPRISE}:costCenter."),
    ({"op": "replace", "path": 'title[value eq "x"]', "value": "x"}, "invalidPath", "title has no values to filter."),
    ({"op": "replace", "path": "active", "value": "maybe"}, "invalidValue", "active must be true or false."),
    ({"op": "replace", "path": "active", "value": 1}, "invalidValue", "active must be true or false."),
    ({"op": "add", "path": 'emails[type eq "work"]', "value": "plain"}, "invalidValue",
     "The value for emails[…] must be an object."),
    ({"op": "add", "path": 'emails[value co "zzz"]', "value": {"value": "a"}}, "noTarget",
     "No value of emails matches the filter."),
])
def test_operations_that_cannot_apply(operation, scim_type, message):
    with pytest.raises(ScimPatchError) as caught:
        run(alice(), patch(operation))
    assert (caught.value.scim_type, caught.value.message) == (scim_type, message)


def test_a_failing_operation_applies_nothing_of_the_patch():
    original = alice()
    with pytest.raises(ScimPatchError):
        apply_patch(original, parse_operations(patch(
            {"op": "replace", "path": "title", "value": "first"},
            {"op": "replace", "path": "active", "value": "nope"},
        )), USER)
    assert original == alice()


# --- cases found by mutation testing -----------------------------------------------------------


@pytest.mark.parametrize(("element", "value_filter", "expected"), [
    ({"value": "Abc"}, 'value eq "abc"', True),
    ({"value": "Abc"}, 'value ne "abc"', False),
    ({"value": "Abc"}, 'value ne "abd"', True),
    ({"value": "Abc"}, 'value co "B"', True),
    ({"value": "Abc"}, 'value co "x"', False),
    ({"value": "Abc"}, 'value sw "a"', True),
    ({"value": "Abc"}, 'value sw "b"', False),
    ({"value": "Abc"}, 'value ew "C"', True),
    ({"value": "Abc"}, 'value ew "b"', False),
    ({"value": "b"}, 'value gt "a"', True),
    ({"value": "b"}, 'value gt "b"', False),
    ({"value": "b"}, 'value ge "b"', True),
    ({"value": "b"}, 'value ge "c"', False),
    ({"value": "b"}, 'value lt "c"', True),
    ({"value": "b"}, 'value lt "b"', False),
    ({"value": "b"}, 'value le "b"', True),
    ({"value": "b"}, 'value le "a"', False),
    ({"n": 5}, "n gt 4", True),
    ({"n": 5}, "n gt 5", False),
    ({"n": 5}, "n ge 5", True),
    ({"n": 5}, "n ge 6", False),
    ({"n": 5}, "n lt 6", True),
    ({"n": 5}, "n lt 5", False),
    ({"n": 5}, "n le 5", True),
    ({"n": 5}, "n le 4", False),
    ({"n": 5}, 'n co "5"', False),
    ({"n": 5}, 'n gt "4"', False),
    ({"n": 5}, "n eq 5", True),
    ({"primary": "True"}, "primary eq true", True),
    ({"primary": "false"}, "primary eq true", False),
    ({"primary": "false"}, "primary eq false", True),
    ({"primary": True}, "primary eq true", True),
    ({"display": ""}, "display pr", False),
    ({"display": []}, "display pr", False),
    ({"display": {}}, "display pr", False),
    ({"display": None}, "display pr", False),
    ({"display": "x"}, "display pr", True),
    ({}, "display pr", False),
    ({"Value": "x"}, 'VALUE eq "x"', True),
    ({"value": "x"}, 'value eq "x" and display pr', False),
    ({"value": "x"}, 'value eq "y" or value eq "x"', True),
    ({"value": "x"}, 'not (value eq "x")', False),
    ({"name": {"given": "Al"}}, 'name.given eq "al"', True),
    ({"name": "Al"}, 'name.given eq "al"', False),
    ("plain", 'value eq "plain"', False),
])
def test_value_filter_matching(element, value_filter, expected):
    from provisioning.scim.filters import parse_filter
    from provisioning.scim.patch import _matches

    assert _matches(element, parse_filter(value_filter)) is expected


def test_error_codes_name_the_scim_type():
    with pytest.raises(ScimPatchError) as caught:
        parse_operations(patch({"op": "remove"}))
    assert caught.value.code == "scim_notarget"
    assert caught.value.as_dict() == {"code": "scim_notarget", "message": "Operation 1: remove needs a path.",
                                      "field": None}


def test_exactly_the_maximum_number_of_operations_is_accepted():
    assert len(parse_operations(patch(*[{"op": "replace", "path": "title", "value": "x"}] * MAX_OPERATIONS))) == \
        MAX_OPERATIONS
    with pytest.raises(ScimPatchError) as caught:
        parse_operations(patch(*[{"op": "add", "path": "title", "value": "x"}] * (MAX_OPERATIONS + 1)))
    assert caught.value.message == f"A PATCH may hold at most {MAX_OPERATIONS} operations."


def test_pathless_add_appends_and_pathless_replace_replaces_multi_valued_attributes():
    new = [{"value": "b@x.example", "type": "home"}]
    added = run(alice(), patch({"op": "add", "value": {"emails": new}}))
    assert [e["value"] for e in added["emails"]] == ["alice@example.com", "b@x.example"]
    replaced = run(alice(), patch({"op": "replace", "value": {"emails": new}}))
    assert replaced["emails"] == new


def test_filtered_add_with_an_object_creates_the_element_the_filter_describes():
    result = run(alice(), patch({"op": "add", "path": 'emails[type eq "home"]', "value": {"value": "h@x.example"}}))
    assert result["emails"][1] == {"type": "home", "value": "h@x.example"}


def test_filtered_add_merges_and_filtered_replace_replaces_the_element():
    added = run(alice(), patch({"op": "add", "path": 'emails[type eq "work"]', "value": {"display": "Work"}}))
    assert added["emails"][0] == {"value": "alice@example.com", "type": "work", "primary": True, "display": "Work"}
    replaced = run(alice(), patch({"op": "replace", "path": 'emails[type eq "work"]',
                                   "value": {"value": "n@x.example", "type": "work"}}))
    assert replaced["emails"] == [{"value": "n@x.example", "type": "work"}]


def test_a_filter_that_is_not_all_equalities_describes_no_element():
    body = patch({"op": "add", "path": 'emails[type eq "home" and value co "h"].display', "value": "Home"})
    with pytest.raises(ScimPatchError) as caught:
        run(alice(), body)
    assert caught.value.scim_type == "noTarget"
    body = patch({"op": "add", "path": 'emails[type eq "home" and primary eq false].display', "value": "Home"})
    assert run(alice(), body)["emails"][1] == {"type": "home", "primary": False, "display": "Home"}


def test_removing_by_filter_from_an_absent_attribute_changes_nothing():
    user = alice()
    del user["emails"]
    assert run(user, patch({"op": "remove", "path": 'emails[type eq "work"]'})) == user
    assert run(user, patch({"op": "remove", "path": f"{ENTERPRISE}:department"})) == user


def test_boolean_sub_attributes_of_complex_attributes_are_coerced():
    schema = ResourceSchema(core_urn=CORE_USER, attributes=frozenset({"settings"}),
                            complex=frozenset({"settings"}), booleans=frozenset({"settings.enabled"}))
    result = apply_patch({}, parse_operations(patch({"op": "add", "path": "settings.enabled", "value": "TRUE"})),
                         schema)
    assert result == {"settings": {"enabled": True}}
    result = apply_patch({}, parse_operations(patch({"op": "add", "path": "settings",
                                                      "value": {"enabled": "false"}})), schema)
    assert result == {"settings": {"enabled": False}}


def test_pathless_operations_keep_their_op():
    [operation] = parse_operations(patch({"op": "Add", "value": {"title": "x"}}))
    assert (operation.op, operation.path.path.attr, operation.value) == ("add", "title", "x")
