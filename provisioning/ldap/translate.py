"""Directory entries → plain values a sync can act on. Pure: no ORM, no network.

An LDAP entry arrives as a DN and raw bytes per attribute; each directory flavour names things
differently and encodes state in its own way. A ``DirectoryPreset`` says which attribute is the
username, the email, the names and the **stable anchor** (objectGUID, entryUUID, ipaUniqueID —
never the DN or the username, which change on rename or move), and ``translate_user`` turns an
entry into a ``DirectoryUser`` whose ``active`` flag already reflects what the directory says:

* Active Directory: ``userAccountControl`` bit 0x2 (ACCOUNTDISABLE) and an ``accountExpires`` in the
  past (Windows FILETIME, 100 ns ticks since 1601; 0 and 2^63-1 mean "never");
* OpenLDAP: ``shadowExpire`` (days since 1970; -1 means never) and ``pwdAccountLockedTime`` (set
  by the ppolicy overlay or by an admin: any value locks);
* 389 DS / FreeIPA: ``nsAccountLock: TRUE``.

``expand_memberships`` resolves nested groups (a user in group A, A a member of B, is in B too),
tolerating cycles, from the groups' ``member`` values alone, so a sync needs one paged group
search instead of a query per user or per group.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from accounts.exceptions import MappingError
from provisioning.dn import normalize_dn

# userAccountControl flags (MS-ADTS 2.2.16).
UAC_ACCOUNTDISABLE = 0x2
# accountExpires values that mean "never expires".
_AD_NEVER = {0, 0x7FFFFFFFFFFFFFFF}
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class DirectoryPreset:
    """Attribute names and filters of one directory flavour."""

    key: str
    label: str
    user_filter: str
    group_filter: str
    username: str
    email: str
    first_name: str
    last_name: str
    anchor: str
    anchor_is_guid: bool = False
    group_name: str = "cn"
    member: str = "member"
    changed: str = "modifyTimestamp"

    @property
    def user_attributes(self) -> tuple[str, ...]:
        """Every attribute a user search must ask for."""
        names = [self.username, self.email, self.first_name, self.last_name, self.anchor, self.changed]
        names += list(_STATE_ATTRIBUTES)
        return tuple(dict.fromkeys(names))

    @property
    def group_attributes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([self.group_name, self.anchor, self.member, self.changed]))


_STATE_ATTRIBUTES = ("userAccountControl", "accountExpires", "shadowExpire", "nsAccountLock",
                     "pwdAccountLockedTime")
_STATE_NAMES = frozenset(name.lower() for name in _STATE_ATTRIBUTES)

ACTIVE_DIRECTORY = DirectoryPreset(
    key="active-directory",
    label="Active Directory",
    # Computer accounts are objectClass=user too: a naive (objectClass=user) picks them up.
    user_filter="(&(objectCategory=person)(objectClass=user))",
    group_filter="(objectClass=group)",
    username="sAMAccountName",
    email="mail",
    first_name="givenName",
    last_name="sn",
    anchor="objectGUID",
    anchor_is_guid=True,
    changed="uSNChanged",
)
OPENLDAP = DirectoryPreset(
    key="openldap",
    label="OpenLDAP",
    user_filter="(objectClass=inetOrgPerson)",
    group_filter="(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
    username="uid",
    email="mail",
    first_name="givenName",
    last_name="sn",
    anchor="entryUUID",
    # entryCSN changes with every write, to the microsecond (modifyTimestamp has one-second steps), and
    # is ordered, so an incremental run's (entryCSN>=mark) re-reads almost nothing at its boundary.
    changed="entryCSN",
)
FREEIPA = DirectoryPreset(
    key="freeipa",
    label="FreeIPA",
    user_filter="(objectClass=person)",
    group_filter="(objectClass=groupOfNames)",
    username="uid",
    email="mail",
    first_name="givenName",
    last_name="sn",
    anchor="ipaUniqueID",
)
PRESETS: dict[str, DirectoryPreset] = {p.key: p for p in (ACTIVE_DIRECTORY, OPENLDAP, FREEIPA)}


@dataclass(frozen=True)
class DirectoryUser:
    """What a directory says about one user (``inactive_reason`` is empty when ``active``)."""

    dn: str
    anchor: str
    username: str
    email: str
    first_name: str
    last_name: str
    active: bool
    inactive_reason: str
    changed: str
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class DirectoryGroupEntry:
    """One directory group: its normalized DN, anchor, name and direct member DNs (normalized)."""

    dn: str
    anchor: str
    name: str
    members: frozenset[str]


def _decode(values: Iterable[bytes]) -> tuple[str, ...]:
    decoded = []
    for value in values:
        try:
            decoded.append(value.decode("utf-8"))
        except UnicodeDecodeError:
            continue  # binary attributes (photos, SIDs) carry nothing a rule can compare
    return tuple(decoded)


def _lower_keys(attributes: Mapping[str, list[bytes]]) -> dict[str, list[bytes]]:
    # LDAP attribute names are case-insensitive; AD answers "sAMAccountName", a filter may say "samaccountname".
    return {name.lower(): list(values) for name, values in attributes.items()}


def _first(attrs: Mapping[str, list[bytes]], name: str) -> str:
    values = _decode(attrs.get(name.lower(), ()))
    return values[0].strip() if values else ""


def entry_first(lowered: Mapping[str, list[bytes]], name: str) -> str:
    """The first text value of attribute ``name`` of a raw entry (``lower_names``), stripped; "" if none."""
    return _first(lowered, name)


def decode_anchor(raw: bytes, *, is_guid: bool) -> str:
    """The anchor as text: AD's 16-byte little-endian objectGUID as its usual UUID string."""
    if is_guid:
        if len(raw) != 16:
            raise MappingError("invalid_anchor", "The objectGUID value is not 16 bytes long.", field="anchor")
        return str(uuid.UUID(bytes_le=raw))
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise MappingError("invalid_anchor", "The anchor attribute is not text.", field="anchor") from None
    return text.lower()


