"""Credentials issued before a user's privilege rose stop working (review 3 H2).

An invitation, a reset link or a temporary password is a password change waiting to happen, handed
out by whoever was allowed to change the user at that moment. The privilege rule promises that no
one changes a user more privileged than themselves; a promotion must not turn an earlier link into
exactly that. So when a change raises what a user holds (a role grant, a move to an org outside
their reach, Django admin access), through any front door - console, bulk upload, SCIM, directory
rules, SAML just-in-time - the identity service calls ``void_after_privilege_rise`` in the same
transaction, and:

* the user's security stamp changes (``SecurityStamp``): every reset and invitation link issued
  before fails its token check, whoever asked for it (the user can ask again: "forgot password"
  mails their own address);
* their invitation row goes (a qualified admin sends a new one);
* a pending temporary password goes: a "change password at next sign-in" requirement means the
  current password was chosen, or is known, by someone else, who may no longer set it. The password
  becomes unusable (sessions signed in with it end, Django's session hash covers the password),
  the requirement with it; the user gets a new link or temporary password from a qualified admin.
  Okta keeps credentials on a role assignment; idm's rule is stricter because its links are
  issued by delegated admins whose reach a promotion leaves behind.

One ``user.credentials_voided`` audit event per user says what went. A rise is judged by
``privilege.rises`` on the powers before and after the change; changes that raise nothing (most of a
bulk run) cost no query here, and the voiding itself is a few statements per batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.auth.models import User
from django.db import transaction

from accounts.credentials.models import Invitation, RequiredAction, SecurityStamp
from accounts.identity import privilege

# What a plan must change for the user's powers to change at all.
_POWER_FIELDS = frozenset({"roles", "org", "django_admin"})


def privilege_rose(plan, state) -> bool:
    """Does the accepted ``plan`` (``accounts.identity.planner.Plan``) raise its user's privilege over
    what ``state`` (the batch's ``BatchState``, not yet updated by the plan) holds? Pure: no query.

    Cheap for what most bulk changes are: no role, org or Django admin change, only roles removed, or
    only sign-in roles added in the same org say no without building the powers."""
    if plan.status != "updated" or not _POWER_FIELDS.intersection(plan.changed):
        return False
    current = state.by_id.get(plan.user.pk)
    if current is None or current.profile is None:
        return False
    same_place = (plan.profile.org_id == current.profile.org_id
                  and (current.user.is_superuser or not plan.user.is_superuser))
    added = plan.role_slugs_after - current.role_slugs
    if same_place and all(_perms(state.roles.by_slug[s]) <= privilege.SIGN_IN_PERMS for s in added):
        return False

    def powers(slugs, org_id, superuser):
        org = state.orgs.get(org_id) if org_id else None
        roles = [state.roles.by_slug[s] for s in sorted(slugs)]
        return privilege.powers_from_roles([(r.slug, _perms(r), r.scope) for r in roles],
                                           org_path=org.path if org is not None else None, superuser=superuser)

    return privilege.rises(
        before=powers(current.role_slugs, current.profile.org_id, current.user.is_superuser),
        after=powers(plan.role_slugs_after, plan.profile.org_id, plan.user.is_superuser))


def _perms(role) -> frozenset[str]:
    """The permission codenames of a role of the run's ``RoleIndex`` (prefetched), kept on the object:
    building the prefetched queryset again for every plan cost more than the rest of the check."""
    perms = role.__dict__.get("_idm_perm_codenames")
    if perms is None:
        perms = role._idm_perm_codenames = frozenset(p.codename for p in role.group.permissions.all())
    return perms


def void_after_privilege_rise(*, actor, plans: Sequence, now) -> None:
    """Void the links and temporary passwords of the users of ``plans`` (accepted plans that raise their
    user's privilege, ``privilege_rose``); inside the identity service's transaction, audited per user.

    A plan that itself sets the password keeps it: its actor may change the user at the new level
    (the planner checked), so that password is not one set by someone who may no longer set it."""
    from accounts.identity.audit import build_event, save_events
    from accounts.identity.loading import chunks
    from accounts.identity.validators import unusable_password

    users = {p.user.pk: p.user.username for p in plans}
    fresh_password = {p.user.pk for p in plans if p.password_changed}
    ids = sorted(users)
    invited: set[int] = set()
    temporary: set[int] = set()
    for chunk in chunks(ids):
        invited |= set(Invitation.objects.filter(user_id__in=chunk).values_list("user_id", flat=True))
        temporary |= set(RequiredAction.objects.filter(user_id__in=chunk, kind=RequiredAction.Kind.CHANGE_PASSWORD)
                         .values_list("user_id", flat=True))
    temporary -= fresh_password
    for chunk in chunks(sorted(invited)):
        Invitation.objects.filter(user_id__in=chunk).delete()
    if temporary:
        User.objects.bulk_update([User(pk=pk, password=unusable_password()) for pk in sorted(temporary)],
                                 ["password"], batch_size=500)
        for chunk in chunks(sorted(temporary)):
            RequiredAction.objects.filter(user_id__in=chunk, kind=RequiredAction.Kind.CHANGE_PASSWORD).delete()
    SecurityStamp.objects.bulk_create(
        [SecurityStamp(user_id=pk, value=_new_stamp(), changed_at=now) for pk in ids], batch_size=500,
        update_conflicts=True, unique_fields=["user"], update_fields=["value", "changed_at"])
    save_events([build_event(
        actor=actor, action="user.credentials_voided", target_type="user", target_id=pk, target_label=users[pk],
        new={"invitation": pk in invited, "reset_links": True, "temporary_password": pk in temporary},
        message="privilege rose: set-password links and a temporary password issued before no longer work",
    ) for pk in ids])
    if temporary:
        from accounts.sessions import end_user_sessions

        ended = sorted(temporary)
        transaction.on_commit(lambda: end_user_sessions(user_ids=ended, actor=actor,
                                                        reason="temporary password voided: privilege rose"))


def _new_stamp() -> str:
    import secrets

    return secrets.token_hex(16)
