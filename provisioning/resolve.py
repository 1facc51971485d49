"""The database side of the evaluator: the role catalogue it needs, and turning its ``OrgTarget``
into an org id (read-only; org creation itself goes through ``accounts.identity.orgs``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from accounts.exceptions import IdentityError
from accounts.identity.lookups import role_index
from accounts.identity.orgs import OrgIndex
from accounts.models import ExternalIdentity
from accounts.roles import ALL_PERMS, CUSTOMER_CLOUD_ADMIN
from provisioning.models import Source
from provisioning.rules import OrgTarget, RoleInfo, SourceRecord

# ExternalIdentity.raw key under which a provisioning source's last-known SourceRecord is kept.
RECORD_KEY = "record"
# ... and the key of its fingerprint (``record_digest``), which a directory sync reads instead of the
# whole record to find the entries that did not change.
DIGEST_KEY = "digest"


def role_catalogue() -> dict[str, RoleInfo]:
    """Every role as the evaluator sees it. A role whose permissions include all of Customer Cloud
    Admin's counts as Cloud Admin too, so copying the role cannot get around the rule."""
    everything = frozenset(ALL_PERMS)
    out: dict[str, RoleInfo] = {}
    for role in role_index().by_slug.values():
        perms = {p.codename for p in role.group.permissions.all()}
        out[role.slug] = RoleInfo(
            slug=role.slug,
            is_admin=role.is_admin_role,
            grants_cloud_admin=role.slug == CUSTOMER_CLOUD_ADMIN or everything <= perms,
        )
    return out


@dataclass(frozen=True)
class ResolvedOrg:
    """Where an ``OrgTarget`` lands: an existing org id, or a path to create under a parent."""

    org_id: int | None = None
    create_name: str = ""
    create_under_id: int | None = None
    reason: str = ""


def resolve_org(target: OrgTarget | None, index: OrgIndex, *, is_new: bool) -> ResolvedOrg | None:
    """``None``: leave the user's org alone. Never writes."""
    if target is None or (target.new_users_only and not is_new):
        return None
    if target.org_id is not None:
        return ResolvedOrg(org_id=target.org_id) if index.get(target.org_id) else ResolvedOrg(reason="org_gone")
    # A source stays inside its own orgs (review F5): the create-under subtree and the fallback org's.
    # A name (or path) of an org elsewhere is treated as pointing outside: the fallback org with the
    # reason "org_outside_source", never the outside org and never a look-alike created under the parent.
    roots = [org for org in (index.get(i) for i in (target.create_under_id, target.fallback_org_id) if i) if org]
    inside = (lambda org: any(org.path.startswith(root.path) for root in roots)) if roots else None
    try:
        return ResolvedOrg(org_id=index.lookup(target.name, visible=inside).pk)
    except IdentityError as exc:
        code = exc.code
        if code == "org_not_found" and inside is not None and _names_an_org(index, target.name):
            return ResolvedOrg(org_id=target.fallback_org_id or target.create_under_id, reason="org_outside_source")
        if code == "org_not_found" and target.create_under_id is not None and "/" not in target.name:
            return ResolvedOrg(create_name=target.name, create_under_id=target.create_under_id)
        if target.fallback_org_id is not None:
            return ResolvedOrg(org_id=target.fallback_org_id, reason=code)
        return ResolvedOrg(reason=code)


def _names_an_org(index: OrgIndex, name: str) -> bool:
    """Does ``name`` name some org (anywhere in the tree)?"""
    try:
        index.lookup(name)
    except IdentityError as exc:
        return exc.code != "org_not_found"
    return True


def source_links(source: Source):
    """The source's current users: their external identity links (queryset, not evaluated)."""
    return ExternalIdentity.objects.filter(source=source.kind, provider=source.slug)


def stored_record(raw: dict | None) -> SourceRecord | None:
    """The last ``SourceRecord`` a source sent for a user, or ``None`` if none was kept."""
    data = (raw or {}).get(RECORD_KEY)
    if data is None:
        return None
    return SourceRecord.from_json(data)


def record_digest(data: dict) -> str:
    """A fingerprint of a record's ``to_json()``: equal records, equal digests."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def link_raw(record: SourceRecord) -> dict:
    """What a front door puts in ``ExternalLink.raw`` so previews can re-evaluate the user later
    (the record and its ``record_digest``)."""
    data = record.to_json()
    return {RECORD_KEY: data, DIGEST_KEY: record_digest(data)}
