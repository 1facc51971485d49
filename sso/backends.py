"""Authentication backends: SAML sign-in and password sign-in that respects SSO orgs."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from djangosaml2.backends import Saml2Backend

from accounts.backends import ConsoleModelBackend
from accounts.identity.types import UserState
from accounts.selectors import users_named
from sso.attributes import Mapping, MappingFailed, map_identity
from sso.signin import SignInRefused, directory_password_source, password_sign_in_allowed, resolve_user

User = get_user_model()


class IdmSaml2Backend(Saml2Backend):
    """djangosaml2's backend, routed through idm's rules (``sso.signin``) and identity service.

    Hooks: ``authenticate`` (needs the provider, which djangosaml2's hooks don't receive),
    ``_update_user`` (SSO is authentication only: attributes never overwrite directory data) and
    ``user_can_authenticate`` (directory state, also checked on every request by ``get_user``).
    Refusals raise ``SignInRefused`` with a code the ACS view shows and audits.
    """

    def authenticate(self, request, session_info=None, attribute_mapping=None, create_unknown_user=False,
                     assertion_info=None, idm_provider=None, **kwargs):
        if session_info is None or idm_provider is None:
            return None  # not a SAML sign-in (e.g. a password attempt reaching this backend)
        attributes = self.clean_attributes(session_info.get("ava") or {}, session_info.get("issuer", ""))
        name_id = session_info.get("name_id")
        try:
            identity = map_identity(name_id=getattr(name_id, "text", "") or "", attributes=attributes,
                                    mapping=Mapping.of(idm_provider))
        except MappingFailed as exc:
            raise SignInRefused(exc.code, "The identity provider did not say who you are "
                                "(missing username). Contact your administrator.", status=400) from exc
        user = resolve_user(provider=idm_provider, identity=identity, request=request)
        user = self._update_user(user, attributes, attribute_mapping or {})
        if not self.user_can_authenticate(user):
            raise SignInRefused("user_inactive", "Your account cannot sign in.", username=identity.username)
        from accounts.access import Access

        if not Access(user).has("console_access"):
            raise SignInRefused("no_console_access", "Your roles do not include console access. "
                                "Ask an administrator.", username=identity.username)
        return user

    def _update_user(self, user, attributes: dict, attribute_mapping: dict, force_save: bool = False):
        """No attribute sync: user data is managed by the directory, SCIM or LDAP (issue 4)."""
        return user

    def user_can_authenticate(self, user) -> bool:
        if not getattr(user, "is_active", False):
            return False
        profile = getattr(user, "profile", None)
        return profile is None or profile.state in (UserState.ACTIVE, UserState.INVITED)


class IdmModelBackend(ConsoleModelBackend):
    """Password sign-in (``ConsoleModelBackend``) that refuses users who must use SSO.

    Break-glass users of their org's provider keep password sign-in. The sign-in page sends SSO users
    to their IdP; this is the server-side guard for every other path (admin login, API, forms).
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(User.USERNAME_FIELD)
        if isinstance(username, str) and "\x00" not in username:
            named = users_named(username)
            candidate = named[0] if len(named) == 1 else None
            if len(named) > 1 or (candidate is not None and not password_sign_in_allowed(candidate)):
                # Decided before the password is checked, so right and wrong passwords get the same answer
                # (and the same hashing cost, as Django does for unknown users): no password oracle.
                # Several users under one normalised name (legacy rows, review F9): refused, never guessed.
                User().set_password(password or "")
                return None
            if candidate is not None and directory_password_source(candidate) is not None:
                # The directory holds this user's password (``IdmLDAPBackend`` checks it): the local one,
                # left from before the link, no longer signs them in (review N10). Same cost; the answer is
                # the directory backend's, which runs next.
                User().set_password(password or "")
                return None
            if candidate is not None:
                username = candidate.username  # the one user the name means, in its stored spelling
        return super().authenticate(request, username=username, password=password, **kwargs)
