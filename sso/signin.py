"""Sign-in rules shared by the SAML backend, the password backend and the sign-in page.

* Which way a user signs in: their org's effective authentication method (inherited), unless they
  are a break-glass user of that org's provider.
* Who an assertion signs in: the user linked to (provider, NameID); else the active user with the
  asserted username in an org that uses this provider, who is then linked; else (only when the
  provider opts in) a new user created just in time. All writes go through the identity service.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied

from accounts.exceptions import IdentityError
from accounts.identity.orgs import effective_settings
from accounts.identity.service import apply_identity_change
from accounts.identity.types import Actor, AuthMethod, ExternalLink, IdentityChange, Mode, Source, UserState
from accounts.models import ExternalIdentity, UserProfile
from accounts.selectors import users_named
from sso.attributes import SamlIdentity
from sso.models import IdentityProvider

User = get_user_model()


class SignInRefused(PermissionDenied):
    """SSO sign-in refused for a reason the user may see (``code`` + ``message``)."""

    def __init__(self, code: str, message: str, *, username: str = "", status: int = 403, detail: str = "",
                 extra: dict | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.username = username
        self.status = status
        self.detail = detail  # for the audit event only, never shown
        self.extra = extra  # added to the audit event's ``new`` (never shown)


def provider_actor(provider: IdentityProvider, *, request=None) -> Actor:
    """The actor of writes and events caused by an assertion from ``provider``."""
    return Actor(label=f"SSO: {provider.name}"[:255], type="provider", source=Source.SAML,
                 provider=provider.provider_key, enforce_scope=False,
                 request_id=getattr(request, "request_id", "") if request else "",
                 ip=getattr(request, "client_ip", None) if request else None)


def org_provider(org) -> IdentityProvider | None:
    """The provider an org signs in with (after inheritance), or ``None`` for local sign-in."""
    eff = effective_settings(org)
    return eff.auth_provider if eff.auth_method == AuthMethod.SSO else None


def _profile(user) -> UserProfile | None:
    try:
        return user.profile
    except UserProfile.DoesNotExist:
        return None


def sso_provider_for(user) -> IdentityProvider | None:
    """The provider ``user`` must sign in with, or ``None`` if password sign-in applies to them."""
    profile = _profile(user)
    if profile is None:
        return None
    provider = org_provider(profile.org)
    if provider is None:
        return None
    if provider.break_glass_users.filter(pk=user.pk).exists():
        return None
    return provider


def directory_password_source(user) -> str | None:
    """The name of the directory that holds ``user``'s password, or ``None``: a directory with password
    sign-in on that owns the user (enabled or not), unless the user's org signs in through SSO (then
    the SSO rules apply, and its break-glass users keep their local password). Such a user's local
    password is not used and no reset link is mailed to them (review N10): the directory decides."""
    profile = _profile(user)
    if profile is None or profile.owner_source_id is None or org_provider(profile.org) is not None:
        return None
    from provisioning.models import Directory

    return (Directory.objects.filter(source_id=profile.owner_source_id, password_sign_in=True)
            .values_list("source__name", flat=True).first())


def password_sign_in_allowed(user) -> bool:
    """Users of SSO orgs sign in through their IdP, except the provider's break-glass users."""
    return sso_provider_for(user) is None


def _check_state(user, username: str) -> None:
    profile = _profile(user)
    state = profile.state if profile else (UserState.ACTIVE if user.is_active else UserState.DEACTIVATED)
    if state == UserState.BLOCKED:
        raise SignInRefused("user_blocked", "Your account is blocked. Contact your administrator.",
                            username=username)
    if state == UserState.DEACTIVATED or not user.is_active:
        raise SignInRefused("user_deactivated", "Your account is deactivated. Contact your administrator.",
                            username=username)


def _check_uses_provider(user, provider: IdentityProvider, username: str) -> None:
    profile = _profile(user)
    used = org_provider(profile.org) if profile else None
    if used is None or used.pk != provider.pk:
        raise SignInRefused(
            "wrong_provider",
            f"Your organization does not sign in with {provider.name}. Use your organization's sign-in page.",
            username=username,
        )


