"""provisioning.ldap.client against a real slapd: binds, paged searches, TLS and failures in plain words."""

from __future__ import annotations

import dataclasses

import pytest

from provisioning.ldap.client import DirectoryClient, DirectoryConnection, DirectoryError, TlsMode
from provisioning.ldap.translate import OPENLDAP
from tests.directory_servers import TestSlapd, free_port, make_test_pki
from tests.provisioning.ldap.conftest import people_ldif


def _all(client: DirectoryClient, **kwargs) -> list:
    return [entry for page in client.search(**kwargs) for entry in page]


def test_paged_search_reads_every_entry_in_pages(slapd_server, ou, admin_connection):
    names = [f"user{i}" for i in range(7)]
    slapd_server.ldapadd(people_ldif(ou, *names))
    with DirectoryClient(admin_connection) as client:
        pages = list(client.search(base_dn=ou, filter="(objectClass=inetOrgPerson)", attributes=["uid"],
                                   page_size=3))
    assert [len(page) for page in pages] == [3, 3, 1]
    uids = sorted(entry.attributes["uid"][0].decode() for page in pages for entry in page)
    assert uids == names


def test_search_returns_overlay_member_of_and_entry_uuid(slapd_server, ou, admin_connection):
    slapd_server.ldapadd(people_ldif(ou, "alice", "bob", groups={"eng": ["alice"]}))
    with DirectoryClient(admin_connection) as client:
        [alice] = _all(client, base_dn=ou, filter="(uid=alice)", attributes=["memberOf", "entryUUID"])
    assert alice.dn == f"uid=alice,{ou}"
    assert alice.attributes["memberOf"] == [f"cn=eng,{ou}".encode()]
    assert len(alice.attributes["entryUUID"][0]) == 36


def test_search_with_no_match_yields_no_page(ou, admin_connection):
    with DirectoryClient(admin_connection) as client:
        assert list(client.search(base_dn=ou, filter="(uid=nobody)")) == []


def test_a_plain_user_can_bind_and_search(slapd_server, ou):
    slapd_server.ldapadd(
        f"dn: cn=sync,{ou}\nobjectClass: person\nobjectClass: simpleSecurityObject\ncn: sync\nsn: sync\n"
        "userPassword: sync-secret\n"
    )
    connection = DirectoryConnection(urls=(slapd_server.ldap_uri,), bind_dn=f"cn=sync,{ou}",
                                     bind_password="sync-secret")
    with DirectoryClient(connection) as client:
        assert [e.dn for e in _all(client, base_dn=ou, filter="(cn=sync)")] == [f"cn=sync,{ou}"]


def test_wrong_password_is_bind_failed(slapd_server, admin_connection):
    wrong = dataclasses.replace(admin_connection, bind_password="not-the-password")
    with pytest.raises(DirectoryError) as caught:
        DirectoryClient(wrong).open()
    assert caught.value.code == "bind_failed"
    assert caught.value.field == "bind_password"
    assert "refused the bind DN or password" in caught.value.message
    assert "not-the-password" not in str(caught.value)


def test_unreachable_server_is_skipped_for_the_next_url(slapd_server, admin_connection):
    dead = f"ldap://127.0.0.1:{free_port()}/"
    connection = dataclasses.replace(admin_connection, urls=(dead, slapd_server.ldap_uri), connect_timeout=2)
    with DirectoryClient(connection) as client:
        assert client.url == slapd_server.ldap_uri


def test_no_reachable_server_says_which_and_what_to_check():
    dead = f"ldap://127.0.0.1:{free_port()}/"
    with pytest.raises(DirectoryError) as caught:
        DirectoryClient(DirectoryConnection(urls=(dead,), connect_timeout=2)).open()
    assert caught.value.code == "server_unreachable"
    assert dead in caught.value.message
    assert "Check the URL, the port" in caught.value.message


def test_no_url_at_all_is_refused():
    with pytest.raises(DirectoryError) as caught:
        DirectoryClient(DirectoryConnection(urls=()))
    assert caught.value.code == "no_server"


def test_missing_base_dn_is_named(slapd_server, admin_connection):
    base = f"ou=missing,{slapd_server.suffix}"
    with DirectoryClient(admin_connection) as client, pytest.raises(DirectoryError) as caught:
        _all(client, base_dn=base, filter="(objectClass=*)")
    assert caught.value.code == "base_dn_not_found"
    assert base in caught.value.message


