"""First-time linking: directory entries matched to users that already exist in idm, as an explicit,
previewed step (issue 10: "First-time linking to existing users by username or email is an explicit,
previewed step").

A sync never takes an existing user over by itself: an entry whose username is an existing user's
is refused by the identity service (``username_taken``) and journaled until it is linked. Linking
reads the directory's users (one bind, paged, the same filters as a sync), keeps the entries not yet
linked, and hands them to the adoption service (``provisioning.adoption``) with the admin's choice of
username or email: the preview lists who would be linked and who not and why (owned by another
source, break-glass, Customer Cloud Admin, several users with that email); "link these" plans again
at apply time and links through the identity service as one "adoption" run. The next sync is a full
one and treats the linked users as its own (the anchor is stored on the link).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from django.utils import timezone

from accounts.exceptions import IdentityError, MappingError
from accounts.identity.types import Actor
from provisioning.adoption import AdoptionCandidate, AdoptionDecision, apply_adoption, plan_adoption
from provisioning.ldap.directories import open_client, preset_of
from provisioning.ldap.translate import translate_user
from provisioning.models import Directory, ProvisioningRun, Source
from provisioning.resolve import source_links

PREVIEW_ROWS = 500


@dataclass(frozen=True)
class LinkPreview:
    """The decisions for unlinked entries that match an existing user (``matched``, at most
    ``PREVIEW_ROWS`` shown), how many match nobody (a sync would create them), and counts by code."""

    match_by: str
    matched: list[AdoptionDecision]
    unmatched: int
    linkable: int
    by_code: dict[str, int] = field(default_factory=dict)


def unlinked_candidates(directory: Directory) -> list[AdoptionCandidate]:
    """The directory's user entries that are not linked to an idm user yet (anchor, username, email).

    Raises ``DirectoryError`` (bind, TLS, search) like a sync; entries a sync would refuse (no anchor,
    no username) are left out."""
    preset = preset_of(directory)
    linked = set(source_links(directory.source).values_list("external_id", flat=True))
    now, seen, out = timezone.now(), set(), []
    with open_client(directory) as client:
        for base in directory.base_dns:
            for page in client.search(base_dn=base, filter=preset.user_filter, attributes=preset.user_attributes,
                                      page_size=directory.page_size):
                for entry in page:
                    try:
                        user = translate_user(entry.dn, entry.attributes, preset, now=now)
                    except MappingError:
                        continue
                    if user.anchor in linked or user.anchor in seen:
                        continue
                    seen.add(user.anchor)
                    out.append(AdoptionCandidate(external_id=user.anchor, username=user.username, email=user.email))
    return out


def preview_linking(directory: Directory, *, match_by: str, actor: Actor | None = None) -> LinkPreview:
    """Who linking by ``match_by`` (``Source.AdoptBy``) would link now, and who not and why, as ``actor``
    would apply it (the same refusals as the apply: review F10)."""
    decisions = plan_adoption(source=directory.source, candidates=unlinked_candidates(directory), match_by=match_by,
                              actor=actor)
    matched = [d for d in decisions if d.code != "no_match"]
    return LinkPreview(match_by=match_by, matched=matched[:PREVIEW_ROWS], unmatched=len(decisions) - len(matched),
                       linkable=sum(d.adopt for d in matched), by_code=dict(Counter(d.code for d in matched)))


def link_existing_users(directory: Directory, *, match_by: str, actor: Actor) -> ProvisioningRun:
    """Link the entries that match an existing user (planned again now: the preview may be stale); the
    adoption run, whose journal lists every matched entry not linked and why."""
    if match_by not in Source.AdoptBy.values:
        raise IdentityError("match_by_unknown", "Link by username or by email.", field="match_by")
    source = directory.source
    decisions = plan_adoption(source=source, candidates=unlinked_candidates(directory), match_by=match_by,
                              actor=actor)
    run = apply_adoption(source=source, candidates=[d.candidate for d in decisions if d.code != "no_match"],
                         actor=actor, match_by=match_by)
    if run.counts.get("adopted"):
        # An incremental run would not read the newly linked entries (they did not change in the
        # directory): the next run reads everything, so the linked users get the directory's data.
        Directory.objects.filter(pk=directory.pk).update(last_full_at=None)
    return run
