"""What a source says about its users, applied: the one entry point SCIM and LDAP front doors call.

A front door translates its protocol data into ``SourceUser`` values (an external id, the profile
fields the source manages, and the ``SourceRecord`` the rules read) and calls ``apply_source_users``.
Everything after that is shared:

1. users the source already links are updated (profile fields, the stored record, ``last_seen_at``);
   new ones are created with the org and roles the rules give them (``fixed`` mode applies here);
2. the rules' org / roles / active decisions are applied to every user of the batch
   (``provisioning.reapply.apply_rules``, grant origins included), blocking users the source calls
   inactive and lifting its own blocks for users it calls active again;
3. ``complete=True`` (a full directory sync or SCIM reconciliation): linked users the source did not
   mention are blocked now and deactivated after the grace period ("gone from the source"); their
   links stay, so ownership and history are kept and a user who comes back is the same user;
4. all of it is one ``ProvisioningRun`` with its journal; ``dry_run`` writes only the journal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from accounts.identity.lookups import org_index, shared_lookups
from accounts.identity.orgs import OrgIndex
from accounts.identity.types import UNSET, ExternalLink, IdentityChange, Mode
from provisioning.journal import JournalRecorder, apply_journaled, finish_run, start_run
from provisioning.lifecycle import journal_states, source_actor, source_says_inactive
from provisioning.models import ProvisioningRun, Source
from provisioning.reapply import apply_rules
from provisioning.resolve import link_raw, resolve_org, role_catalogue, source_links
from provisioning.rules import RuleSet, SourceRecord, evaluate


@dataclass(frozen=True)
class SourceUser:
    """One user as a source describes it. Profile fields left ``UNSET`` are not managed by the source."""

    external_id: str
    record: SourceRecord
    username: Any = UNSET
    email: Any = UNSET
    first_name: Any = UNSET
    last_name: Any = UNSET
    # Front-door data kept on the link beside the record (a directory's entry fingerprints,
    # ``provisioning.ldap.fingerprint``), written whenever the link is.
    link_extra: Mapping[str, str] = field(default_factory=dict, compare=False)


def _new_user_placement(user: SourceUser, ruleset: RuleSet, source: Source, roles: dict,
                        index: OrgIndex, memo: dict | None = None) -> tuple[Any, Any]:
    """(org_id, roles) for a user the source creates; UNSET lets the service use its defaults.
    ``memo``: placements by ``RuleSet.relevant`` of the record (users whose records agree on
    everything the rules read are placed alike; a first sync creates 100k of them)."""
    policy = source.org_policy()
    key = ruleset.relevant(user.record, policy) if memo is not None else None
    if key is not None and key in memo:
        return memo[key]
    placement = _placement(user, ruleset, policy, roles, index)
    if key is not None:
        memo[key] = placement
    return placement


def _placement(user: SourceUser, ruleset: RuleSet, policy, roles: dict, index: OrgIndex) -> tuple[Any, Any]:
    outcome = evaluate(rules=ruleset, record=user.record, org_policy=policy, roles=roles)
    resolved = resolve_org(outcome.org, index, is_new=True)
    org_id = resolved.org_id if resolved is not None and resolved.org_id is not None else UNSET
    if org_id is UNSET and resolved is not None and resolved.create_name:
        # An org the rules would create is created by the rules step right after (which moves the user
        # there); start in the source's fallback org, else under the create-under org, never nowhere
        # (the identity service would refuse "Choose an organization.", review N11b).
        org_id = outcome.org.fallback_org_id or resolved.create_under_id or UNSET
    defaults = index.default_role_slugs(org_id) if org_id is not UNSET else frozenset()
    granted = outcome.final_roles(defaults)
    return org_id, (frozenset(granted) if granted else UNSET)


def apply_source_users(*, source: Source, users: Iterable[SourceUser], kind: str = ProvisioningRun.Kind.SYNC,
                       dry_run: bool = False, complete: bool = False, request_id: str = "") -> ProvisioningRun:
    """Apply what ``source`` says about ``users`` (see the module docstring); the finished run.

    ``request_id``: the front door's request (a SCIM call), carried by every audit event of the run."""
    actor = replace(source_actor(source), request_id=request_id)
    run = start_run(kind=kind, actor=actor, source=source, dry_run=dry_run)
    users = list(users)
    run.progress_total = len(users)
    run.save(update_fields=["progress_total"])
    try:
        counts = _apply(source, users, run, dry_run, complete, request_id)
    except Exception as exc:  # the run ends "failed" with the reason, never stays "running"
        finish_run(run, counts={}, error=f"{type(exc).__name__}: {exc}")
        raise
    return finish_run(run, counts=counts)


