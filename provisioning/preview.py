"""Rules preview: what a set of rules would change for a source's current users, before saving them.

"Current users" are the users linked to the source through ``ExternalIdentity``; each link keeps the
last ``SourceRecord`` the source sent (``provisioning.resolve.RECORD_KEY``). Each is evaluated with
the proposed rules and compared with the user's state now: org, roles, active. Read-only; loads the
state in chunks (a few queries per chunk, none per user) so 100k users fit in flat memory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from django.contrib.auth.models import User

from accounts.exceptions import IdentityError
from accounts.identity.lookups import org_index, role_index
from accounts.identity.orgs import OrgIndex
from accounts.identity.types import UserState
from provisioning.models import RoleGrant, Source, UserBlock
from provisioning.resolve import resolve_org, role_catalogue, source_links, stored_record
from provisioning.rules import OrgPolicy, Rule, RuleSet, SourceRecord, evaluate

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


def user_diffs(*, source: Source, rules: Iterable[Rule], org_policy: OrgPolicy,
               user_ids: Collection[int] | None = None,
               records: Mapping[int, SourceRecord] | None = None) -> Iterator[UserDiff | None]:
    """One ``UserDiff`` per linked user with a stored record (``None`` for a user without one).

    ``user_ids`` limits it to some users; ``records`` evaluates those users with the given records
    instead of the stored ones (a dry run of incoming data, which stores nothing).
    Outcomes are memoised by ``RuleSet.relevant`` (users the rules cannot tell apart share one
    evaluation), and state is read per chunk of links by user-id range, a few queries per chunk.
    """
    ruleset = RuleSet.of(rules)
    evaluator = _Evaluator(ruleset, org_policy, role_catalogue(), org_index())
    evaluator.records = records or {}
    role_by_group, role_by_id = {}, {}
    for role in role_index().by_slug.values():
        role_by_group[role.group_id], role_by_id[role.pk] = role.slug, role.slug
    selected = source_links(source) if user_ids is None else source_links(source).filter(user_id__in=list(user_ids))
    links = (selected.order_by("user_id")
             .values_list("user_id", "raw", "user__username", "user__profile__org_id", "user__profile__state")
             .iterator(chunk_size=CHUNK))
    for chunk in _chunks(links, CHUNK):
        low, high = chunk[0][0], chunk[-1][0]
        in_range = {"user_id__gte": low, "user_id__lte": high}
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
        for user_id, raw, username, org_id, state in chunk:
            yield evaluator.diff(user_id, raw, username or "", org_id, state, held.get(user_id, set()),
                                 granted.get(user_id, set()), by_others.get(user_id, set()),
                                 user_id in blocked_by_source)


class _Evaluator:
    """Evaluates stored records against one rule set, memoising what many users share."""

    def __init__(self, ruleset: RuleSet, org_policy: OrgPolicy, roles: dict, index: OrgIndex):
        self.ruleset, self.org_policy, self.roles, self.index = ruleset, org_policy, roles, index
        self.outcomes: dict = {}
        self.resolved: dict = {}
        self.names: dict[int, str] = {}

    def _name(self, org_id: int) -> str:
        if org_id not in self.names:
            org = self.index.get(org_id)
            self.names[org_id] = self.index.full_name(org) if org else ""
        return self.names[org_id]

    records: Mapping[int, SourceRecord] = MappingProxyType({})  # replaced per instance

    def diff(self, user_id, raw, username, org_id, state, held, granted, by_others,
             blocked_by_source) -> UserDiff | None:
        try:
            record = self.records.get(user_id) or stored_record(raw)
        except IdentityError as exc:
            return UserDiff(user_id, username, error=exc.code)
        if record is None or org_id is None:
            return None
        key = self.ruleset.relevant(record, self.org_policy)
        outcome = self.outcomes.get(key)
        if outcome is None:
            try:
                outcome = evaluate(rules=self.ruleset, record=record, org_policy=self.org_policy, roles=self.roles)
            except IdentityError as exc:
                return UserDiff(user_id, username, error=exc.code)
            self.outcomes[key] = outcome
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
            user_id, username,
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
