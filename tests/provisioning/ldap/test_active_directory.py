"""The Active Directory preset against a real AD domain controller (Samba 4 on loopback).

Seeded with samba-tool as an AD admin would: users (one disabled, one with a comma in its name,
one non-ASCII), a computer account that a naive (objectClass=user) filter picks up, and nested
groups. Checks that the preset's filter, the objectGUID anchor, the userAccountControl state and
nested-group expansion agree with what AD itself answers (its in-chain matching rule).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import ldap
import pytest

from provisioning.ldap.client import DirectoryClient, DirectoryConnection
from provisioning.ldap.translate import ACTIVE_DIRECTORY, expand_memberships, translate_group, translate_user
from tests.directory_servers import SambaDomain

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SambaDomain.available(), reason="samba is installed by scripts/setup.sh"),
]

IN_CHAIN = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN


@pytest.fixture(scope="module")
def ad(tmp_path_factory):
    domain = SambaDomain(tmp_path_factory.mktemp("samba") / "dc")
    domain.start()
    try:
        domain.tool("user", "create", "alice", "Al1ce-Pass-123!", "--given-name=Alice", "--surname=Smith",
                    "--mail-address=alice@idm.test")
        domain.tool("user", "create", "bob", "B0b-Pass-1234!", "--given-name=Bob", "--surname=Jones")
        domain.tool("user", "disable", "bob")
        domain.tool("user", "create", "jurgen", "J0rgen-Pass-123!", "--given-name=Jürgen", "--surname=Doe",
                    "--use-username-as-cn")
        # samba-tool does not escape commas in the CN it builds; rename over LDAP as an admin tool would.
        admin = ldap.initialize(domain.ldap_uri)
        admin.simple_bind_s(domain.bind_dn, domain.admin_password)
        admin.rename_s(f"CN=jurgen,CN=Users,{domain.base_dn}", "CN=Jürgen Doe\\, Jr")
        admin.unbind_s()
        domain.tool("computer", "create", "WKS01")
        domain.tool("group", "add", "Engineers")
        domain.tool("group", "add", "Staff")
        domain.tool("group", "add", "Everyone Else")
        domain.tool("group", "addmembers", "Engineers", "alice,jurgen")
        domain.tool("group", "addmembers", "Staff", "Engineers")
        domain.tool("group", "addmembers", "Everyone Else", "bob")
        yield domain
    finally:
        domain.stop()


@pytest.fixture
def client(ad):
    connection = DirectoryConnection(urls=(ad.ldap_uri,), bind_dn=ad.bind_dn, bind_password=ad.admin_password)
    with DirectoryClient(connection) as opened:
        yield opened


def _entries(client, filter_, attributes):
    return [e for page in client.search(base_dn=SambaDomain.base_dn, filter=filter_, attributes=attributes,
                                        page_size=2) for e in page]


def test_ad_preset_reads_people_not_computers(client):
    now = datetime.now(UTC)
    users = {
        u.username: u
        for u in (translate_user(e.dn, e.attributes, ACTIVE_DIRECTORY, now=now)
                  for e in _entries(client, ACTIVE_DIRECTORY.user_filter, ACTIVE_DIRECTORY.user_attributes))
    }
    assert {"alice", "bob", "jurgen", "Administrator"} <= set(users)
    assert "WKS01$" not in users
    naive = {e.attributes["sAMAccountName"][0].decode() for e in _entries(client, "(objectClass=user)",
                                                                            ["sAMAccountName"])}
    assert "WKS01$" in naive  # what the preset's filter protects against
    alice = users["alice"]
    assert uuid.UUID(alice.anchor).version == 4
    assert (alice.email, alice.first_name, alice.last_name, alice.active) == ("alice@idm.test", "Alice", "Smith",
                                                                              True)
    assert int(alice.changed) > 0
    assert (users["bob"].active, users["bob"].inactive_reason) == (False, "disabled")
    assert users["jurgen"].first_name == "Jürgen"
    assert users["jurgen"].dn == "cn=jürgen doe\\, jr,cn=users,dc=idm,dc=test"


def test_nested_groups_match_ads_in_chain_rule(client):
    groups = [translate_group(e.dn, e.attributes, ACTIVE_DIRECTORY)
              for e in _entries(client, ACTIVE_DIRECTORY.group_filter, ACTIVE_DIRECTORY.group_attributes)]
    closure = expand_memberships(groups)
    by_name = {g.name: g.dn for g in groups}
    staff = by_name["Staff"]
    users = {translate_user(e.dn, e.attributes, ACTIVE_DIRECTORY, now=datetime.now(UTC)).username: e.dn.lower()
             for e in _entries(client, ACTIVE_DIRECTORY.user_filter, ACTIVE_DIRECTORY.user_attributes)}
    # What AD answers for "members of Staff, directly or nested":
    in_chain = _entries(client, f"(&{ACTIVE_DIRECTORY.user_filter}(memberOf:{IN_CHAIN}:={staff}))",
                        ["sAMAccountName"])
    ad_says = {e.attributes["sAMAccountName"][0].decode() for e in in_chain}
    ours = {name for name, dn in users.items() if staff in closure.get(_norm(dn), frozenset())}
    assert ad_says == ours == {"alice", "jurgen"}
    assert by_name["Engineers"] in closure[_norm(users["alice"])]


def _norm(dn: str) -> str:
    from provisioning.ldap.translate import normalize_dn

    return normalize_dn(dn)


def test_highest_committed_usn_grows_with_changes(ad, client):
    before = int(client.read_root_dse(["highestCommittedUSN"])["highestCommittedUSN"][0])
    ad.tool("user", "create", "carol", "C4rol-Pass-123!")
    connection = DirectoryConnection(urls=(ad.ldap_uri,), bind_dn=ad.bind_dn, bind_password=ad.admin_password)
    with DirectoryClient(connection) as fresh:
        after = int(fresh.read_root_dse(["highestCommittedUSN"])["highestCommittedUSN"][0])
        [carol] = [e for page in fresh.search(base_dn=SambaDomain.base_dn, filter="(sAMAccountName=carol)",
                                              attributes=["uSNChanged"]) for e in page]
    assert after > before
    assert before < int(carol.attributes["uSNChanged"][0]) <= after