def filetime_to_datetime(value: int) -> datetime | None:
    """An AD FILETIME (100 ns ticks since 1601-01-01 UTC) as a datetime; None for "never"."""
    if value in _AD_NEVER or value < 0:
        return None
    return _FILETIME_EPOCH + timedelta(microseconds=value // 10)


def _int(text: str) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def inactive_reason(attrs: Mapping[str, list[bytes]], *, now: datetime) -> str:
    """Why the directory says this account may not be used, or "" when it may.

    ``attrs`` must have lower-cased names. Unparseable values are ignored rather than guessed at:
    a garbled flag must not lock anyone out.
    """
    return _inactive_reason({name: _decode(values) for name, values in attrs.items()}, now=now)


def _first_text(decoded: Mapping[str, tuple[str, ...]], name: str) -> str:
    values = decoded.get(name.lower(), ())
    return values[0].strip() if values else ""


def _inactive_reason(decoded: Mapping[str, tuple[str, ...]], *, now: datetime) -> str:
    """``inactive_reason`` of values already decoded (lower-cased names)."""
    uac = _int(_first_text(decoded, "userAccountControl"))
    if uac is not None and uac & UAC_ACCOUNTDISABLE:
        return "disabled"
    expires = _int(_first_text(decoded, "accountExpires"))
    if expires is not None:
        when = filetime_to_datetime(expires)
        if when is not None and when <= now:
            return "expired"
    shadow = _int(_first_text(decoded, "shadowExpire"))
    if shadow is not None and shadow >= 0:
        if now.date() >= (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=shadow)).date():
            return "expired"
    if _first_text(decoded, "nsAccountLock").lower() == "true":
        return "locked"
    if _first_text(decoded, "pwdAccountLockedTime"):
        return "locked"
    return ""


def lower_names(attributes: Mapping[str, list[bytes]]) -> dict[str, list[bytes]]:
    """The entry's attributes by lower-cased name (the last spelling wins, as in ``translate_user``)."""
    return {name.lower(): values for name, values in attributes.items()}


def entry_inactive_reason(lowered: Mapping[str, list[bytes]], *, now: datetime) -> str:
    """``translate_user(...).inactive_reason`` of a raw entry (``lower_names``), decoding only the
    state attributes: a sync recognises an unchanged entry without translating it, but an expiry
    date passes with time, so the state is judged again on every run."""
    decoded = {name: _decode(lowered[name]) for name in _STATE_NAMES if name in lowered}
    return _inactive_reason(decoded, now=now) if decoded else ""  # most entries carry no state attribute


def cached_normalize_dn(dn: str, cache: dict[str, str] | None, *, remember: bool = True) -> str:
    """``normalize_dn(dn)``, looked up in (and with ``remember``, added to) ``cache`` when one is
    given: a sync meets each user's DN as a member of each of its groups, then once as an entry."""
    if cache is None:
        return normalize_dn(dn)
    found = cache.get(dn)
    if found is None:
        found = normalize_dn(dn)
        if remember:
            cache[dn] = found
    return found


