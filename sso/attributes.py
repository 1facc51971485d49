"""SAML attributes -> the identity idm signs in. Pure functions, no ORM (unit-tested on their own).

The username comes from the NameID (default) or a named attribute; email, first and last name from
attributes. Presets give each vendor's usual attribute names; with "use default mapping" the Code42
names (``mail``, ``givenName``, ``sn``) apply and the common claim-URI / urn:oid forms are accepted as
aliases (code42-features.md §4.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
OID_MAIL = "urn:oid:0.9.2342.19200300.100.1.3"
OID_GIVEN_NAME = "urn:oid:2.5.4.42"
OID_SN = "urn:oid:2.5.4.4"
OID_EPPN = "urn:oid:1.3.6.1.4.1.5923.1.1.1.6"
OID_UID = "urn:oid:0.9.2342.19200300.100.1.1"

FIELDS = ("username", "email", "first_name", "last_name")

# preset -> (label, {field: attribute name}); username "" means the NameID.
PRESETS: dict[str, tuple[str, dict[str, str]]] = {
    "default": ("Default (mail, givenName, sn)",
                {"username": "", "email": "mail", "first_name": "givenName", "last_name": "sn"}),
    "okta": ("Okta", {"username": "", "email": "email", "first_name": "firstName", "last_name": "lastName"}),
    "entra": ("Microsoft Entra ID", {"username": "", "email": f"{CLAIMS}emailaddress",
                                     "first_name": f"{CLAIMS}givenname", "last_name": f"{CLAIMS}surname"}),
    "adfs": ("Microsoft AD FS", {"username": "", "email": f"{CLAIMS}emailaddress",
                                 "first_name": f"{CLAIMS}givenname", "last_name": f"{CLAIMS}surname"}),
    "google": ("Google Workspace", {"username": "", "email": "email", "first_name": "firstName",
                                    "last_name": "lastName"}),
    "onelogin": ("OneLogin", {"username": "", "email": "User.email", "first_name": "User.FirstName",
                              "last_name": "User.LastName"}),
    "pingone": ("PingOne", {"username": "", "email": "email", "first_name": "given_name",
                            "last_name": "family_name"}),
    "shibboleth": ("Shibboleth / InCommon (urn:oid)", {"username": OID_EPPN, "email": OID_MAIL,
                                                       "first_name": OID_GIVEN_NAME, "last_name": OID_SN}),
}

# Aliases accepted with the default mapping: the same value under its other usual names.
DEFAULT_ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("mail", "email", "Email", "emailAddress", f"{CLAIMS}emailaddress", OID_MAIL, "User.email",
              "http://schemas.xmlsoap.org/claims/EmailAddress"),
    "first_name": ("givenName", "firstName", "given_name", f"{CLAIMS}givenname", OID_GIVEN_NAME,
                   "User.FirstName"),
    "last_name": ("sn", "lastName", "surname", "family_name", f"{CLAIMS}surname", OID_SN, "User.LastName"),
}


@dataclass(frozen=True)
class Mapping:
    """Which attribute feeds which field; ``username=""`` means the NameID."""

    username: str = ""
    email: str = "mail"
    first_name: str = "givenName"
    last_name: str = "sn"
    use_aliases: bool = True

    @classmethod
    def of(cls, provider: Any) -> Mapping:
        """The mapping of an ``IdentityProvider`` (duck-typed, so tests need no DB)."""
        if provider.use_default_mapping:
            return cls()
        return cls(username=provider.username_attribute or "", email=provider.email_attribute or "",
                   first_name=provider.first_name_attribute or "", last_name=provider.last_name_attribute or "",
                   use_aliases=False)


@dataclass(frozen=True)
class SamlIdentity:
    """Who the assertion says the user is."""

    name_id: str
    username: str
    email: str = ""
    first_name: str = ""
    last_name: str = ""


class MappingFailed(Exception):
    """The assertion lacks what the mapping needs; ``code`` for the error page and audit."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _first(attributes: dict[str, list], names: tuple[str, ...]) -> str:
    for name in names:
        values = attributes.get(name)
        if values:
            value = values[0]
            return value.strip() if isinstance(value, str) else str(value)
    return ""


def map_identity(*, name_id: str, attributes: dict[str, list], mapping: Mapping) -> SamlIdentity:
    """Translate a validated assertion's NameID and attributes into a ``SamlIdentity``."""
    name_id = (name_id or "").strip()
    if not name_id:
        raise MappingFailed("no_name_id", "The assertion has no NameID.")
    if mapping.username:
        username = _first(attributes, (mapping.username,))
        if not username:
            raise MappingFailed("no_username", f"The assertion has no {mapping.username!r} attribute (username).")
    else:
        username = name_id

    def field(name: str) -> str:
        configured = getattr(mapping, name)
        names = (configured,) if configured else ()
        if mapping.use_aliases:
            names = names + tuple(a for a in DEFAULT_ALIASES.get(name, ()) if a != configured)
        return _first(attributes, names)

    email = field("email")
    if not email and "@" in name_id and mapping.use_aliases:
        email = name_id  # Code42 default: fall back to the NameID when it is an email address.
    return SamlIdentity(name_id=name_id, username=username, email=email,
                        first_name=field("first_name"), last_name=field("last_name"))


def preset_fields(preset: str) -> dict[str, str]:
    """The attribute names of a preset, for the console's mapping form."""
    return dict(PRESETS.get(preset, PRESETS["default"])[1])