def test_filter_typo_is_invalid_filter(ou, admin_connection):
    with DirectoryClient(admin_connection) as client, pytest.raises(DirectoryError) as caught:
        _all(client, base_dn=ou, filter="(uid=alice")
    assert caught.value.code == "invalid_filter"


def test_server_killed_mid_search_raises_instead_of_returning_a_partial_list(test_pki):
    server = TestSlapd(pki=test_pki)
    server.start()
    try:
        base = server.fresh_ou()
        server.ldapadd(people_ldif(base, *[f"u{i}" for i in range(6)]))
        connection = DirectoryConnection(urls=(server.ldap_uri,), bind_dn=server.root_dn,
                                         bind_password=server.root_pw, operation_timeout=5)
        seen = []
        with DirectoryClient(connection) as client, pytest.raises(DirectoryError) as caught:
            for page in client.search(base_dn=base, filter="(uid=*)", page_size=2):
                seen.extend(page)
                server.kill()
        assert caught.value.code == "server_unreachable"
        assert len(seen) == 2
    finally:
        server.stop()


def test_ldaps_with_the_directory_ca_verifies(slapd_server, admin_connection, test_pki):
    connection = dataclasses.replace(admin_connection, urls=(slapd_server.ldaps_uri,), ca_file=test_pki.ca_file,
                                     tls=TlsMode.LDAPS)
    with DirectoryClient(connection) as client:
        assert client.read_root_dse(["namingContexts"])["namingContexts"] == [slapd_server.suffix.encode()]


def test_starttls_with_the_directory_ca_verifies(slapd_server, ou, admin_connection, test_pki):
    connection = dataclasses.replace(admin_connection, tls=TlsMode.START_TLS, ca_file=test_pki.ca_file)
    with DirectoryClient(connection) as client:
        assert _all(client, base_dn=ou, filter="(objectClass=organizationalUnit)")


@pytest.mark.parametrize("tls", [TlsMode.LDAPS, TlsMode.START_TLS])
def test_unknown_ca_is_refused_and_named(slapd_server, admin_connection, test_pki, tls):
    url = slapd_server.ldaps_uri if tls == TlsMode.LDAPS else slapd_server.ldap_uri
    connection = dataclasses.replace(admin_connection, urls=(url,), tls=tls, ca_file=test_pki.other_ca_file)
    with pytest.raises(DirectoryError) as caught:
        DirectoryClient(connection).open()
    assert caught.value.code == "tls_unknown_ca"
    assert "not signed by a trusted certificate authority" in caught.value.message


def test_unverified_tls_is_possible_only_when_asked(slapd_server, admin_connection, test_pki):
    connection = dataclasses.replace(admin_connection, urls=(slapd_server.ldaps_uri,),
                                     ca_file=test_pki.other_ca_file, verify_tls=False)
    with DirectoryClient(connection) as client:
        assert client.url == slapd_server.ldaps_uri


def test_certificate_for_another_name_is_a_name_mismatch(tmp_path, admin_connection):
    pki = make_test_pki(tmp_path, server_names=("directory.example.org",))
    server = TestSlapd(pki=pki)
    server.start()
    try:
        connection = dataclasses.replace(admin_connection, urls=(server.ldaps_uri,), ca_file=pki.ca_file,
                                         bind_dn=server.root_dn, bind_password=server.root_pw)
        with pytest.raises(DirectoryError) as caught:
            DirectoryClient(connection).open()
        assert caught.value.code == "tls_name_mismatch"
        assert "not issued for that host name" in caught.value.message
    finally:
        server.stop()


def test_preset_attributes_are_readable_from_openldap(slapd_server, ou, admin_connection):
    slapd_server.ldapadd(people_ldif(ou, "carol"))
    with DirectoryClient(admin_connection) as client:
        [carol] = _all(client, base_dn=ou, filter=OPENLDAP.user_filter, attributes=OPENLDAP.user_attributes)
    assert {"uid", "mail", "givenName", "sn", "entryUUID", "entryCSN"} <= set(carol.attributes)


@pytest.mark.parametrize(("name", "expected"), [
    ("member;range=0-1499", ("member", 0, 1499)),
    ("member;range=1500-*", ("member", 1500, None)),
    ("Member;Range=3000-4499", ("Member", 3000, 4499)),
    ("member", None),
    ("member;binary", None),
])
def test_parse_range_reads_ad_ranged_attribute_names(name, expected):
    from provisioning.ldap.client import parse_range

    assert parse_range(name) == expected
