"""Adoption: a source taking over users that already exist in idm (issue 8 "Sources").

Only when the admin enabled adoption for the source, matched by username or by email (the source's
``adopt_by``), and never for break-glass users (local sign-in kept for when SSO fails), Customer
Cloud Admins, or users another source owns: two sources never own one user, and a conflict is
reported, not resolved. ``plan_adoption`` is the preview (read-only, a few queries for any number of
candidates): who would be adopted, who would not and why.

``apply_adoption`` applies it: it plans again at apply time (the preview may be stale), then hands
each adoption to the identity service (``IdentityChange.owner_source_id`` with the source's link:
ownership and link in one write, audited as ``user.adopted`` / ``user.linked``; the planner checks
the same rules again inside the write transaction), as one ``ProvisioningRun`` of kind "adoption"
whose journal also lists every candidate not adopted and why. Applying twice adopts nobody twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db.models.functions import Lower

from accounts.access import Access
from accounts.exceptions import PolicyDenied
from accounts.identity import privilege
from accounts.identity.audit import record_event
from accounts.identity.policy import check_adoption_password_power, check_update_scope
from accounts.identity.types import Actor, ExternalLink, IdentityChange, Mode
from accounts.identity.types import Source as SourceKind
from accounts.models import ExternalIdentity, UserProfile
from accounts.roles import CUSTOMER_CLOUD_ADMIN
from provisioning.journal import JournalRecorder, apply_journaled, finish_run, run_actor, start_run
from provisioning.models import Directory, JournalEntry, ProvisioningRun, Source


@dataclass(frozen=True)
class AdoptionCandidate:
    """A user as the source describes it, not yet linked: its external id, username and email."""

    external_id: str
    username: str = ""
    email: str = ""


@dataclass(frozen=True)
class AdoptionDecision:
    """``adopt``: the source would take ``user_id`` over; else ``code`` and ``message`` say why not."""

    candidate: AdoptionCandidate
    adopt: bool
    code: str
    message: str
    user_id: int | None = None
    username: str = ""


REASONS = {
    "adopt": "Will be adopted.",
    "adoption_disabled": "Adoption is off for this source.",
    "already_linked": "Already linked to this source.",
    "no_match": "No existing user matches; the source would create one.",
    "match_ambiguous": "Several existing users match; adopt by username or fix the duplicates.",
    "break_glass": "A break-glass user (local sign-in for when SSO fails) is never adopted.",
    "cloud_admin": "A Customer Cloud Admin is never adopted.",
    "owned_by_other_source": "Another source owns this user; two sources never own one user.",
    "claimed_twice": "Another candidate of this run matches the same user.",
}


def _decision(candidate, code, user=None, message: str = "") -> AdoptionDecision:
    return AdoptionDecision(candidate=candidate, adopt=code == "adopt", code=code, message=message or REASONS[code],
                            user_id=user[0] if user else None, username=user[1] if user else "")


def _actor_refusals(actor: Actor | None, user_ids: Iterable[int], source: Source) -> dict[int, PolicyDenied]:
    """Users ``actor`` may not adopt, with the refusal the identity service would raise: the same
    policy functions its planner calls for an adoption (scope for the "owner"/"link" change, then the
    privilege rule, and the reset-passwords power when the source is a directory with password
    sign-in), so the preview says exactly what apply does (review F10, N1)."""
    if actor is None or actor.user is None or not actor.enforce_scope:
        return {}
    access = Access.of(actor.user)
    password_sign_in = Directory.objects.filter(source_id=source.pk, password_sign_in=True).exists()
    mine = privilege.powers_of_access(access)
    users = list(User.objects.filter(pk__in=list(user_ids)).select_related("profile__org"))
    powers = privilege.powers_of_users(users)
    out = {}
    for user in users:
        if user.pk == actor.user.pk:
            continue
        try:
            profile = getattr(user, "profile", None)
            if profile is not None:
                check_update_scope(access, profile.org, {"owner", "link"}, is_self=False)
                if password_sign_in:
                    check_adoption_password_power(access, profile.org, username=user.username,
                                                  source_label=source.name)
            privilege.check_privilege(actor=mine, target=powers[user.pk], target_label=user.username)
        except PolicyDenied as exc:
            out[user.pk] = exc
    return out


def plan_adoption(*, source: Source, candidates: Iterable[AdoptionCandidate],
                  actor: Actor | None = None, match_by: str | None = None) -> list[AdoptionDecision]:
    """The adoption preview for ``candidates`` (in input order), as ``actor`` would apply it (``None``:
    the source's own rules only, as for a system actor).

    ``match_by`` (``Source.AdoptBy``): an explicit, previewed linking step — a directory's "Link
    existing users" page, where the admin picks username or email — matches by it and does not need
    the source's adoption switch (which governs the generic adoption page); every other refusal stands.
    """
    candidates = list(candidates)
    if match_by is None and not source.adoption_enabled:
        return [_decision(c, "adoption_disabled") for c in candidates]
    by_email = (match_by or source.adopt_by) == Source.AdoptBy.EMAIL
    linked = set(ExternalIdentity.objects.filter(source=source.kind, provider=source.slug,
                                                 external_id__in=[c.external_id for c in candidates])
                 .values_list("external_id", flat=True))
    keys = {(c.email if by_email else c.username).strip().lower() for c in candidates} - {""}
    field = "email" if by_email else "username"
    matches: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for pk, username, key in (User.objects.annotate(key=Lower(field)).filter(key__in=keys)
                              .values_list("pk", "username", "key")):
        matches[key].append((pk, username))
    user_ids = [pk for found in matches.values() for pk, _ in found]
    owners = {uid: (kind, provider, owner_id) for uid, kind, provider, owner_id in UserProfile.objects.filter(
        user_id__in=user_ids).values_list("user_id", "source", "source_provider", "owner_source_id")}
    break_glass = set(User.objects.filter(pk__in=user_ids, sso_break_glass_for__isnull=False)
                      .values_list("pk", flat=True))
    cloud_admins = set(User.objects.filter(pk__in=user_ids, groups__role__slug=CUSTOMER_CLOUD_ADMIN)
                       .values_list("pk", flat=True)) | set(
        User.objects.filter(pk__in=user_ids, is_superuser=True).values_list("pk", flat=True))
    refused_for_actor = _actor_refusals(actor, user_ids, source)
    claimed: set[int] = set()
    decisions = []
    for candidate in candidates:
        if candidate.external_id in linked:
            decisions.append(_decision(candidate, "already_linked"))
            continue
        found = matches.get((candidate.email if by_email else candidate.username).strip().lower(), [])
        if not found:
            decisions.append(_decision(candidate, "no_match"))
            continue
        if len(found) > 1:
            decisions.append(_decision(candidate, "match_ambiguous"))
            continue
        user = found[0]
        kind, provider, owner_id = owners.get(user[0], (SourceKind.LOCAL, "", None))
        if user[0] in break_glass:
            code = "break_glass"
        elif user[0] in cloud_admins:
            code = "cloud_admin"
        elif owner_id not in (None, source.pk) or (owner_id is None and kind in (SourceKind.SCIM, SourceKind.LDAP)
                                                   and (kind, provider) != (source.kind, source.slug)):
            code = "owned_by_other_source"
        elif user[0] in claimed:
            code = "claimed_twice"
        elif user[0] in refused_for_actor:
            error = refused_for_actor[user[0]]
            decisions.append(_decision(candidate, error.code, user, message=error.message))
            continue
        else:
            code = "adopt"
            claimed.add(user[0])
        decisions.append(_decision(candidate, code, user))
    return decisions


def apply_adoption(*, source: Source, candidates: Iterable[AdoptionCandidate], actor: Actor,
                   dry_run: bool = False, match_by: str | None = None) -> ProvisioningRun:
    """Adopt the users ``plan_adoption`` says ``source`` may take over now; the finished run.

    ``actor`` is the admin (or system) applying it; ``match_by`` as in ``plan_adoption``. Candidates not adopted are journaled as refused
    with their reason (a conflict with another source is reported, never resolved).
    """
    candidates = list(candidates)
    run = start_run(kind=ProvisioningRun.Kind.ADOPTION, actor=actor, source=source, dry_run=dry_run,
                    total=len(candidates))
    decisions = plan_adoption(source=source, candidates=candidates, actor=actor, match_by=match_by)
    recorder = JournalRecorder(run)
    skipped = 0
    for d in decisions:
        if not d.adopt and d.code != "already_linked":
            skipped += 1
            recorder.add(subject="adoption", result=JournalEntry.Result.REFUSED, user_id=d.user_id,
                         user_label=d.username or d.candidate.username or d.candidate.email,
                         code=d.code, message=d.message, ref=d.candidate.external_id)
    recorder.flush()
    changes = [IdentityChange(user_id=d.user_id, mode=Mode.UPDATE, owner_source_id=source.pk, ref=d.candidate.external_id,
                              link=ExternalLink(source=source.kind, provider=source.slug,
                                                external_id=d.candidate.external_id))
               for d in decisions if d.adopt]
    try:
        counts = apply_journaled(changes=changes, actor=actor, run=run, dry_run=dry_run) if changes else {}
    except Exception as exc:  # the run ends "failed" with the reason, never stays "running"
        finish_run(run, counts={}, error=f"{type(exc).__name__}: {exc}")
        raise
    ProvisioningRun.objects.filter(pk=run.pk).update(progress_done=len(candidates))
    run.progress_done = len(candidates)
    return finish_run(run, counts={
        "candidates": len(candidates), "adopted": counts.get("updated", 0), "refused": counts.get("refused", 0),
        "skipped": skipped, "already_linked": sum(d.code == "already_linked" for d in decisions),
    })


def journal_adoption_refusal(*, source: Source, actor: Actor, candidate: AdoptionCandidate, user_id: int,
                             code: str, message: str) -> ProvisioningRun:
    """Record, after the refused request rolled back, why ``actor`` (a provider adopting by SCIM POST)
    did not adopt ``user_id``: an adoption run with one refused journal entry and an audit event. The
    provider itself is told only that the userName is taken (review N4)."""
    run = start_run(kind=ProvisioningRun.Kind.ADOPTION, actor=actor, source=source, total=1)
    recorder = JournalRecorder(run)
    username = User.objects.filter(pk=user_id).values_list("username", flat=True).first() or candidate.username
    recorder.add(subject="adoption", result=JournalEntry.Result.REFUSED, user_id=user_id, user_label=username,
                 code=code, message=message, ref=candidate.external_id)
    recorder.flush()
    record_event(actor=run_actor(actor, run), action="user.adoption_refused", target_type="user",
                 target_id=user_id, target_label=username, new={"source": source.name, "code": code,
                                                                "reason": message})
    return finish_run(run, counts={"candidates": 1, "adopted": 0, "refused": 1, "skipped": 0, "already_linked": 0})