def translate_user(dn: str, attributes: Mapping[str, list[bytes]], preset: DirectoryPreset, *,
                   now: datetime, dn_cache: dict[str, str] | None = None) -> DirectoryUser:
    """One user entry → ``DirectoryUser``; ``MappingError`` when it has no anchor or no username.
    ``dn_cache``: raw DN → normalised DN, filled by the run's ``translate_group`` calls."""
    attrs = _lower_keys(attributes)
    raw_anchor = attrs.get(preset.anchor.lower())
    if not raw_anchor:
        raise MappingError(
            "missing_anchor",
            f"The entry {dn} has no {preset.anchor}; idm links directory users by it. Check that the "
            "sync account may read it.",
            field=preset.anchor,
        )
    username = _first(attrs, preset.username)
    if not username:
        raise MappingError(
            "missing_username", f"The entry {dn} has no {preset.username} (the username attribute).",
            field=preset.username,
        )
    # Each value decoded once: the rules' attributes, the profile fields and the state all read them.
    decoded = {name: _decode(values) for name, values in attrs.items()}
    reason = _inactive_reason(decoded, now=now)
    anchor_name = preset.anchor.lower()
    return DirectoryUser(
        dn=cached_normalize_dn(dn, dn_cache, remember=False),  # an entry is read once
        anchor=decode_anchor(raw_anchor[0], is_guid=preset.anchor_is_guid),
        username=username,
        email=_first_text(decoded, preset.email),
        first_name=_first_text(decoded, preset.first_name),
        last_name=_first_text(decoded, preset.last_name),
        active=not reason,
        inactive_reason=reason,
        changed=_first_text(decoded, preset.changed),
        attributes={name: values for name, values in decoded.items() if name != anchor_name},
    )


def translate_group(dn: str, attributes: Mapping[str, list[bytes]], preset: DirectoryPreset, *,
                    dn_cache: dict[str, str] | None = None) -> DirectoryGroupEntry:
    """One group entry → ``DirectoryGroupEntry`` (members as normalized DNs; ``uniqueMember`` too).
    ``dn_cache``: raw DN → normalised DN, shared by the translations of one run."""
    attrs = _lower_keys(attributes)
    raw_anchor = attrs.get(preset.anchor.lower())
    if not raw_anchor:
        raise MappingError("missing_anchor", f"The group {dn} has no {preset.anchor}.", field=preset.anchor)
    members = set()
    for name in (preset.member.lower(), "uniquemember"):
        for value in _decode(attrs.get(name, ())):
            # uniqueMember may carry "#'0101'B" (an optional UID suffix): drop it.
            value = value.split("#", 1)[0] if name == "uniquemember" else value
            try:
                members.add(cached_normalize_dn(value, dn_cache))
            except MappingError:
                continue
    return DirectoryGroupEntry(
        dn=normalize_dn(dn),
        anchor=decode_anchor(raw_anchor[0], is_guid=preset.anchor_is_guid),
        name=_first(attrs, preset.group_name) or dn,
        members=frozenset(members),
    )


def expand_memberships(groups: Iterable[DirectoryGroupEntry]) -> dict[str, frozenset[str]]:
    """Member DN → every group DN it belongs to, directly or through nested groups (cycles tolerated).

    The result has an entry for every DN that is a direct member of some group, groups included.
    Each group's own ancestry is computed once, so 100k users in 1k groups cost one pass over the
    member lists plus a union per user.
    """
    direct: dict[str, set[str]] = {}
    for group in groups:
        for member in group.members:
            direct.setdefault(member, set()).add(group.dn)
    ancestry: dict[str, frozenset[str]] = {}

    def groups_above(group_dn: str) -> frozenset[str]:
        """``group_dn`` and every group it is nested in (a walk that stops at groups seen before)."""
        cached = ancestry.get(group_dn)
        if cached is not None:
            return cached
        seen: set[str] = set()
        stack = [group_dn]
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            stack.extend(direct.get(current, ()))
        ancestry[group_dn] = result = frozenset(seen)
        return result

    closure: dict[str, frozenset[str]] = {}
    for member, parents in direct.items():
        found: set[str] = set()
        for parent in parents:
            found |= groups_above(parent)
        closure[member] = frozenset(found)
    return closure