def _check_not_linked_elsewhere(user, provider: IdentityProvider, identity: SamlIdentity) -> None:
    """A user matched by username who is already linked to another account at this IdP is refused, not
    relinked: otherwise whoever holds an IdP account with that username takes the user over (issue 7 §5).
    An administrator removes the old link on the user's page when the IdP account really changed."""
    other = (ExternalIdentity.objects.filter(user=user, source=Source.SAML, provider=provider.provider_key)
             .exclude(external_id=identity.name_id).values_list("external_id", flat=True).first())
    if other is not None:
        raise SignInRefused(
            "linked_to_other_account",
            "Your idm account is linked to another account at this identity provider. Ask your administrator "
            "to remove the old link if your identity provider account changed.",
            username=identity.username, detail=f"linked NameID {other[:150]!r}, asserted {identity.name_id[:150]!r}",
        )


def _check_trust(provider: IdentityProvider, *, username: str, user=None, target=None) -> None:
    """Refuse ``user`` (or a just-in-time user holding ``target``) when the admin who last set the
    provider's trust may not change them now (fourth review F2, ``sso.policy.trust_refusal``):
    ``sso_trust_unconfirmed``, until a qualified admin confirms the provider. Free for a provider
    whose trust the system set (no setter recorded)."""
    if provider.trust_set_by_id is None:
        return
    from accounts.identity import privilege
    from sso.policy import trust_refusal

    if target is None:
        target = privilege.powers_of_users([user])[user.pk]
    why = trust_refusal(provider, target=target, target_user_id=user.pk if user is not None else None)
    if why:
        setter = provider.trust_set_by
        raise SignInRefused(
            "sso_trust_unconfirmed",
            f"{provider.name} may not sign you in until an administrator who may change your account confirms "
            "its settings. Contact your administrator.", username=username,
            detail=f"trust set by {setter.get_username()}: {why}"[:1000],
            extra={"trust_set_by": setter.get_username(), "trust_set_by_id": setter.pk})


def resolve_user(*, provider: IdentityProvider, identity: SamlIdentity, request=None):
    """The user an assertion from ``provider`` signs in, linking or creating through the identity service."""
    link = ExternalLink(source=Source.SAML, provider=provider.provider_key, external_id=identity.name_id,
                        raw={"username": identity.username})
    linked = (ExternalIdentity.objects.select_related("user", "user__profile__org")
              .filter(source=Source.SAML, provider=provider.provider_key, external_id=identity.name_id).first())
    if linked is not None:
        user = linked.user
        _check_state(user, identity.username)
        _check_uses_provider(user, provider, identity.username)
        _check_trust(provider, username=identity.username, user=user)
        return user

    named = users_named(identity.username)
    if len(named) > 1:
        # Legacy rows that differ only in case (review F9): refuse rather than link whichever comes first.
        raise SignInRefused("ambiguous_user", "Your idm account could not be identified. Ask your administrator.",
                            username=identity.username, detail=f"{len(named)} users match the username")
    user = named[0] if named else None
    actor = provider_actor(provider, request=request)
    if user is not None:
        _check_state(user, identity.username)
        _check_uses_provider(user, provider, identity.username)
        _check_not_linked_elsewhere(user, provider, identity)
        _check_trust(provider, username=identity.username, user=user)  # before the link is written
        change = IdentityChange(user_id=user.pk, link=link, mode=Mode.UPDATE)
        try:
            apply_identity_change(change=change, actor=actor)
        except IdentityError as exc:
            raise SignInRefused("link_failed", "Your account could not be linked to this identity provider. "
                                "Contact your administrator.", username=identity.username) from exc
        return user

    if not provider.jit_enabled or provider.jit_org_id is None:
        raise SignInRefused("unknown_user", "There is no account for you in idm. Ask your administrator to "
                            "create one.", username=identity.username)
    if org_provider(provider.jit_org) is None or org_provider(provider.jit_org).pk != provider.pk:
        raise SignInRefused("jit_misconfigured", "New accounts cannot be created: the organization chosen "
                            "for them does not use this identity provider.", username=identity.username)
    if provider.trust_set_by_id is not None:
        from sso.policy import jit_powers

        _check_trust(provider, username=identity.username, target=jit_powers(provider))
    change = IdentityChange(
        username=identity.username, email=identity.email, first_name=identity.first_name,
        last_name=identity.last_name, org_id=provider.jit_org_id, link=link, mode=Mode.CREATE,
    )
    try:
        result = apply_identity_change(change=change, actor=actor)
    except IdentityError as exc:
        raise SignInRefused("jit_failed", f"Your account could not be created: {exc.message}",
                            username=identity.username) from exc
    return result.user
