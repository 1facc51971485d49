"""Rules preview: what a set of rules would change for a source's current users, before saving them.

"Current users" are the users linked to the source through ``ExternalIdentity``; each link keeps the
last ``SourceRecord`` the source sent (``provisioning.resolve.RECORD_KEY``). Each is evaluated with
the proposed rules and compared with the user's state now: org, roles, active. Read-only; loads the
state in chunks (a few queries per chunk, none per user) so 100k users fit in flat memory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.contrib.auth.models import User

from accounts.exceptions import IdentityError
from accounts.identity.orgs import OrgIndex
from accounts.identity.types import UserState
from accounts.models import Role, UserProfile
from provisioning.models import RoleGrant, Source, UserBlock
from provisioning.resolve import resolve_org, role_catalogue, source_links, stored_record
from provisioning.rules import OrgPolicy, Rule, evaluate

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


def user_diffs(*, source: Source, rules: Iterable[Rule], org_policy: OrgPolicy) -> Iterator[UserDiff | None]:
    """One ``UserDiff`` per linked user with a stored record (``None`` for a user without one)."""
    rules = tuple(rules)
    roles = role_catalogue()
    index = OrgIndex()
    role_by_group = {r.group_id: r.slug for r in Role.objects.only("slug", "group_id")}
    links = source_links(source).order_by("user_id").values_list("user_id", "raw").iterator(chunk_size=CHUNK)
    for chunk in _chunks(links, CHUNK):
        user_ids = [user_id for user_id, _ in chunk]
        names = dict(User.objects.filter(pk__in=user_ids).values_list("pk", "username"))
        profiles = {p["user_id"]: p for p in UserProfile.objects.filter(user_id__in=user_ids)
                    .values("user_id", "org_id", "state")}
        held: dict[int, set[str]] = defaultdict(set)
        for user_id, group_id in User.groups.through.objects.filter(
                user_id__in=user_ids, group_id__in=list(role_by_group)).values_list("user_id", "group_id"):
            held[user_id].add(role_by_group[group_id])
        granted: dict[int, set[str]] = defaultdict(set)
        for user_id, slug in RoleGrant.objects.filter(user_id__in=user_ids, source=source).values_list(
                "user_id", "role__slug"):
            granted[user_id].add(slug)
        blocked_by_source = set(UserBlock.objects.filter(user_id__in=user_ids, source=source)
                                .values_list("user_id", flat=True))
        for user_id, raw in chunk:
            yield _diff(user_id, raw, names.get(user_id, ""), profiles.get(user_id), held[user_id],
                        granted[user_id], user_id in blocked_by_source, rules, org_policy, roles, index)


def _diff(user_id, raw, username, profile, held, granted, blocked_by_source, rules, org_policy, roles, index):
    try:
        record = stored_record(raw)
    except IdentityError as exc:
        return UserDiff(user_id, username, error=exc.code)
    if record is None or profile is None:
        return None
    try:
        outcome = evaluate(rules=rules, record=record, org_policy=org_policy, roles=roles)
    except IdentityError as exc:
        return UserDiff(user_id, username, error=exc.code)
    org_id = profile["org_id"]
    resolved = resolve_org(outcome.org, index, is_new=False)
    org_after = ""
    target_org = org_id
    create_org = None
    if resolved is not None:
        if resolved.create_name:
            org_after = f"new: {resolved.create_name}"
            create_org = (resolved.create_name, resolved.create_under_id)
        elif resolved.org_id is not None and resolved.org_id != org_id:
            target_org = resolved.org_id
            org_after = index.full_name(index.get(resolved.org_id))
    wanted = outcome.final_roles(index.default_role_slugs(target_org) if index.get(target_org) else ())
    state = profile["state"]
    return UserDiff(
        user_id, username,
        org_before=index.full_name(index.get(org_id)) if org_after and index.get(org_id) else "",
        org_after=org_after,
        gain=frozenset(wanted - held),
        # A source takes away only what it granted; manual grants stay.
        lose=frozenset((granted & held) - wanted),
        inactive=not outcome.active and state in (UserState.ACTIVE, UserState.INVITED),
        reactivate=outcome.active and state != UserState.ACTIVE and blocked_by_source,
        grants_add=frozenset(wanted - granted),
        org_after_id=target_org if target_org != org_id else None,
        create_org=create_org,
    )


def preview_rules(*, source: Source, rules: Iterable[Rule], org_policy: OrgPolicy, sample_size: int = 20) -> Preview:
    """Counts and samples of who would change org, gain or lose roles, become inactive or come back."""
    preview = Preview()
    for diff in user_diffs(source=source, rules=rules, org_policy=org_policy):
        preview.users += 1
        if diff is None:
            preview.without_record += 1
            continue
        for kind in diff.kinds():
            preview.counts[kind] += 1
            if len(preview.samples[kind]) < sample_size:
                preview.samples[kind].append(diff)
    return preview
