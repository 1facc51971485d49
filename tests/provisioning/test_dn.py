"""provisioning.dn: one canonical DN spelling, and what counts as a valid DN (pure, no database)."""

from __future__ import annotations

import pytest

from accounts.exceptions import MappingError
from provisioning.dn import is_valid_dn, normalize_dn


@pytest.mark.parametrize("dn", ["", " ", "   \t"])
def test_blank_is_not_a_dn(dn):
    assert is_valid_dn(dn) is False


@pytest.mark.parametrize("dn", ["cn=a", "CN=Smith\\, John,OU=Sales,DC=example,DC=com", "uid=b,ou=people"])
def test_valid_dns(dn):
    assert is_valid_dn(dn) is True


@pytest.mark.parametrize("dn", ["not a dn", "cn", "=x,ou=y"])
def test_invalid_dns(dn):
    assert is_valid_dn(dn) is False
    with pytest.raises(MappingError) as raised:
        normalize_dn(dn)
    assert raised.value.code == "invalid_dn"


@pytest.mark.parametrize("a,b", [
    ("CN=Smith\\, John,OU=Sales", "cn=smith\\2c john, ou=sales"),
    ("CN=Ann Lee , OU=Sales", "cn=ann lee,ou=sales"),
    ("uid=J\u00f6rg,ou=People", "UID=j\u00f6rg,OU=people"),
])
def test_spellings_of_one_entry_fold_together(a, b):
    assert normalize_dn(a) == normalize_dn(b)


def test_fast_path_and_parser_agree():
    # A plain DN is folded without python-ldap's parser; one needing escapes goes through it.
    assert normalize_dn("CN=Ann Lee,OU=Sales,DC=Example,DC=com") == "cn=ann lee,ou=sales,dc=example,dc=com"
    assert normalize_dn("CN=Lee\\, Ann,OU=Sales") == "cn=lee\\, ann,ou=sales"
