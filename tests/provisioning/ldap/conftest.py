"""Fixtures for directory tests: a real slapd per test module, a fresh OU per test."""

from __future__ import annotations

import pytest

from provisioning.ldap.client import DirectoryConnection
from tests.directory_servers import TestPki, TestSlapd, make_test_pki


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory) -> TestPki:
    """A CA and a server certificate for localhost and 127.0.0.1, made once per test session."""
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def slapd_server(test_pki):
    """A running OpenLDAP server (memberof + refint overlays, LDAPS and StartTLS)."""
    server = TestSlapd(pki=test_pki)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ou(slapd_server) -> str:
    """A fresh organizational unit DN for one test's entries."""
    return slapd_server.fresh_ou()


@pytest.fixture
def admin_connection(slapd_server) -> DirectoryConnection:
    """Plain LDAP as the directory's root DN."""
    return DirectoryConnection(urls=(slapd_server.ldap_uri,), bind_dn=slapd_server.root_dn,
                               bind_password=slapd_server.root_pw)


def people_ldif(ou: str, *names: str, groups: dict[str, list[str]] | None = None) -> str:
    """LDIF for inetOrgPerson users ``names`` under ``ou`` and groupOfNames ``groups`` (name -> members)."""
    blocks = []
    for name in names:
        blocks.append(
            f"dn: uid={name},{ou}\nobjectClass: inetOrgPerson\nuid: {name}\ncn: {name.title()}\n"
            f"sn: {name.title()}son\ngivenName: {name.title()}\nmail: {name}@example.org\n"
        )
    for group, members in (groups or {}).items():
        lines = [f"dn: cn={group},{ou}", "objectClass: groupOfNames", f"cn: {group}"]
        for member in members:
            member_dn = member if "=" in member else f"uid={member},{ou}"
            lines.append(f"member: {member_dn}")
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)