def _apply(source: Source, users: list[SourceUser], run: ProvisioningRun, dry_run: bool, complete: bool,
           request_id: str = "") -> dict:
    # One load of the orgs and roles for the identity step, the rules step and the lifecycle.
    with shared_lookups():
        return _apply_steps(source, users, run, dry_run, complete, request_id)


def _apply_steps(source: Source, users: list[SourceUser], run: ProvisioningRun, dry_run: bool, complete: bool,
                 request_id: str) -> dict:
    actor = replace(source_actor(source, job_id=run.run_id), request_id=request_id)
    linked = dict(source_links(source).filter(external_id__in=[u.external_id for u in users])
                  .values_list("external_id", "user_id"))
    ruleset, roles, index = RuleSet.of(source.rule_set()), role_catalogue(), org_index()
    placements: dict = {}
    changes = []
    for user in users:
        raw = link_raw(user.record)
        raw.update(user.link_extra)
        link = ExternalLink(source=source.kind, provider=source.slug, external_id=user.external_id, raw=raw)
        fields = {"username": user.username, "email": user.email, "first_name": user.first_name,
                  "last_name": user.last_name}
        if user.external_id in linked:
            changes.append(IdentityChange(user_id=linked[user.external_id], link=link, mode=Mode.UPDATE,
                                          ref=user.external_id, **fields))
        else:
            org_id, role_slugs = _new_user_placement(user, ruleset, source, roles, index, placements)
            changes.append(IdentityChange(org_id=org_id, roles=role_slugs, link=link, mode=Mode.CREATE,
                                          ref=user.external_id, **fields))
    # The service's writer refreshes each matched link's record and last_seen_at, and the profile's
    # owner_source (accounts/identity/grants.py), with the batch.
    counts = apply_journaled(changes=changes, actor=actor, run=run, dry_run=dry_run)
    # The rules' decisions for every user of the batch, on the records just received.
    now_linked = dict(source_links(source).filter(external_id__in=[u.external_id for u in users])
                      .values_list("external_id", "user_id"))
    records = {now_linked[u.external_id]: u.record for u in users if u.external_id in now_linked}
    rule_counts = apply_rules(source=source, run=run, dry_run=dry_run, user_ids=list(records), records=records,
                              request_id=request_id)
    counts.update({k: rule_counts[k] for k in ("blocked", "reactivated", "errors")})
    counts["rules_updated"] = rule_counts["updated"]
    counts["refused"] += rule_counts["refused"]
    counts["gone"] = 0
    if complete:
        seen = {u.external_id for u in users}
        gone = list(source_links(source).exclude(external_id__in=seen).values_list("user_id", flat=True))
        counts["gone"] = len(gone)
        if gone:
            # Journaled from what the service did (or would do): a refused block is "refused", and a
            # user already blocked or deactivated is not blocked again run after run.
            outcome = source_says_inactive(source=source, user_ids=gone, actor=actor, dry_run=dry_run,
                                           reason="gone from the source")
            counts["blocked"] += outcome.blocked
            counts["refused"] += outcome.refused
            recorder = JournalRecorder(run)
            journal_states(recorder, outcome, new="blocked", dry_run=dry_run, message="gone from the source")
            recorder.flush()
    return counts


def apply_source_batch(*, source: Source, users: Iterable[SourceUser], run: ProvisioningRun,
                       dry_run: bool = False) -> dict:
    """Steps 1-2 of ``apply_source_users`` for one batch, inside a run the caller started and finishes.

    A directory sync reads a large directory page by page and applies it batch by batch, so memory
    stays flat; it decides "gone from the source" itself once the whole search has been read
    (``provisioning.ldap.sync``). Returns the batch's counts.
    """
    return _apply(source, list(users), run, dry_run, complete=False)
