"""Rules preview: what a set of rules would change for a source's current users, before saving them.

"Current users" are the users linked to the source through ``ExternalIdentity``; each link keeps the
last ``SourceRecord`` the source sent (``provisioning.resolve.RECORD_KEY``). Each is evaluated with
the proposed rules and compared with the user's state now: org, roles, active. Read-only; loads the
state in chunks (a few queries per chunk, none per user) so 100k users fit in flat memory.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from django.contrib.auth.models import User
from django.db.models import F, Func, TextField

from accounts.exceptions import IdentityError
from accounts.identity.lookups import org_index, role_index
from accounts.identity.orgs import OrgIndex
from accounts.identity.types import UserState
from provisioning.models import RoleGrant, Source, UserBlock
from provisioning.resolve import RECORD_KEY, resolve_org, role_catalogue, source_links, stored_record
from provisioning.rules import OrgPolicy, Outcome, Rule, RuleSet, SourceRecord, evaluate, is_canonical

CHUNK = 2000
KINDS = ("org", "gain", "lose", "inactive", "reactivate", "error")


@dataclass(frozen=True)
class UserDiff:
    """What the rules would change for one user (empty sets / ``None`` mean "nothing")."""

    user_id: int
    username: str
    org_before: str = ""
    org_after: str = ""  # a name, or "new: <name>" for an org the run would create
    gain: frozenset[str] = frozenset()
    lose: frozenset[str] = frozenset()
    inactive: bool = False
    reactivate: bool = False
    error: str = ""
    # Roles the source grants that it has no grant row for yet (held by hand or not held at all).
    grants_add: frozenset[str] = frozenset()
    # Roles the source stops granting that another grant (manual or another source's) keeps: only the
    # source's grant row goes, the user keeps the role.
    grants_release: frozenset[str] = frozenset()
    org_after_id: int | None = None
    create_org: tuple[str, int] | None = None  # (name, parent id) of an org the run would create

    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k, on in (
            ("org", self.org_after != ""), ("gain", bool(self.gain)), ("lose", bool(self.lose)),
            ("inactive", self.inactive), ("reactivate", self.reactivate), ("error", bool(self.error)),
        ) if on)


@dataclass
class Preview:
    """Counts per kind of change and a sample of users for each."""

    users: int = 0
    without_record: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    samples: dict[str, list[UserDiff]] = field(default_factory=lambda: {k: [] for k in KINDS})

    @property
    def changed(self) -> int:
        return sum(self.counts[k] for k in KINDS if k != "error")


def _chunks(iterable: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Stored(Func):
    """A part of the stored ``SourceRecord`` (``raw -> 'record' -> path...``) as the database returns
    it: its JSON text (``as_type``: its JSON type, "object", "array"...), NULL when absent. Text, not
    decoded per user: equal parts share one evaluation, and only a new one is decoded."""

    output_field = TextField()

    def __init__(self, *path: str, as_type: bool = False):
        super().__init__(F("raw"))
        self.path, self.as_type = (RECORD_KEY, *path), as_type

    def as_postgresql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        arrows = " -> ".join(["%s"] * len(self.path))
        return (f"jsonb_typeof({sql} -> {arrows})" if self.as_type else f"({sql} -> {arrows})::text",
                (*params, *self.path))

    def as_sqlite(self, compiler, connection, **extra):
        # SQLite's "->" (3.38+) returns JSON text, so true stays "true" (json_extract would give 1).
        sql, params = compiler.compile(self.source_expressions[0])
        path = "$" + "".join(f'."{key}"' for key in self.path)
        return (f"json_type({sql}, %s)" if self.as_type else f"({sql} -> %s)", (*params, path))


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def user_diffs(*, source: Source, rules: Iterable[Rule], org_policy: OrgPolicy,
               user_ids: Collection[int] | None = None,
               records: Mapping[int, SourceRecord] | None = None) -> Iterator[UserDiff | None]:
    """One ``UserDiff`` per linked user with a stored record (``None`` for a user without one).

    ``user_ids`` limits it to some users; ``records`` evaluates those users with the given records
    instead of the stored ones (a dry run of incoming data, which stores nothing).

    Built for 100k users of which few change: the database returns only the parts of each stored
    record the rules read (``RuleSet.reads``: a few attributes, the groups, the DN), not the whole
    JSON; users whose parts are equal share one evaluation, and users whose parts *and* current state
    (org, roles, grants, state) are equal share one comparison, so an unchanged user costs a tuple
    and two dictionary look-ups. State is read per chunk of links by user-id range, a few queries
    per chunk.
    """
    ruleset = RuleSet.of(rules)
    evaluator = _Evaluator(ruleset, org_policy, role_catalogue(), org_index())
    evaluator.records = records or {}
    role_by_group, role_by_id = {}, {}
    for role in role_index().by_slug.values():
        role_by_group[role.group_id], role_by_id[role.pk] = role.slug, role.slug
    selected = source_links(source) if user_ids is None else source_links(source).filter(user_id__in=list(user_ids))
    reads = evaluator.reads
    parts = {"_attributes_type": _Stored("attributes", as_type=True), "_groups_type": _Stored("groups", as_type=True),
             "_active": _Stored("active")}
    if reads.dn:
        parts["_dn"] = _Stored("dn")
    if reads.groups:
        parts["_groups"] = _Stored("groups")
    parts.update({f"_attr{i}": _Stored("attributes", key) for i, key in enumerate(reads.attributes)})
    if user_ids is not None and records and all(uid in records for uid in user_ids):
        parts = {}  # every record is given (a sync's batch): the stored ones are not read
    links = (selected.order_by("user_id").annotate(**parts)
             .values_list("user_id", "user__username", "user__profile__org_id", "user__profile__state", *parts)
             .iterator(chunk_size=CHUNK))
    empty: frozenset[str] = frozenset()
    for chunk in _chunks(links, CHUNK):
        low, high = chunk[0][0], chunk[-1][0]
        in_range = {"user_id__gte": low, "user_id__lte": high}
        if high - low >= 4 * len(chunk):
            # Sparse ids (a sync's batch of changed users among 100k): a range would read the roles,
            # grants and blocks of every user between them.
            in_range = {"user_id__in": [row[0] for row in chunk]}
        held: dict[int, set[str]] = defaultdict(set)
        for user_id, group_id in User.groups.through.objects.filter(
                **in_range, group_id__in=list(role_by_group)).values_list("user_id", "group_id"):
            held[user_id].add(role_by_group[group_id])
        granted: dict[int, set[str]] = defaultdict(set)  # by this source
        by_others: dict[int, set[str]] = defaultdict(set)  # by hand or by another source
        for user_id, role_id, source_id in RoleGrant.objects.filter(**in_range).values_list(
                "user_id", "role_id", "source_id"):  # no join: role ids map to slugs here
            (granted if source_id == source.pk else by_others)[user_id].add(role_by_id[role_id])
        blocked_by_source = set(UserBlock.objects.filter(**in_range, source=source).values_list("user_id", flat=True))
        outcomes = [evaluator.outcome_of(row[0], row[4:]) for row in chunk]
        evaluator.load_whole_records(
            selected, [row[0] for row, o in zip(chunk, outcomes, strict=True) if o is _WHOLE_RECORD])
        for row, outcome in zip(chunk, outcomes, strict=True):
            user_id, username, org_id, state = row[:4]
            if outcome is _WHOLE_RECORD:
                outcome = evaluator.outcome_of_whole(user_id)
            if outcome is None:
                yield None
            elif isinstance(outcome, str):
                yield UserDiff(user_id, username or "", error=outcome)
            elif org_id is None:
                yield None
            else:
                yield evaluator.diff(user_id, username or "", outcome, org_id, state,
                                     frozenset(held.get(user_id, empty)), frozenset(granted.get(user_id, empty)),
                                     frozenset(by_others.get(user_id, empty)), user_id in blocked_by_source)


# ``_Evaluator.outcome_of``: the stored parts do not fit the fast path; read the whole record.
_WHOLE_RECORD = object()


class _Evaluator:
    """Evaluates stored records against one rule set, memoising what many users share."""

    def __init__(self, ruleset: RuleSet, org_policy: OrgPolicy, roles: dict, index: OrgIndex):
        self.ruleset, self.org_policy, self.roles, self.index = ruleset, org_policy, roles, index
        self.reads = ruleset.reads(org_policy)
        self.outcomes: dict = {}  # RuleSet.relevant(record) -> Outcome
        self.by_parts: dict = {}  # the stored parts as read -> Outcome | error code
        self.diffs: dict = {}  # (outcome, user state) -> UserDiff template | UNCHANGED
        self.resolved: dict = {}
        self.names: dict[int, str] = {}
        self.whole: dict[int, tuple] = {}

    def _name(self, org_id: int) -> str:
        if org_id not in self.names:
            org = self.index.get(org_id)
            self.names[org_id] = self.index.full_name(org) if org else ""
        return self.names[org_id]

    records: Mapping[int, SourceRecord] = MappingProxyType({})  # replaced per instance

    def evaluate(self, record: SourceRecord) -> Outcome | str:
        """The memoised outcome for ``record``, or the error code of a misconfigured policy."""
        key = self.ruleset.relevant(record, self.org_policy)
        outcome = self.outcomes.get(key)
        if outcome is None:
            try:
                outcome = evaluate(rules=self.ruleset, record=record, org_policy=self.org_policy, roles=self.roles)
            except IdentityError as exc:
                return exc.code
            self.outcomes[key] = outcome
        return outcome

    def outcome_of(self, user_id: int, stored: tuple) -> Any:
        """The outcome for a user from the parts of the stored record the database returned (JSON
        types of attributes and groups, then the JSON text of active[, dn][, groups], *attributes):
        an ``Outcome``, an error code, or ``_WHOLE_RECORD`` when the parts do not fit the fast path
        (no record, or a shape ``SourceRecord.to_json`` does not write)."""
        record = self.records.get(user_id)
        if record is not None:
            return self.evaluate(record)
        if stored[1] != "array" or stored[0] not in (None, "object"):
            return _WHOLE_RECORD  # ``to_json`` always writes the groups (a list) and an object of attributes
        found = self.by_parts.get(stored, _WHOLE_RECORD)
        if found is _WHOLE_RECORD:
            record = self._partial_record(stored)
            found = _WHOLE_RECORD if record is None else self.evaluate(record)
            self.by_parts[stored] = found
        return found

    def _partial_record(self, stored: tuple) -> SourceRecord | None:
        """A ``SourceRecord`` of only the parts the rules read, if they are in ``to_json``'s canonical
        form (the fast path of ``SourceRecord.from_json``); ``None`` otherwise (the whole record is
        read and goes through ``from_json``, which normalises or refuses it)."""
        texts = iter(stored[2:])
        active = _loads(next(texts))
        if active is not None and active is not True and active is not False:
            return None
        dn = _loads(next(texts)) if self.reads.dn else ""
        if dn is None:
            dn = ""
        if type(dn) is not str or (dn and not is_canonical(dn)):
            return None
        groups = _loads(next(texts)) if self.reads.groups else []
        if type(groups) is not list or not all(type(g) is str and is_canonical(g) for g in groups):
            return None
        attributes = {}
        for name, text in zip(self.reads.attributes, texts, strict=True):
            if text is None:
                continue
            values = _loads(text)
            if type(values) is not list or not all(type(v) is str for v in values):
                return None
            attributes[name] = tuple(values)
        return SourceRecord(attributes=MappingProxyType(attributes), groups=frozenset(groups), dn=dn, active=active)

    def load_whole_records(self, links, user_ids: list[int]) -> None:
        """Read the whole stored JSON of the users the fast path could not take (one query)."""
        self.whole = dict(links.filter(user_id__in=user_ids).values_list("user_id", "raw")) if user_ids else {}

    def outcome_of_whole(self, user_id: int) -> Any:
        try:
            record = stored_record(self.whole.get(user_id))
        except IdentityError as exc:
            return exc.code
        return None if record is None else self.evaluate(record)

    def diff(self, user_id, username, outcome, org_id, state, held, granted, by_others,
             blocked_by_source) -> UserDiff:
        key = (id(outcome), org_id, state, held, granted, by_others, blocked_by_source)
        found = self.diffs.get(key)
        if found is None:
            found = self.diffs[key] = self._diff(outcome, org_id, state, held, granted, by_others, blocked_by_source)
        return found if found is UNCHANGED else replace(found, user_id=user_id, username=username)

    def _diff(self, outcome, org_id, state, held, granted, by_others, blocked_by_source) -> UserDiff:
        if outcome.org not in self.resolved:
            self.resolved[outcome.org] = resolve_org(outcome.org, self.index, is_new=False)
        resolved = self.resolved[outcome.org]
        org_after = ""
        target_org = org_id
        create_org = None
        if resolved is not None:
            if resolved.create_name:
                org_after = f"new: {resolved.create_name}"
                create_org = (resolved.create_name, resolved.create_under_id)
            elif resolved.org_id is not None and resolved.org_id != org_id:
                target_org = resolved.org_id
                org_after = self._name(resolved.org_id)
        wanted = outcome.final_roles(self.index.default_role_slugs(target_org) if self.index.get(target_org) else ())
        gain = wanted - held
        # A source takes away only what it granted and nothing else grants (the identity service's
        # planner applies the same rule); a role another grant keeps only loses this source's row.
        lose = (granted & held) - wanted - by_others
        grants_release = (granted - wanted) - lose
        grants_add = wanted - granted
        inactive = not outcome.active and state in (UserState.ACTIVE, UserState.INVITED)
        reactivate = outcome.active and state != UserState.ACTIVE and blocked_by_source
        if not (org_after or gain or lose or grants_add or grants_release or inactive or reactivate):
            return UNCHANGED
        return UserDiff(
            0, "",
            org_before=self._name(org_id) if org_after else "",
            org_after=org_after, gain=frozenset(gain), lose=frozenset(lose), inactive=inactive,
            reactivate=reactivate, grants_add=frozenset(grants_add), grants_release=frozenset(grants_release),
            org_after_id=target_org if target_org != org_id else None, create_org=create_org,
        )


# A shared "nothing to do" value: most users of a re-application change nothing, and one object
# for all of them keeps a 100k-user run from allocating 100k diffs.
UNCHANGED = UserDiff(0, "")


def preview_rules(*, source: Source, rules: Iterable[Rule], org_policy: OrgPolicy, sample_size: int = 20) -> Preview:
    """Counts and samples of who would change org, gain or lose roles, become inactive or come back."""
    preview = Preview()
    for diff in user_diffs(source=source, rules=rules, org_policy=org_policy):
        preview.users += 1
        if diff is None:
            preview.without_record += 1
            continue
        if diff is UNCHANGED:
            continue
        for kind in diff.kinds():
            preview.counts[kind] += 1
            if len(preview.samples[kind]) < sample_size:
                preview.samples[kind].append(diff)
    return preview
