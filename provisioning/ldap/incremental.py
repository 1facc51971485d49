"""Incremental directory runs: read only what changed since the last run, and still get memberships right.

The high-water mark (``Directory.high_water``) is where the last run's reading ended:

* Active Directory: the server's ``highestCommittedUSN`` read before the run's searches; the next
  run asks for ``(uSNChanged>=<mark + 1>)``;
* OpenLDAP: the greatest ``entryCSN`` the run saw (a change sequence number with microseconds); the
  next run asks for ``(entryCSN>=<mark>)``; FreeIPA / 389 DS the same with ``modifyTimestamp``
  (one-second steps). ``>=``: an entry changed in the mark's instant after it was read is not
  missed; the entry read again is skipped as unchanged.

Every group's change mark is read (without members). When a group changed, the groups are read whole
(a directory has few), so nesting is current: a membership-only change modifies the *group* entry,
not the user's, so users of changed groups (and of the groups those are nested in) whose entries did
not change get their stored record with the new group list (``regrouped_users``), and their roles
follow without reading their entries. When none changed, no member list is read: a changed user keeps
the groups of its stored record while its DN is the same (``sync.GroupView``).

Deletions cannot be seen by a query for changes: an incremental run blocks nobody as gone; a full run
(every ``Directory.full_every``, default 24 h, or ``--full``, or whenever the rules changed) reads
every entry and reconciles.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from accounts.identity.types import UNSET
from provisioning.inbound import SourceUser
from provisioning.ldap.fingerprint import CHECK_KEY, ENTRY_KEY, FIELDS_KEY, check_digest, groups_digest
from provisioning.ldap.translate import DirectoryPreset
from provisioning.resolve import source_links, stored_record
from provisioning.rules import SourceRecord

USN = "usnchanged"


def changed_filter(preset: DirectoryPreset, high_water: str) -> str:
    """The filter term selecting entries changed since ``high_water``."""
    if preset.changed.lower() == USN:
        return f"({preset.changed}>={int(high_water) + 1})"
    return f"({preset.changed}>={high_water})"


def later(preset: DirectoryPreset, first: str, second: str) -> str:
    """The later of two marks ("" counts as none)."""
    if not first or not second:
        return first or second
    if preset.changed.lower() == USN:
        return str(max(int(first), int(second)))
    return max(first, second)  # GeneralizedTime "YYYYmmddHHMMSSZ" sorts as text


def changed_since(preset: DirectoryPreset, mark: str, high_water: str) -> bool:
    """Whether an entry with change mark ``mark`` may have changed after ``high_water``.

    An entryCSN names one change (time to the microsecond, a counter and the server id): a group
    whose CSN equals the mark is the very change the last run read, not a new one. Counting it as
    changed made every incremental run re-mirror the directory's groups (18 s of an idle run at 100k
    users). A one-second ``modifyTimestamp`` equal to the mark may hide a later change: changed."""
    if not mark:
        return True  # no mark readable: assume changed
    if preset.changed.lower() == USN:
        return int(mark) > int(high_water)
    if preset.changed.lower() == "entrycsn":
        return mark > high_water
    return mark >= high_water


def affected_groups(changed: Iterable[str], closure: dict[str, frozenset[str]]) -> set[str]:
    """Changed groups and every group they are nested in (their transitive members changed too)."""
    out: set[str] = set()
    for group_dn in changed:
        out.add(group_dn)
        out |= closure.get(group_dn, frozenset())
    return out


def linked_dns(source) -> Iterator[tuple[str, str, int, dict]]:
    """(dn, external_id, user_id, raw) of every user linked to the source, from the stored records."""
    for external_id, user_id, raw in source_links(source).values_list("external_id", "user_id", "raw").iterator(
            chunk_size=5000):
        record = (raw or {}).get("record") or {}
        yield record.get("dn", ""), external_id, user_id, raw


def regrouped_users(source, *, affected: set[str], closure: dict[str, frozenset[str]], names: dict[str, str],
                    skip: set[str], member_user_ids: dict[str, int]) -> list[SourceUser]:
    """Linked users not read this run whose group list changed: their stored record with the new groups.

    Also fills ``member_user_ids`` (DN -> user id) for every linked group member, so the group mirror
    sees whole memberships although only changed entries were read.
    """
    out = []
    for dn, external_id, user_id, raw in linked_dns(source):
        groups_now = closure.get(dn, frozenset())
        if groups_now:
            member_user_ids.setdefault(dn, user_id)
        if external_id in skip:
            continue
        record = stored_record(raw)
        if record is None:
            continue
        group_dns = {g for g in record.groups if "=" in g}
        if not (group_dns & affected or groups_now & affected):
            continue
        new_groups = list(groups_now) + [names[g] for g in groups_now if g in names]
        rebuilt = SourceRecord.build(attributes=dict(record.attributes), groups=new_groups, dn=record.dn,
                                     active=record.active)
        if rebuilt.groups != record.groups:
            # The entry itself did not change: its fingerprint and fields stay valid, with the new
            # groups in its check.
            extra = {}
            if raw.get(ENTRY_KEY) and raw.get(FIELDS_KEY):
                extra = {ENTRY_KEY: raw[ENTRY_KEY], FIELDS_KEY: raw[FIELDS_KEY],
                         CHECK_KEY: check_digest(raw[ENTRY_KEY], groups_digest(rebuilt.groups))}
            out.append(SourceUser(external_id=external_id, record=rebuilt, username=UNSET, email=UNSET,
                                  first_name=UNSET, last_name=UNSET, link_extra=extra))
    return out
