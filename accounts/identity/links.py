"""External identity links: an administrator removes one; a front door refreshes what a source last said.

Part of the identity write path: scope, privilege and audit are decided here, never in a view.
SSO refuses to relink a user who is already linked to another account at the same IdP
(``sso.signin``, issue 7 §5); after this removal the user's next SSO sign-in links the new account.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.db import transaction
from django.utils import timezone

from accounts.exceptions import NotFound, PolicyDenied
from accounts.identity.audit import record_event
from accounts.identity.privilege import check_may_change_user
from accounts.identity.types import Actor
from accounts.models import ExternalIdentity


def _check_actor(actor: Actor, user) -> None:
    if not actor.enforce_scope or actor.user is None:
        return
    from accounts.access import Access

    access = Access.of(actor.user)
    profile = getattr(user, "profile", None)
    if profile is None or not access.can("manage_users", profile.org):
        raise PolicyDenied("out_of_scope", "You may not change users in this organization.")
    if actor.user.pk == user.pk:
        raise PolicyDenied("self_unlink", "You cannot remove your own external identity links.")
    check_may_change_user(actor, user)  # PolicyDenied("target_more_privileged", ...), issue 7 §1


def user_unlink(*, actor: Actor, user, link_id: int, source: str | None = None) -> ExternalIdentity:
    """Remove the external identity ``link_id`` of ``user``; returns the removed link (unsaved).

    Refusals: ``NotFound("link_not_found")``, ``PolicyDenied`` (out of scope, own account, a more
    privileged target). Writes ``user.unlinked`` (old value ``source:provider:external_id``).
    """
    _check_actor(actor, user)
    with transaction.atomic():
        links = ExternalIdentity.objects.select_for_update().filter(pk=link_id, user=user)
        link = (links.filter(source=source) if source else links).first()
        if link is None:
            raise NotFound("link_not_found", "This external identity link does not exist (any more).")
        label = str(link)
        link.delete()
        record_event(actor=actor, action="user.unlinked", target_type="user", target_id=user.pk,
                     target_label=user.get_username(), field="external_id", old=label, new=None)
    return link


def link_records_refresh(*, source: str, provider: str, raws: Mapping[int, dict]) -> int:
    """Store what a source last said about some of its users (``ExternalIdentity.raw``, keyed by
    user id) and when (``last_seen_at``); returns the number of links updated.

    The same refresh the writer gives every link it matches (``writer.write``), for front doors
    that learned something about a user without changing the user: a SCIM group membership change
    that no mapping rule reads. Nothing about the user changes, so, as in the writer, no audit event.
    """
    now = timezone.now()
    updated = 0
    for user_id, raw in raws.items():
        updated += ExternalIdentity.objects.filter(source=source, provider=provider, user_id=user_id).update(
            raw=raw, last_seen_at=now)
    return updated
