"""``preview.user_diffs`` reads only the parts of each stored record the rules use (``RuleSet.reads``)
and shares evaluations and comparisons between users; whatever the stored JSON looks like, its
answer must equal evaluating the whole stored record (``records=``, the reference path)."""

from __future__ import annotations

import pytest

from accounts.models import ExternalIdentity
from provisioning.preview import user_diffs
from provisioning.resolve import RECORD_KEY, stored_record
from provisioning.rules import (
    Condition,
    ConditionKind,
    OrgMode,
    OrgPolicy,
    RecordParts,
    Rule,
    RuleKind,
    RuleSet,
)

# Stored JSON as SourceRecord.to_json writes it, and in shapes it never writes (older records,
# hand edits): escaped or upper-case DNs, upper-case groups, a bare string value, a bad flag.
STORED = {
    "canonical": {"attributes": {"dept": ["Sales"], "title": ["Boss"]}, "groups": ["engineering"],
                  "dn": "cn=ann,ou=sales,dc=example,dc=com", "active": True},
    "escaped_dn": {"attributes": {"dept": ["Sales"]}, "groups": [], "dn": "CN=Smith\\2C John, OU=Sales,DC=example,DC=com",
                   "active": None},
    "group_case": {"attributes": {}, "groups": ["Engineering", "CN=Leavers,OU=Groups,DC=example,DC=com"], "dn": "",
                   "active": None},
    "bare_value": {"attributes": {"dept": "R&D"}, "groups": ["staff"], "dn": "", "active": None},
    "inactive": {"attributes": {"dept": ["Sales"]}, "groups": ["leavers"], "dn": "", "active": False},
    "bad_flag": {"attributes": {}, "groups": [], "dn": "", "active": "yes"},
    "groups_not_a_list": {"attributes": {}, "groups": "engineering", "dn": "", "active": None},
    "not_an_object": ["nope"],
    "no_record": None,
}


@pytest.fixture
def stored_users(source_factory, linked_user, org_factory):
    source = source_factory("Okta")
    users = {}
    for name, data in STORED.items():
        user = linked_user(source, name.replace("_", ""))
        ExternalIdentity.objects.filter(user=user).update(raw={} if data is None else {RECORD_KEY: data})
        users[user.pk] = name
    return source, users, org_factory("Sales"), org_factory("Leavers")


def rule_sets(sales, leavers):
    yield "groups and attributes", [
        Rule(RuleKind.ROLE, Condition(ConditionKind.MEMBER_OF_GROUP, value="Engineering"), roles=frozenset({"help-desk"})),
        Rule(RuleKind.ORG, Condition(ConditionKind.ATTRIBUTE_EQUALS, attribute="DEPT", value="sales"), org_id=sales.pk),
        Rule(RuleKind.ACTIVE, Condition(ConditionKind.MEMBER_OF_GROUP, value="cn=leavers,ou=groups,dc=example,dc=com")),
    ], OrgPolicy(mode=OrgMode.RULES)
    yield "dn and patterns", [
        Rule(RuleKind.ORG, Condition(ConditionKind.DN_UNDER, value="ou=Sales,dc=example,dc=com"), org_id=sales.pk),
        Rule(RuleKind.ROLE, Condition(ConditionKind.ATTRIBUTE_MATCHES, attribute="dept", value="^r&"),
             roles=frozenset({"console-user"})),
        Rule(RuleKind.ACTIVE, Condition(ConditionKind.MEMBER_OF_GROUP, value="leavers")),
    ], OrgPolicy(mode=OrgMode.RULES, fallback_org_id=leavers.pk)
    yield "org from an attribute", [], OrgPolicy(mode=OrgMode.ATTRIBUTE, attribute="Dept")


def test_parts_path_equals_whole_record_path(stored_users):
    source, users, sales, leavers = stored_users
    raws = dict(ExternalIdentity.objects.filter(user_id__in=users).values_list("user_id", "raw"))
    for label, rules, policy in rule_sets(sales, leavers):
        fast = list(user_diffs(source=source, rules=rules, org_policy=policy))
        assert len(fast) == len(STORED), label
        # Reference: each user evaluated from its whole stored record (what from_json makes of it).
        reference = {}
        for user_id in users:
            try:
                record = stored_record(raws[user_id])
            except Exception as exc:  # noqa: BLE001 - the error code is what the fast path must report
                reference[user_id] = ("error", exc.code)
                continue
            if record is None:
                reference[user_id] = None
                continue
            [diff] = user_diffs(source=source, rules=rules, org_policy=policy, user_ids=[user_id],
                                records={user_id: record})
            reference[user_id] = diff
        ids = sorted(users)
        for user_id, diff in zip(ids, fast, strict=True):
            want = reference[user_id]
            if want is None:
                assert diff is None, (label, users[user_id])
            elif isinstance(want, tuple):
                assert diff.error == want[1], (label, users[user_id])
            else:
                assert (diff.org_after, diff.gain, diff.lose, diff.inactive, diff.grants_add) == (
                    want.org_after, want.gain, want.lose, want.inactive, want.grants_add), (label, users[user_id])


def test_the_cases_exercise_both_paths(stored_users):
    """The fixture's records really differ in what the rules decide (or the equality above proves little)."""
    source, users, sales, leavers = stored_users
    _, rules, policy = next(rule_sets(sales, leavers))
    # One result per linked user, in user id order (an unchanged user's is the shared UNCHANGED).
    by_name = {users[user_id]: d for user_id, d in zip(
        sorted(users), user_diffs(source=source, rules=rules, org_policy=policy), strict=True) if d is not None}
    assert by_name["canonical"].gain == {"help-desk"} and by_name["canonical"].org_after.endswith("Sales")
    assert by_name["group_case"].gain == {"help-desk"} and by_name["group_case"].inactive
    assert by_name["bare_value"].org_after == ""
    assert by_name["bad_flag"].error == "record_invalid"
    assert by_name["not_an_object"].error == "record_invalid"
    assert "no_record" not in by_name


def test_reads_names_only_what_the_rules_use():
    rules = RuleSet.of([
        Rule(RuleKind.ORG, Condition(ConditionKind.ATTRIBUTE_EQUALS, attribute=" Dept ", value="x"), org_id=1),
        Rule(RuleKind.ROLE, Condition(ConditionKind.ATTRIBUTE_MATCHES, attribute="title", value="x"), roles=frozenset()),
    ])
    assert rules.reads(OrgPolicy(mode=OrgMode.ATTRIBUTE, attribute="Office")) == RecordParts(
        attributes=("dept", "office", "title"), groups=False, dn=False)
    assert RuleSet.of([Rule(RuleKind.ACTIVE, Condition(ConditionKind.DN_UNDER, value="ou=x"))]).reads(
        OrgPolicy()) == RecordParts(dn=True)
