"""Who may change an identity provider: the privilege rule of issue 7 §1 applied to IdPs (third
outside review, H1).

A provider's settings decide who signs in as whom: its metadata (entity id, endpoints, signing
certificates), metadata URL, attribute mapping and username attribute, just-in-time creation, the
security switches (legacy algorithms, IdP-initiated sign-in, clock skew) and whether it is on at all.
Whoever sets them can sign in as any user the provider signs in, or lock them all out. So changing
them is a change to the credentials of each of those users, and the actor must hold every power
they hold (``provider_powers``), as for a provisioning source (``provisioning.policy``); a Customer
Cloud Admin always does, unless a Django superuser signs in through the provider. Renaming it is
not judged.

The users a provider signs in are those of the orgs that use it, after inheritance, except its
break-glass users (``accounts.identity.orgs.users_signing_in_through``), active or not (a blocked
admin is still one); with just-in-time creation, also the new users it would create, who get the
default roles of its org for new users. Pointing an org at a provider, switching its method or
moving it under another parent is judged in ``accounts.identity.orgs`` the same way.

Every check here runs with the admin lock held (``accounts.identity.locks``), which role changes,
org moves, org sign-in settings and break-glass changes also take: a role granted concurrently is
either seen or waits for the provider change.
"""

from __future__ import annotations

from accounts.exceptions import PolicyDenied
from accounts.identity import privilege
from accounts.identity.orgs import effective_settings, users_signing_in_through
from accounts.identity.privilege import PERM_LABELS, SIGN_IN_PERMS, SYSTEM, USER, Powers
from accounts.identity.types import Actor
from sso.models import IdentityProvider

# Settings whose change is not a change to anyone's sign-in (everything else is).
UNGUARDED_FIELDS = frozenset({"name"})


def jit_powers(provider: IdentityProvider) -> Powers:
    """What the users ``provider`` would create just in time get: the effective default roles of its
    org for new users, in that org (counted whether that org uses the provider yet or not)."""
    if not provider.jit_enabled or provider.jit_org_id is None:
        return Powers()
    org = provider.jit_org
    grants: dict[str, frozenset[str] | None] = {}
    cloud_admin = False
    for role in effective_settings(org).default_roles:
        cloud_admin = cloud_admin or role.slug == privilege.CLOUD_ADMIN_SLUG
        for perm in role.group.permissions.values_list("codename", flat=True):
            if perm in SIGN_IN_PERMS:
                continue
            reach = None if role.scope == "global" else frozenset({org.path})
            held = grants.get(perm, frozenset())
            grants[perm] = None if held is None or reach is None else held | reach
    return Powers(grants=grants, cloud_admin=cloud_admin)


def _union(a: Powers, b: Powers) -> Powers:
    grants = dict(a.grants)
    for perm, reach in b.grants.items():
        held = grants.get(perm, frozenset())
        grants[perm] = None if held is None or reach is None else held | reach
    return Powers(grants=grants, cloud_admin=a.cloud_admin or b.cloud_admin, superuser=a.superuser or b.superuser)


def provider_powers(provider: IdentityProvider) -> Powers:
    """Everything whoever controls ``provider`` (as configured on this instance, saved or not) can do:
    the powers of every user it signs in, and of the users it would create just in time."""
    users = users_signing_in_through(provider.pk) if provider.pk else None
    theirs = privilege.combined_powers(users) if users is not None else Powers()
    return _union(theirs, jit_powers(provider))


def guarded_changes(old: IdentityProvider | None, new: IdentityProvider, *, metadata: bool) -> list[str]:
    """The fields of ``new`` that differ from the stored ``old`` and change sign-in (``metadata``:
    new metadata is being loaded)."""
    if old is None:
        return ["created"]
    names = [f.attname for f in IdentityProvider._meta.concrete_fields
             if f.attname not in UNGUARDED_FIELDS and f.attname not in ("id", "created_at", "updated_at")]
    changed = [name for name in names if getattr(old, name) != getattr(new, name)]
    if metadata and "metadata_xml" not in changed:
        changed.append("metadata_xml")
    return changed


