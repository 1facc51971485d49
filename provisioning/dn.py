"""Distinguished names compared as LDAP compares them: one canonical spelling per entry.

Directory sync, the mapping rules ("DN under OU", "member of group") and SCIM group references all
compare DNs; they must agree that ``CN=Smith\\, John,OU=Sales`` and ``cn=smith\\2c john, ou=sales``
name the same entry, so there is one ``normalize_dn`` for all of them.
"""

from __future__ import annotations

import re

import ldap.dn

from accounts.exceptions import MappingError

# One RDN "attr=value" with nothing that needs escaping: the common case, folded without the parser.
_PLAIN_RDN = re.compile(r"\s*([A-Za-z][A-Za-z0-9-]*)\s*=\s*([^\s=+,\"\\<>;#][^=+,\"\\<>;#]*?)\s*")
# A whole DN of such RDNs without spaces and with only letters, digits and ``._@-`` in its values
# (most directory DNs): its folded form is the DN lower-cased, one regex, no split.
_SIMPLE_DN = re.compile(r"[a-z][a-z0-9-]*=[a-z0-9._@-]+(?:,[a-z][a-z0-9-]*=[a-z0-9._@-]+)*")


def normalize_dn(dn: str) -> str:
    """A DN in one canonical spelling (case, spaces and escapes folded) so DNs compare equal.

    ``CN=Smith\\, John,OU=Sales`` and ``cn=smith\\2c john, ou=sales`` are the same entry. DNs made of
    plain ``attr=value`` parts (most of them) are folded directly; the rest go through python-ldap's
    parser, which gives the same result (tested) at a third of the speed.
    """
    if dn.isascii():
        folded = dn.lower()
        if _SIMPLE_DN.fullmatch(folded):
            return folded
    parts = dn.split(",")
    plain = [_PLAIN_RDN.fullmatch(part) for part in parts]
    if all(plain):
        return ",".join(f"{m[1]}={m[2]}" for m in plain).lower()  # type: ignore[index]
    try:
        parts = ldap.dn.str2dn(dn)
    except (ldap.DECODING_ERROR, UnicodeDecodeError):  # ``\ff``: an escape that is no UTF-8
        raise MappingError("invalid_dn", f"{dn!r} is not a valid distinguished name.", field="dn") from None
    folded = [[(attr.lower(), value.lower(), kind) for attr, value, kind in rdn] for rdn in parts]
    return ldap.dn.dn2str(folded)


def is_valid_dn(dn: str) -> bool:
    """A non-empty DN that LDAP would accept."""
    if not dn or not dn.strip():
        return False
    try:
        normalize_dn(dn)
    except MappingError:
        return False
    return True
