"""The directory sync engine: read a whole directory over one bind, apply it through the provisioning
core, and never turn a directory problem into a mass lock-out.

One run (``sync_directory``):

1. takes the directory's run lock (one conditional UPDATE; a second trigger gets ``already_running``)
   and starts a ``ProvisioningRun``;
2. reads the groups (paged) and resolves nesting once (``translate.expand_memberships``; an
   incremental run in which no group changed reads only their change marks, ``GroupView``), then
   reads the users page by page: each entry is translated, given its groups (DNs and names, nested
   ones included) and applied in batches through ``provisioning.inbound.apply_source_batch`` — the
   core's one write path — so memory stays flat and nothing runs per user. A full run skips entries
   whose fingerprint equals the one their link keeps before translating them
   (``provisioning.ldap.fingerprint``);
3. users the rules would newly block (disabled in the directory, or an "inactive" rule) are set aside
   until the whole search has been read; so are users gone from it. Only then, after a complete
   search, are they counted against the **safety valve**: up to the threshold (max(10 % of the
   directory's users, 50) by default) they are blocked (deactivated after the grace period by the
   lifecycle); above it they are *held* — everything else is applied, the run ends ``held`` and
   nothing is blocked until someone runs it again with ``force``;
4. a directory error (bind, timeout, lost connection, a partial or empty result) ends the run
   ``failed`` with the error's hint: what was read so far is applied, nobody is blocked or
   deactivated;
5. mirrors the directory's groups and their (nested) memberships as the core's directory groups,
   and deactivates this directory's users whose grace period is over.

Counts: created, updated, unchanged, blocked, deactivated, reactivated, held, errors (``COUNT_KEYS``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType

from django.conf import settings
from django.contrib.auth.models import User
from django.db import DatabaseError, connection, transaction
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q
from django.db.models.fields.json import KT
from django.utils import timezone

from accounts.exceptions import ConflictError, IdentityError, MappingError
from accounts.identity.groups import NewGroup, group_delete, group_update, groups_create
from accounts.identity.links import link_records_refresh
from accounts.identity.memberships import groups_members_replace
from accounts.identity.types import UserState
from accounts.models import DirectoryGroup, ExternalIdentity, UserProfile
from provisioning.inbound import SourceUser, apply_source_batch
from provisioning.journal import JournalRecorder, finish_run, run_actor, start_run
from provisioning.ldap import incremental
from provisioning.ldap.alerts import alert_run
from provisioning.ldap.client import DirectoryError
from provisioning.ldap.directories import check_connection_vouched, open_client, preset_of
from provisioning.ldap.fingerprint import (
    CHECK_KEY,
    FIELDS_KEY,
    check_digest,
    entry_base,
    entry_digest,
    groups_digest,
    link_extra,
)
from provisioning.ldap.translate import (
    DirectoryGroupEntry,
    cached_normalize_dn,
    decode_anchor,
    entry_first,
    entry_inactive_reason,
    expand_memberships,
    lower_names,
    translate_group,
    translate_user,
)
from provisioning.lifecycle import deactivate_due, journal_states, source_actor, source_says_inactive
from provisioning.models import Directory, JournalEntry, ProvisioningRun, Source, UserBlock
from provisioning.preview import user_diffs
from provisioning.progress import record_progress
from provisioning.resolve import DIGEST_KEY, RECORD_KEY, record_digest, source_links
from provisioning.rules import RuleSet, SourceRecord, evaluate_active, is_canonical

log = logging.getLogger("idm.provisioning.sync")
COUNT_KEYS = ("created", "updated", "unchanged", "blocked", "deactivated", "reactivated", "held", "errors")
BATCH = 1000


def lock_seconds() -> int:
    """How long a run's lock lives without a heartbeat (a crashed worker's lock expires after it)."""
    return int(getattr(settings, "IDM_DIRECTORY_LOCK_SECONDS", 300))


def count_line(counts: dict) -> str:
    """The one-line summary ``manage.py sync_directory`` ends with."""
    return ", ".join(f"{key} {counts.get(key, 0)}" for key in COUNT_KEYS)


class RunLock:
    """One sync per directory at a time, across processes and workers: a lease on the directory row.

    ``acquire`` is a single conditional UPDATE (free or expired → ours), so two triggers racing for it
    cannot both win; ``heartbeat`` extends the lease while the run works; ``release`` frees it only if
    it is still ours.
    """

    def __init__(self, directory: Directory):
        self.directory = directory
        self.token = uuid.uuid4().hex
        self._renewed = time.monotonic()

    def _rows(self):
        return Directory.objects.filter(pk=self.directory.pk)

    def acquire(self) -> None:
        now = timezone.now()
        taken = self._rows().filter(Q(lock_expires_at__isnull=True) | Q(lock_expires_at__lt=now)).update(
            lock_owner=self.token, lock_expires_at=now + timedelta(seconds=lock_seconds()))
        self._renewed = time.monotonic()
        if not taken:
            raise DirectoryError(
                "already_running",
                f"A sync of {self.directory.source.name} is already running; wait for it to finish.",
            )

    def heartbeat(self) -> None:
        """Extend the lease, at most every tenth of its length: each extension is a commit, and a run
        calls this after every batch (100 times at 100k users)."""
        if time.monotonic() - self._renewed < lock_seconds() / 10:
            return
        self._renewed = time.monotonic()
        self._rows().filter(lock_owner=self.token).update(
            lock_expires_at=timezone.now() + timedelta(seconds=lock_seconds()))

    def release(self) -> None:
        self._rows().filter(lock_owner=self.token).update(lock_owner="", lock_expires_at=None)


@dataclass
class _State:
    """What a run accumulates while it streams the directory (ids and anchors, not entries)."""

    counts: dict = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    seen: set[str] = field(default_factory=set)
    deferred: list[SourceUser] = field(default_factory=list)
    member_user_ids: dict[str, int] = field(default_factory=dict)  # user DN -> user id (group members only)
    skip_unchanged: bool = False
    group_changed: dict[str, str] = field(default_factory=dict)  # group DN -> its change mark
    high_water: str = ""
    # An incremental run's anchor reconciliation: every anchor the user search matches now.
    present: set[str] = field(default_factory=set)
    written: int = 0  # entries handed to the identity service (progress)
    dn_cache: dict[str, str] = field(default_factory=dict)  # raw DN -> normalised (members, then entries)
    # A full run's links, read once (``_preload_links``); None: compare batch by batch.
    links: dict | None = None


class GroupRefs:
    """Each user's group references (group DNs and names, normalised as ``SourceRecord.build`` does),
    each group's computed once per run: normalising every member's group DNs again per user was a
    quarter of a no-change full run."""

    def __init__(self, closure: dict[str, frozenset[str]], names: dict[str, str]):
        self.closure, self.names = closure, names
        self._of_group: dict[str, frozenset[str]] = {}
        self._digests: dict[frozenset[str], str] = {}

    def _group(self, group_dn: str) -> frozenset[str]:
        refs = self._of_group.get(group_dn)
        if refs is None:
            given = [group_dn] + ([self.names[group_dn]] if group_dn in self.names else [])
            refs = self._of_group[group_dn] = SourceRecord.build(groups=given).groups
        return refs

    def of(self, dn: str) -> frozenset[str]:
        """The normalised group references of the entry ``dn`` (nested groups included)."""
        group_dns = self.closure.get(dn)
        if not group_dns:
            return frozenset()
        return frozenset().union(*(self._group(g) for g in group_dns))

    def digest(self, dn: str) -> str:
        """``fingerprint.groups_digest`` of ``of(dn)``, computed once per set of groups (users often
        share one)."""
        group_dns = self.closure.get(dn) or frozenset()
        found = self._digests.get(group_dns)
        if found is None:
            found = self._digests[group_dns] = groups_digest(self.of(dn))
        return found


def _record(user, groups: frozenset[str]) -> SourceRecord:
    """The entry as the rules read it, with ``groups`` (normalised references, ``GroupRefs.of``);
    equal to ``SourceRecord.build`` of the same data (the skip of unchanged entries compares it with
    the stored one). ``translate_user`` already lower-cased the attribute names, decoded the values
    and normalised the DN, so only unusual names (not ASCII) go through ``build`` again."""
    attributes = user.attributes
    if not all(name == name.casefold() and name == name.strip() for name in attributes):
        return SourceRecord.build(attributes=attributes, groups=groups, dn=user.dn, active=user.active)
    return SourceRecord(attributes=MappingProxyType(dict(attributes)), groups=groups, dn=user.dn, active=user.active)


def _read_groups(client, directory: Directory, preset, recorder: JournalRecorder, state: _State, *,
                 members: bool = True, report: bool = True) -> list[DirectoryGroupEntry]:
    """The directory's groups (each once) with their change marks (``state.group_changed``).
    ``members=False``: without their members (a fraction of the transfer: an incremental run's check
    whether any group changed). ``report=False``: refused groups were journaled already."""
    attributes = preset.group_attributes if members else tuple(
        name for name in preset.group_attributes if name.lower() not in (preset.member.lower(), "uniquemember"))
    groups: dict[str, DirectoryGroupEntry] = {}
    for base in directory.base_dns:
        for page in client.search(base_dn=base, filter=preset.group_filter, attributes=attributes,
                                  page_size=directory.page_size):
            for entry in page:
                try:
                    group = translate_group(entry.dn, entry.attributes, preset, dn_cache=state.dn_cache)
                except MappingError as exc:
                    if report:
                        state.counts["errors"] += 1
                        recorder.add(subject="group", result=JournalEntry.Result.REFUSED, code=exc.code,
                                     message=exc.message, ref=entry.dn)
                    continue
                groups[group.dn] = group  # overlapping base DNs list a group once
                mark = next((v[0].decode("ascii", "replace") for k, v in entry.attributes.items()
                             if k.lower() == preset.changed.lower() and v), "")
                state.group_changed[group.dn] = mark
                state.high_water = incremental.later(preset, state.high_water, mark)
    return list(groups.values())


class GroupView:
    """The directory's groups as a run needs them: read whole (members included) before the users by
    a full run, or by an incremental run in which a group changed.

    An incremental run in which no group changed (by the groups' change marks, read without members)
    reads the members of no group: a user's memberships are values of the groups, so with no group
    changed a changed user keeps the groups its stored record lists, as long as its DN is the same.
    A user without a stored record, or with another DN, makes the run read the groups whole after
    all (``load``), as before. At 100k users the members are 170k DNs to transfer and normalise."""

    def __init__(self, load):
        self._load = load
        self.groups: list[DirectoryGroupEntry] | None = None
        self.closure: dict[str, frozenset[str]] = {}
        self.names: dict[str, str] = {}
        self.refs = GroupRefs({}, {})

    @property
    def loaded(self) -> bool:
        return self.groups is not None

    def load(self) -> None:
        if self.groups is None:
            self.groups = self._load()
            self.closure = expand_memberships(self.groups)
            self.names = {g.dn: g.name for g in self.groups}
            self.refs = GroupRefs(self.closure, self.names)


def _stored_groups(source: Source, external_ids: list[str]) -> dict[str, tuple[str, frozenset[str]]]:
    """Anchor -> (DN, groups) of the stored records of ``external_ids`` (canonical ones only)."""
    out = {}
    for ext, dn, groups in source_links(source).filter(external_id__in=external_ids).values_list(
            "external_id", f"raw__{RECORD_KEY}__dn", f"raw__{RECORD_KEY}__groups"):
        if type(dn) is str and type(groups) is list and all(type(g) is str and is_canonical(g) for g in groups):
            out[ext] = (dn, frozenset(groups))
    return out


@dataclass(frozen=True)
class _RawEntry:
    """A user entry as read, before translation (``anchor`` "" when it has none readable: translating
    it reports why)."""

    dn: str
    attributes: dict
    lowered: dict
    anchor: str
    base: bytes  # fingerprint.entry_base


def _entry_batches(client, directory: Directory, preset, user_filter: str) -> Iterator[list[_RawEntry]]:
    anchor_name = preset.anchor.lower()
    batch: list[_RawEntry] = []
    for base in directory.base_dns:
        for page in client.search(base_dn=base, filter=user_filter, attributes=preset.user_attributes,
                                  page_size=directory.page_size):
            for entry in page:
                lowered = lower_names(entry.attributes)
                values = lowered.get(anchor_name)
                anchor = ""
                if values:
                    try:
                        anchor = decode_anchor(values[0], is_guid=preset.anchor_is_guid)
                    except MappingError:
                        pass
                batch.append(_RawEntry(entry.dn, entry.attributes, lowered, anchor,
                                       entry_base(entry.dn, entry.attributes)))
                if len(batch) >= BATCH:
                    yield batch
                    batch = []
    if batch:
        yield batch


@dataclass(frozen=True)
class _Preloaded:
    """A link as a full run's skip of unchanged entries reads it (``_preload_links``)."""

    user_id: int
    blocked: bool  # by this source
    check: str | None  # fingerprint.CHECK_KEY
    fields_equal: bool | None  # the user's profile fields equal fingerprint.FIELDS_KEY


def _preload_links(source: Source) -> dict[str, _Preloaded]:
    """Every link of the source with what the skip needs, in one query: a full run reads every entry,
    and a query per batch of 1,000 anchors cost a scan of the links each (O(n²) at 100k users)."""
    fields_equal = Q()
    for name in ("username", "email", "first_name", "last_name"):
        fields_equal &= Q(**{f"user__{name}": KT(f"raw__{FIELDS_KEY}__{name}")})
    blocked = Exists(UserBlock.objects.filter(user_id=OuterRef("user_id"), source=source))
    links = source_links(source).annotate(
        blocked_by_source=blocked, fields_equal=ExpressionWrapper(fields_equal, output_field=BooleanField()))
    return {ext: _Preloaded(*rest) for ext, *rest in links.values_list(
        "external_id", "user_id", "blocked_by_source", KT(f"raw__{CHECK_KEY}"), "fields_equal",
    ).iterator(chunk_size=10_000)}


def _apply_entries(directory: Directory, entries: list[_RawEntry], run: ProvisioningRun, dry_run: bool,
                   view: GroupView, state: _State, *, preset, recorder: JournalRecorder, now) -> None:
    """Apply one batch of read entries. In a full run with the config unchanged (``state.links``
    preloaded), an entry whose fingerprint equals the one its link keeps
    (``provisioning.ldap.fingerprint``) is unchanged and is not even translated; the others are
    translated and go to ``_apply_batch``, which compares them through their records."""
    preloaded = state.links
    users: list[SourceUser] = []
    changed_name = preset.changed.lower()
    group_refs, closure = view.refs, view.closure
    stored = {} if view.loaded else _stored_groups(directory.source, [e.anchor for e in entries if e.anchor])
    for entry in entries:
        if entry.anchor in state.seen:
            continue  # overlapping base DNs list an entry twice
        row = preloaded.pop(entry.anchor, None) if preloaded is not None else None
        if row is not None and row.check and row.fields_equal:
            active = not entry_inactive_reason(entry.lowered, now=now)
            dn = cached_normalize_dn(entry.dn, state.dn_cache, remember=False)
            # A user this source blocked is planned when the entry says active (see _without_unchanged).
            if not (row.blocked and active) and row.check == check_digest(
                    entry_digest(entry.base, active=active), group_refs.digest(dn)):
                state.seen.add(entry.anchor)
                state.high_water = incremental.later(preset, state.high_water,
                                                     entry_first(entry.lowered, changed_name))
                if dn in closure:
                    state.member_user_ids[dn] = row.user_id
                continue
        try:
            user = translate_user(entry.dn, entry.attributes, preset, now=now, dn_cache=state.dn_cache)
        except MappingError as exc:
            state.counts["errors"] += 1
            recorder.add(subject="entry", result=JournalEntry.Result.REFUSED, code=exc.code,
                         message=exc.message, ref=entry.dn)
            continue
        if user.anchor in state.seen:
            continue
        state.seen.add(user.anchor)
        state.high_water = incremental.later(preset, state.high_water, user.changed)
        dn_and_groups = None if view.loaded else stored.get(user.anchor)
        if dn_and_groups is not None and dn_and_groups[0] == user.dn:
            record = _record(user, dn_and_groups[1])
        else:
            if not view.loaded:
                view.load()
                group_refs, closure = view.refs, view.closure
            record = _record(user, group_refs.of(user.dn))
        fields = {"username": user.username, "email": user.email, "first_name": user.first_name,
                  "last_name": user.last_name}
        users.append(SourceUser(
            external_id=user.anchor, record=record, **fields,
            link_extra=link_extra(entry=entry_digest(entry.base, active=user.active),
                                  groups=groups_digest(record.groups), fields=fields)))
    if users:
        _apply_batch(directory, users, run, dry_run, view.closure, state)


def _read_anchors(client, directory: Directory, preset, state: _State) -> None:
    """Every anchor the user search matches now, and nothing else of the entries (``state.present``):
    what an incremental run needs to find users deleted from or moved out of the directory's scope.
    The client raises on a partial result, so a short answer never looks like deletions."""
    anchor = preset.anchor.lower()
    for base in directory.base_dns:
        for page in client.search(base_dn=base, filter=preset.user_filter, attributes=(preset.anchor,),
                                  page_size=directory.page_size):
            for entry in page:
                values = next((v for k, v in entry.attributes.items() if k.lower() == anchor and v), None)
                if values is None:
                    continue
                try:
                    state.present.add(decode_anchor(values[0], is_guid=preset.anchor_is_guid))
                except MappingError:
                    continue  # a full run refuses such an entry with its code


def _reconcile_due(directory: Directory) -> bool:
    """Whether an incremental run must also check every anchor (``Directory.reconcile_every``)."""
    last = directory.last_reconciled_at
    return last is None or timezone.now() - last >= directory.reconcile_every


def _add_counts(state: _State, batch_counts: dict) -> None:
    state.counts["created"] += batch_counts.get("created", 0)
    state.counts["blocked"] += batch_counts.get("blocked", 0)
    state.counts["reactivated"] += batch_counts.get("reactivated", 0)
    state.counts["errors"] += batch_counts.get("errors", 0) + batch_counts.get("refused", 0)


def config_digest(directory: Directory) -> str:
    """A fingerprint of what decides a user's org, roles and state besides the entry itself (the
    rules and org settings) and of what the searches return (bases, filters, preset, attribute map).
    While it is unchanged, unchanged entries may be skipped and runs may be incremental."""
    source = directory.source
    policy = source.org_policy()
    rules = [[r.kind, r.condition.kind, r.condition.attribute, r.condition.value, r.position, r.org_id,
              sorted(r.roles), r.saved_by_cloud_admin] for r in source.rule_set()]
    data = [rules, [policy.mode, policy.fixed_org_id, policy.attribute, policy.create_under_id,
                    policy.fallback_org_id],
            [directory.base_dns, directory.user_filter, directory.group_filter, directory.preset,
             directory.attribute_map]]
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class _LinkRow:
    """What the skip of unchanged entries reads of a link (and its user)."""

    user_id: int
    blocked: bool  # by this source
    digest: str | None  # of the stored record
    check: str | None  # fingerprint.CHECK_KEY
    username: str
    email: str
    first_name: str
    last_name: str


def _link_rows(source: Source, external_ids: list[str]) -> dict[str, _LinkRow]:
    """The links of ``external_ids`` as the skip reads them, in one query: digests, not records."""
    if not external_ids:
        return {}
    links = source_links(source).filter(external_id__in=external_ids)
    blocked = Exists(UserBlock.objects.filter(user_id=OuterRef("user_id"), source=source))
    return {ext: _LinkRow(*rest) for ext, *rest in links.annotate(blocked_by_source=blocked).values_list(
        "external_id", "user_id", "blocked_by_source", KT(f"raw__{DIGEST_KEY}"), KT(f"raw__{CHECK_KEY}"),
        "user__username", "user__email", "user__first_name", "user__last_name")}


def _without_unchanged(source: Source, batch: list[SourceUser], rows: dict[str, _LinkRow] | None = None,
                       *, dry_run: bool = False) -> tuple[list[SourceUser], dict[str, int]]:
    """The batch minus entries whose directory data equals what the last run stored for the linked
    user (record and profile fields), and the user ids of the batch's linked entries (by anchor).

    A user this source has blocked is skipped only while the unchanged entry itself still says
    "inactive" (disabled, expired, locked): the block stands either way. One the entry calls active
    (gone and back, or blocked by an "inactive" rule) is planned, so coming back unblocks.

    The stored record is compared through its digest (``resolve.record_digest``, kept beside it), so
    the database sends 64 characters per user instead of the whole record; links stored before
    digests existed are compared record by record. One query per batch (two with such links), none
    when the caller read ``rows`` (``_link_rows``) already. An unchanged user whose link lacks the
    entry's current fingerprints (``user.link_extra``: written before them) gets them, so the next
    run skips it without translating."""
    if rows is None:
        rows = _link_rows(source, [u.external_id for u in batch])
    undigested = [ext for ext in (u.external_id for u in batch) if ext in rows and not rows[ext].digest]
    stored_records = dict(source_links(source).filter(external_id__in=undigested).values_list(
        "external_id", f"raw__{RECORD_KEY}")) if undigested else {}
    changed = []
    refresh: dict[int, dict] = {}
    for user in batch:
        row = rows.get(user.external_id)
        if row is None or (row.blocked and user.record.active is not False):
            changed.append(user)
            continue
        if (row.username, row.email, row.first_name, row.last_name) != (
                user.username, user.email, user.first_name, user.last_name):
            changed.append(user)
            continue
        data = user.record.to_json()
        digest = record_digest(data)
        if (digest != row.digest) if row.digest else (stored_records.get(user.external_id) != data):
            changed.append(user)
        elif user.link_extra and row.check != user.link_extra.get(CHECK_KEY):
            refresh[row.user_id] = {RECORD_KEY: data, DIGEST_KEY: digest, **user.link_extra}
    if refresh and not dry_run:
        link_records_refresh(source=source.kind, provider=source.slug, raws=refresh)
    return changed, {ext: row.user_id for ext, row in rows.items()}


def _apply_batch(directory: Directory, batch: list[SourceUser], run: ProvisioningRun, dry_run: bool,
                 closure, state: _State) -> None:
    """Apply a batch, setting aside linked users the rules would newly block (the safety valve
    decides about them once the whole directory has been read)."""
    source = directory.source
    members = [u for u in batch if u.record.dn in closure]
    known: dict[str, int] = {}  # anchor -> user id of skipped (unchanged) entries
    if state.skip_unchanged:
        batch, linked_before = _without_unchanged(source, batch, dry_run=dry_run)
        planned = {u.external_id for u in batch}
        known = {ext: uid for ext, uid in linked_before.items() if ext not in planned}
    linked = dict(source_links(source).filter(external_id__in=[u.external_id for u in batch])
                  .values_list("external_id", "user_id")) if batch else {}
    if linked:
        # Only a user the source or its rules call inactive can be newly blocked: the others need no
        # diff (it was every linked user's, computed again by the rules step after the write).
        ruleset = RuleSet.of(source.rule_set())
        by_user = {linked[u.external_id]: u for u in batch
                   if u.external_id in linked and not evaluate_active(ruleset, u.record)}
        would_block = {diff.user_id for diff in user_diffs(
            source=source, rules=ruleset, org_policy=source.org_policy(), user_ids=list(by_user),
            records={uid: u.record for uid, u in by_user.items()}) if diff is not None and diff.inactive
        } if by_user else set()
        if would_block:
            state.deferred += [by_user[uid] for uid in would_block]
            batch = [u for u in batch if linked.get(u.external_id) not in would_block]
    if batch:
        _add_counts(state, apply_source_batch(source=source, users=batch, run=run, dry_run=dry_run))
        state.written += len(batch)
    # Group members' user ids for the mirror: skipped entries' ids are known; only the others are asked.
    ask = [u.external_id for u in members if u.external_id not in known]
    now_linked = dict(source_links(source).filter(external_id__in=ask).values_list("external_id", "user_id")
                      ) if ask else {}
    for user in members:
        user_id = known.get(user.external_id) or now_linked.get(user.external_id)
        if user_id is not None:
            state.member_user_ids[user.record.dn] = user_id


class PlannerStatistics:
    """Keeps PostgreSQL's statistics of the tables a sync looks users up in roughly current while the
    sync itself fills them, as autovacuum would (it may be off, or not have run yet mid-sync).

    Without statistics the planner takes the source's links for a handful of rows and answers "the
    links of these 1,000 anchors" by scanning all of the source's links, so each batch of a first
    sync cost more than the one before (O(n²): at 100k users ~75 ms per lookup, several per batch,
    against ~5 ms with statistics). ``ANALYZE`` of the looked-up columns only, each time the links
    have doubled since the last one (at 1k, 2k, 4k ... created: a few tenths of a second for 100k
    users in all). A database user that does not own the tables gets a warning from PostgreSQL,
    not an error."""

    MIN_GROWTH = 1000

    def __init__(self, linked_before: int):
        self.linked_before = self.analyzed_at = linked_before

    def after_batch(self, *, created: int) -> None:
        """``created``: the users the run has created so far."""
        linked_now = self.linked_before + created
        if linked_now - self.analyzed_at < max(self.MIN_GROWTH, self.analyzed_at) or connection.vendor != "postgresql":
            return
        self.analyzed_at = linked_now
        tables = [(ExternalIdentity, ("source", "provider", "external_id", "user")), (User, ("id", "username")),
                  (UserProfile, ("user", "org", "state")), (User.groups.through, ("user", "group"))]
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                for model, names in tables:
                    quote = connection.ops.quote_name
                    columns = ", ".join(quote(model._meta.get_field(name).column) for name in names)
                    cursor.execute(f"ANALYZE {quote(model._meta.db_table)} ({columns})")
        except DatabaseError:
            log.warning("directory sync: could not refresh the planner statistics", exc_info=True)


def _threshold(directory: Directory, linked_count: int) -> int:
    return max(math.ceil(linked_count * directory.deactivation_threshold_percent / 100),
               directory.deactivation_threshold_min)


def _gone_user_ids(directory: Directory, seen: set[str]) -> list[int]:
    ids = []
    for external_id, user_id in source_links(directory.source).values_list("external_id", "user_id").iterator(
            chunk_size=5000):
        if external_id not in seen:
            ids.append(user_id)
    return ids


def _finish_lifecycle(directory: Directory, run: ProvisioningRun, dry_run: bool, force: bool, state: _State,
                      recorder: JournalRecorder, *, complete: bool = True) -> str:
    """Block the deferred and (after a complete read) gone users, or hold them all above the
    threshold (the returned message; "" when nothing was held)."""
    source = directory.source
    actor = run_actor(source_actor(source), run)
    gone = _gone_user_ids(directory, state.seen | state.present) if complete else []
    active_states = (UserState.ACTIVE, UserState.INVITED)
    gone_active = set(UserProfile.objects.filter(user_id__in=gone, state__in=active_states)
                      .values_list("user_id", flat=True))
    linked_count = source_links(source).count()
    would = len(state.deferred) + len(gone_active)
    limit = _threshold(directory, linked_count)
    if would > limit and not force:
        state.counts["held"] = would
        message = (f"Held: {would} users would be blocked and then deactivated, more than the threshold of "
                   f"{limit}. Check the base DN and filters; if the directory really lost them, run the sync "
                   "again with 'apply anyway' (--force).")
        deferred_ids = dict(source_links(source).filter(external_id__in=[u.external_id for u in state.deferred])
                            .values_list("external_id", "user_id"))
        for user_id in [deferred_ids.get(u.external_id) for u in state.deferred] + sorted(gone_active):
            recorder.add(subject="state", user_id=user_id, new="blocked", result=JournalEntry.Result.REFUSED,
                         code="deactivation_held", message=message)
        recorder.flush()
        return message
    if state.deferred:
        _add_counts(state, apply_source_batch(source=source, users=state.deferred, run=run, dry_run=dry_run))
        state.written += len(state.deferred)
    if gone:
        # Journaled from what the service did (or would do): a refused block is "refused", never "applied".
        outcome = source_says_inactive(source=source, user_ids=gone, actor=actor, dry_run=dry_run,
                                       reason="gone from the directory")
        state.counts["blocked"] += outcome.blocked
        state.counts["errors"] += outcome.refused
        journal_states(recorder, outcome, new="blocked", dry_run=dry_run, message="gone from the directory")
    recorder.flush()
    return ""


def _mirror_groups(directory: Directory, groups: list[DirectoryGroupEntry], closure, run: ProvisioningRun,
                   state: _State, only: set[str] | None = None) -> None:
    """The directory's groups as the core's directory groups, with their nested user memberships.

    ``only`` (an incremental run): the DNs of the groups whose memberships may have changed (changed
    groups and the groups they are nested in); the others keep theirs. Renames, new and deleted
    groups are handled for all (groups are always read whole)."""
    source = directory.source
    actor = run_actor(source_actor(source), run)
    members: dict[str, set[int]] = defaultdict(set)
    for dn, user_id in state.member_user_ids.items():
        for group_dn in closure.get(dn, ()):
            members[group_dn].add(user_id)
    existing = {g.external_id: g for g in DirectoryGroup.objects.filter(source=source.kind, provider=source.slug)}
    # Every mirrored group's members in one query, so a group whose members did not change costs no
    # statement (a no-change run of 1,000 groups asked 1,000 times otherwise).
    current: dict[int, set[int]] = defaultdict(set)
    for group_id, user_id in (User.groups.through.objects
                              .filter(group__directory_group__source=source.kind,
                                      group__directory_group__provider=source.slug)
                              .values_list("group_id", "user_id").iterator(chunk_size=10_000)):
        current[group_id].add(user_id)
    # New groups in one call, and every group's membership changes in one more: a first sync creates
    # 1,000 groups and 170k memberships (one audit event each) in a handful of statements.
    anchors = [group.anchor for group in groups]
    if len(set(anchors)) != len(anchors):  # the same object under two DNs: refused, nothing written
        twice = next(anchor for anchor, n in Counter(anchors).items() if n > 1)
        raise ConflictError("group_exists", f"Two directory groups have the anchor {twice!r}.")
    new = [group for group in groups if group.anchor not in existing]
    created = dict(zip((group.anchor for group in new),
                       groups_create(actor=actor, groups=[NewGroup(group.name[:255], group.anchor) for group in new]),
                       strict=True))
    replace = []
    for group in groups:
        dgroup = existing.pop(group.anchor, None)
        if dgroup is None:
            dgroup = created[group.anchor]
        elif dgroup.display_name != group.name[:255]:
            group_update(actor=actor, dgroup=dgroup, display_name=group.name[:255])
        elif only is not None and group.dn not in only:
            continue
        wanted = members.get(group.dn, set())
        if current.get(dgroup.group_id, set()) != wanted:
            replace.append((dgroup, wanted))
    groups_members_replace(actor=actor, members=replace)
    for dgroup in existing.values():  # gone from the directory (a complete read)
        group_delete(actor=actor, dgroup=dgroup)


def _finish_counts(run: ProvisioningRun, state: _State, dry_run: bool, is_incremental: bool = False) -> dict:
    """Updated / unchanged from the journal: a user counts once, whatever number of fields changed."""
    counts = state.counts
    entries = JournalEntry.objects.filter(run=run, user_id__isnull=False)
    changed = set(entries.filter(result__in=[JournalEntry.Result.APPLIED, JournalEntry.Result.PLANNED])
                  .exclude(subject="state").values_list("user_id", flat=True).distinct())
    touched = set(entries.values_list("user_id", flat=True).distinct())
    created_with_ids = 0 if dry_run else counts["created"]
    counts["updated"] = max(0, len(changed) - created_with_ids)
    # An incremental run reads changed entries only; every other linked user is unchanged by definition.
    # (Filtered here, not with an IN of 100k anchors, which SQLite refuses.)
    seen_ids = {user_id for external_id, user_id in source_links(run.source).values_list("external_id", "user_id")
                .iterator(chunk_size=5000) if is_incremental or external_id in state.seen}
    counts["unchanged"] = len(seen_ids - touched)
    counts["read"] = len(state.seen)  # entries read (an incremental run reads only changed ones)
    counts["incremental"] = int(is_incremental)
    if state.present:
        counts["anchors_checked"] = len(state.present)
    return counts


def sync_directory(directory: Directory, *, dry_run: bool = False, force: bool = False, full: bool = False,
                   started_by: str = "") -> ProvisioningRun:
    """Run one sync of ``directory`` (see the module docstring); the finished run.

    Entries whose data did not change since the last complete run are skipped while the rules are
    the same; ``full`` re-plans every entry (the rules' decisions re-imposed on everyone).

    Raises ``DirectoryError("already_running")`` when another run holds the lock; every other
    failure ends the run ``failed`` with its hint (the run is returned, not raised), except a bug,
    which is re-raised after the run is marked failed.
    """
    lock = RunLock(directory)
    lock.acquire()
    try:
        # The settings and marks as stored now (the caller's instance may be older than the last run).
        directory = Directory.objects.select_related("source").get(pk=directory.pk)
        source = directory.source
        actor = source_actor(source)
        run = start_run(kind=ProvisioningRun.Kind.SYNC, actor=actor, source=source, dry_run=dry_run)
        if started_by:
            run.started_by_label = started_by[:255]
            run.save(update_fields=["started_by_label"])
        Directory.objects.filter(pk=directory.pk).update(last_run_started_at=run.started_at)
        try:
            run = _run(directory, run, lock, dry_run=dry_run, force=force, full=full)
        except Exception:
            try:  # the run is marked failed; an alert that cannot be sent must not hide the bug
                run.refresh_from_db()
                alert_run(run)
            except Exception:  # noqa: BLE001
                log.exception("directory sync %s: alert about the failure not sent", run.run_id)
            raise
        alert_run(run)
        return run
    finally:
        lock.release()


def _is_incremental(directory: Directory, full: bool, state: _State) -> bool:
    """Incremental when a complete run set a mark, the rules are unchanged and a full run is not due."""
    if full or not state.skip_unchanged or not directory.high_water or directory.last_full_at is None:
        return False
    return timezone.now() - directory.last_full_at < directory.full_every


def _run(directory: Directory, run: ProvisioningRun, lock: RunLock, *, dry_run: bool, force: bool,
         full: bool) -> ProvisioningRun:
    digest = config_digest(directory)
    state = _State(skip_unchanged=not full and bool(directory.applied_config_digest)
                   and directory.applied_config_digest == digest)
    is_incremental = _is_incremental(directory, full, state)
    reconcile = is_incremental and _reconcile_due(directory)
    if not is_incremental:  # an estimate for the progress bar: the users linked before this run
        run.progress_total = source_links(directory.source).count()
        ProvisioningRun.objects.filter(pk=run.pk).update(progress_total=run.progress_total)
    recorder = JournalRecorder(run)
    preset = preset_of(directory)
    user_filter = preset.user_filter
    if is_incremental:
        user_filter = f"(&{preset.user_filter}{incremental.changed_filter(preset, directory.high_water)})"
    usn = ""
    mark_went_back = False
    try:
        check_connection_vouched(directory)
        with open_client(directory) as client:
            if preset.changed.lower() == incremental.USN:
                # AD: the mark is the server's USN before reading, so nothing changed meanwhile is missed.
                dse = client.read_root_dse(["highestCommittedUSN"])
                usn = (dse.get("highestCommittedUSN") or [b""])[0].decode("ascii")
                if is_incremental and usn.isdigit() and int(usn) < int(directory.high_water or 0):
                    # The server's USN went backwards (a restore, or another DC behind the same name):
                    # "changed since the mark" cannot be trusted, so this run reads everything.
                    is_incremental, reconcile, user_filter = False, False, preset.user_filter
                    mark_went_back = True
            record_progress(run, phase="groups")
            view = GroupView(lambda: _read_groups(client, directory, preset, recorder, state,
                                                  report=not is_incremental))
            if is_incremental:
                marks = _read_groups(client, directory, preset, recorder, state, members=False)
                if any(incremental.changed_since(preset, state.group_changed[g.dn], directory.high_water)
                       for g in marks):
                    view.load()
            else:
                view.load()
            lock.heartbeat()
            record_progress(run, phase="users", read=0)
            now = timezone.now()
            if state.skip_unchanged and not is_incremental:
                state.links = _preload_links(directory.source)
            statistics = PlannerStatistics(len(state.links) if state.links is not None
                                           else source_links(directory.source).count())
            for entries in _entry_batches(client, directory, preset, user_filter):
                _apply_entries(directory, entries, run, dry_run, view, state, preset=preset,
                               recorder=recorder, now=now)
                lock.heartbeat()
                record_progress(run, phase="users", read=len(state.seen), written=state.written)
                statistics.after_batch(created=state.counts["created"])
            state.links = None
            if reconcile:
                record_progress(run, phase="anchors")
                _read_anchors(client, directory, preset, state)
                lock.heartbeat()
        if preset.changed.lower() == incremental.USN:
            state.high_water = usn
        recorder.flush()
        changed_groups: set[str] = set()
        affected: set[str] | None = None
        if is_incremental:
            changed_groups = {dn for dn, mark in state.group_changed.items()
                              if incremental.changed_since(preset, mark, directory.high_water)}
            if changed_groups:  # the view was loaded before the users were read
                affected = incremental.affected_groups(changed_groups, view.closure)
                regrouped = incremental.regrouped_users(
                    directory.source, affected=affected, closure=view.closure,
                    names=view.names, skip=state.seen, member_user_ids=state.member_user_ids)
                for start in range(0, len(regrouped), BATCH):
                    _apply_batch(directory, regrouped[start:start + BATCH], run, dry_run, view.closure, state)
                    lock.heartbeat()
        if not is_incremental or reconcile:
            linked = source_links(directory.source).count()
            if not (state.seen | state.present) and linked and not force:
                raise DirectoryError(
                    "empty_result",
                    f"The user search returned no entries while {linked} users are linked to this directory. "
                    "Check the base DN and the user filter; nobody was blocked or deactivated.",
                    field="user_filter",
                )
        record_progress(run, phase="lifecycle")
        held = _finish_lifecycle(directory, run, dry_run, force, state, recorder,
                                 complete=not is_incremental or reconcile)
        record_progress(run, phase="lifecycle", written=state.written)
        if not dry_run and (not is_incremental or changed_groups):
            record_progress(run, phase="mirror")
            view.load()  # loaded already (a full run, or groups changed); never mirror an unread list
            _mirror_groups(directory, view.groups, view.closure, run, state, only=affected)
        if not dry_run:
            record_progress(run, phase="deactivating")
            state.counts["deactivated"] = deactivate_due(source=directory.source).deactivated
    except IdentityError as exc:
        recorder.flush()
        hint = "" if exc.code == "empty_result" else " Nobody was blocked or deactivated by this run."
        return finish_run(run, counts=_finish_counts(run, state, dry_run, is_incremental),
                          error=f"{exc.code}: {exc.message}{hint}")
    except Exception as exc:
        recorder.flush()
        finish_run(run, counts=_finish_counts(run, state, dry_run, is_incremental),
                   error=f"{type(exc).__name__}: {exc}")
        raise
    run = finish_run(run, counts=_finish_counts(run, state, dry_run, is_incremental))
    if not dry_run:
        marks = {"applied_config_digest": digest}
        if held:
            # The held users must be looked at again by a full run: the next run is one.
            marks["last_full_at"] = None
        else:
            marks["high_water"] = (state.high_water if mark_went_back
                                   else incremental.later(preset, directory.high_water, state.high_water))
            if not is_incremental:
                marks["last_full_at"] = run.started_at
            if not is_incremental or reconcile:
                marks["last_reconciled_at"] = run.started_at
        Directory.objects.filter(pk=directory.pk).update(**marks)
    if held:
        run.status, run.error = ProvisioningRun.Status.HELD, held
        run.save(update_fields=["status", "error"])
    return run


def due_directories(now=None) -> list[Directory]:
    """Enabled directories whose sync interval has passed since their last run and that hold no lock."""
    now = now or timezone.now()
    candidates = (Directory.objects.select_related("source").filter(source__enabled=True)
                  .filter(Q(lock_expires_at__isnull=True) | Q(lock_expires_at__lt=now)))
    return [d for d in candidates if d.last_run_started_at is None or d.last_run_started_at + d.interval <= now]
