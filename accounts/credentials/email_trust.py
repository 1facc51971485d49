"""Whether a user's email address may receive a set-password link (review 4 F1).

A reset link or an emailed invitation goes to ``user.email``; whoever set that address decides who
can choose the user's password. So the address counts only while its setter could still change the
user: the last audit event that set it (``user.created`` with an email, ``user.updated`` of the
``email`` field, or ``user.email_confirmed``) names the setter, and the address is trusted when
that was

- the user themselves;
- a system actor (setup commands, seeders, ``import_users`` without ``--actor``);
- a console user (also through a bulk upload: the confirming admin) who may change the user's email
  *now*: active, ``manage_users`` or ``modify_user_profile`` in the user's org, and the privilege
  rule (``privilege.check_may_vouch_email``);
- the provisioning source (SCIM provider, directory) that owns the user now and may still change
  their sign-in fields: the user holds no role with powers that source did not grant
  (``privilege.check_source_may_vouch_email``, the planner's ``role_not_from_source`` rule).

Anything else -- a lesser admin's address after a promotion, a source's address once the user holds
roles granted by hand, an address a SAML assertion set (whoever controls the IdP chose it) -- is
*unconfirmed*: "forgot password" sends nothing (the page answers as always) and an admin's reset
link or emailed invitation is refused (``email_unconfirmed``) until an admin who may change the user
saves the address again or presses "Confirm email" (``confirm_email``: a ``user.email_confirmed``
event naming them). A user with no such event at all (created before the audit log, or by a data
migration) is trusted: every audited front door records one, and audit retention keeps each user's
last such event (``current_email_setters``).

Two queries for a console setter (the event with its actor, both users' roles), three for a source.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db.models import Q

from accounts.exceptions import PolicyDenied
from accounts.identity import privilege
from accounts.models import AuditEvent

EMAIL_CONFIRMED = "user.email_confirmed"
_PROVIDER_KINDS = ("scim", "ldap")


@dataclass(frozen=True)
class EmailTrust:
    """``trusted``; who set the address (``set_by``, an audit actor label, ``""`` when nothing records
    it); and why it is not trusted (``reason``, a refusal code of the privilege rule, ``""`` if trusted)."""

    trusted: bool
    set_by: str = ""
    reason: str = ""
    detail: str = ""


# The audit events that set or confirm a user's email address.
EMAIL_SETTING = Q(action="user.updated", field="email") | Q(action__in=("user.created", EMAIL_CONFIRMED))


def email_setter_event(user: User) -> AuditEvent | None:
    """The last audit event that set or confirmed ``user``'s email address (one query, the actor and
    the actor's org loaded with it)."""
    return (AuditEvent.objects.filter(target_type="user", target_id=str(user.pk)).filter(EMAIL_SETTING)
            .select_related("actor__profile__org").order_by("-id").first())


def current_email_setters() -> Q:
    """Events that are the last to set or confirm some user's address: audit retention keeps them
    (``ops.retention``), or a purge would turn an unconfirmed address into one with no record."""
    from django.db.models import Exists, OuterRef

    newer = AuditEvent.objects.filter(EMAIL_SETTING, target_type="user", target_id=OuterRef("target_id"),
                                      id__gt=OuterRef("id"))
    return Q(EMAIL_SETTING, target_type="user") & ~Exists(newer)


def email_trust(user: User) -> EmailTrust:
    """Whether ``user.email`` may receive a set-password link (see the module docstring)."""
    event = email_setter_event(user)
    if event is None:
        return EmailTrust(True)
    setter = event.actor_label
    try:
        if event.actor_type == AuditEvent.ActorType.SYSTEM:
            return EmailTrust(True, setter)
        if event.actor_type == AuditEvent.ActorType.USER:
            if event.actor_id is not None and event.actor_id == user.pk:
                return EmailTrust(True, setter)
            privilege.check_may_vouch_email(event.actor if event.actor_id is not None else None, user)
            return EmailTrust(True, setter)
        if event.actor_type in (AuditEvent.ActorType.PROVIDER, AuditEvent.ActorType.SYNC) \
                and event.source in _PROVIDER_KINDS:
            _check_source(event, user)
            return EmailTrust(True, setter)
        raise PolicyDenied("not_a_voucher", f"{setter} ({event.actor_type}) cannot vouch for an address.")
    except PolicyDenied as exc:
        return EmailTrust(False, setter, exc.code, exc.message)


def _check_source(event: AuditEvent, user: User) -> None:
    """The source that set the address must own the user now (audit events name a source by its
    display name, ``Actor.provider_actor``) and may still change their sign-in fields."""
    profile = getattr(user, "profile", None)
    source = getattr(profile, "owner_source", None) if profile is not None else None
    if source is None or source.kind != event.source or source.name != event.actor_label:
        raise PolicyDenied("not_owner_source", f"{event.actor_label} no longer owns {user.get_username()}.")
    privilege.check_source_may_vouch_email(source_id=source.pk, source_label=source.name, target=user)


def unconfirmed_message(user: User, trust: EmailTrust) -> str:
    """What an admin is told when a link to ``user``'s address is refused."""
    who = f"by {trust.set_by}, who" if trust.set_by else "by someone who"
    return (f"{user.username}'s email address {user.email} was set {who} may not change {user.username} "
            f"now (for example, {user.username} was given more powerful roles since). Check the address with "
            f"{user.username}, then save it again on Edit or press \"Confirm email\" on the user page.")