def check_may_administer_provider(*, actor: Actor, provider: IdentityProvider, action: str = "change") -> None:
    """Raise ``PolicyDenied("provider_more_privileged")`` unless ``actor`` holds every power of
    ``provider``. ``action`` completes the message ("change", "delete"). System actors (setup
    commands, the scheduled metadata refresh) pass; provider actors never change a provider."""
    mine = privilege.powers_of_actor(actor)
    if mine.kind == SYSTEM:
        return
    if mine.kind != USER:
        raise PolicyDenied("provider_more_privileged", "Identity providers are configured in the console.")
    theirs = provider_powers(provider)
    why = ", and whoever controls an identity provider can sign in as any of its users."
    if theirs.superuser and not mine.superuser:
        raise PolicyDenied("provider_more_privileged",
                           f"Only a Django superuser can {action} {provider.name}: a user with Django admin access "
                           f"signs in through it{why}")
    if mine.cloud_admin and not theirs.superuser:
        return
    if theirs.cloud_admin:
        raise PolicyDenied("provider_more_privileged",
                           f"Only a Customer Cloud Admin can {action} {provider.name}: a Customer Cloud Admin signs "
                           f"in through it{why}")
    missing = privilege.missing_permissions(actor=mine, target=theirs)
    if missing:
        labels = ", ".join(PERM_LABELS.get(p, p) for p in missing)
        raise PolicyDenied(
            "provider_more_privileged",
            f"Only a Customer Cloud Admin, or an admin who also holds {labels} wherever its users do, can "
            f"{action} {provider.name}: users who sign in through it (or whom it would create) hold "
            f"{'it' if len(missing) == 1 else 'them'}{why}")


def may_administer_provider(actor: Actor, provider: IdentityProvider) -> bool:
    """For the console: would ``check_may_administer_provider`` let ``actor`` change ``provider``?"""
    try:
        check_may_administer_provider(actor=actor, provider=provider)
    except PolicyDenied:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Trust (fourth review F2): a provider signs in only users whoever last set its trust may change.
#
# ``check_may_administer_provider`` judges a change against the users a provider signs in *then*; a
# signing key planted while they held nothing would keep working after one of them is promoted or an
# org of admins is pointed at the provider. So the provider records who last set what decides who a
# response signs in as (``trust_set_by``), and every sign-in is judged against that admin's powers
# *now*: the user signing in (or the roles a just-in-time user would get) must be someone the setter
# may change (the privilege rule). A qualified admin re-confirms the trust to lift the limit.

# What decides who a response signs in as: the IdP's keys and endpoints (metadata, its URL and how it
# is fetched, entity id), which signatures count, and which attribute names the user.
TRUST_FIELDS = frozenset({"metadata_url", "metadata_verify_tls", "metadata_xml", "entity_id",
                          "use_default_mapping", "username_attribute", "allow_legacy_algorithms"})


def trust_changed(changed: list[str]) -> bool:
    """Do ``guarded_changes`` include one that sets the provider's trust (or create it)?"""
    return "created" in changed or bool(TRUST_FIELDS.intersection(changed))


def _has_powers(target: Powers) -> bool:
    return target.cloud_admin or target.superuser or bool(set(target.grants) - SIGN_IN_PERMS)


def setter_powers(provider: IdentityProvider) -> Powers:
    """The powers the trust setter of ``provider`` holds now (none once deactivated)."""
    from accounts.access import Access

    return privilege.powers_of_access(Access(provider.trust_set_by))


def trust_refusal(provider: IdentityProvider, *, target: Powers, target_user_id: int | None = None,
                  setter: Powers | None = None) -> str:
    """Why ``provider`` may not sign in a user holding ``target`` (``""``: it may). No query unless
    the provider has a recorded setter and the target holds powers beyond sign-in; the setter
    signs in as themself."""
    if provider.trust_set_by_id is None or provider.trust_set_by_id == target_user_id or not _has_powers(target):
        return ""
    try:
        privilege.check_privilege(actor=setter or setter_powers(provider), target=target)
    except PolicyDenied as exc:
        return exc.message
    return ""


def users_beyond_trust(provider: IdentityProvider) -> tuple[int, bool]:
    """For the provider page: how many of the users ``provider`` signs in its trust setter may not
    change now, and whether the users it would create just in time are beyond the setter too."""
    if provider.trust_set_by_id is None:
        return 0, False
    from django.db.models import Q

    from accounts.permissions import ALL_PERMS

    setter = setter_powers(provider)
    powers = [p for p in ALL_PERMS if p not in SIGN_IN_PERMS]
    users = (users_signing_in_through(provider.pk)
             .filter(Q(groups__role__isnull=False, groups__permissions__codename__in=powers) | Q(is_superuser=True))
             .exclude(pk=provider.trust_set_by_id).distinct())
    beyond = sum(1 for pk, target in privilege.powers_of_users(users).items()
                 if trust_refusal(provider, target=target, target_user_id=pk, setter=setter))
    return beyond, bool(trust_refusal(provider, target=jit_powers(provider), setter=setter))
