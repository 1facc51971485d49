"""Console sign-in with the directory password (issue 10): django-auth-ldap's ``LDAPBackend``,
configured per directory at call time from its ``Directory`` row.

A directory with ``password_sign_in`` on lets the users it **owns** (``UserProfile.owner_source``, linked
by their anchor) sign in with the password the directory holds: the backend searches the entry with
the directory's sync account (user filter + the username attribute, the typed username escaped),
binds as that entry with the typed password, checks that the entry's anchor is the one the user is
linked by, and returns the idm user. Authentication only, as with SSO: it never creates users,
never copies names or groups (the sync does that), never stores the password, and writes nothing to
the user row (Django's ``last_login`` aside).

Refused without asking the directory: users no directory with the setting owns (local users keep
``ModelBackend``), blocked or deactivated users, users of orgs that sign in through SSO (their
break-glass users keep their local password), directories switched off. The sign-in page's throttle,
two-factor step and audit apply unchanged; ``describe_sign_in`` names the directory in the audit.

A directory that does not answer (down, TLS refused, sync account refused) is not a wrong password:
the page says the directory could not be reached (``accounts.backends.SignInFailure``) and the audit
event carries the coded ``DirectoryError``. The password is sent only over LDAPS or StartTLS with
certificate verification on; a row that says otherwise is refused, never downgraded.

Hooks used: ``authenticate`` (find the owning directory and configure ``settings``),
``get_or_build_user`` (the anchor check instead of a username lookup), ``get_user`` (account state),
and the ``ldap_error`` signal (raise instead of django-auth-ldap's log-and-return-None, which would
make an unreachable directory look like an unknown user).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import ldap
from django.contrib.auth import get_user_model
from django.views.decorators.debug import sensitive_variables
from django_auth_ldap.backend import LDAPBackend, ldap_error
from django_auth_ldap.config import LDAPSearch, LDAPSettings

from accounts.backends import SignInFailure, account_may_sign_in, note_sign_in_failure
from accounts.exceptions import IdentityError, MappingError
from accounts.identity.types import Source
from accounts.models import ExternalIdentity
from accounts.selectors import users_named
from provisioning.ldap.client import directory_error_for
from provisioning.ldap.directories import ca_bundle_file, preset_of, verified_tls_on_every_url
from provisioning.ldap.secrets import decrypt_secret
from provisioning.ldap.translate import DirectoryPreset, translate_user
from provisioning.models import Directory

logger = logging.getLogger(__name__)

# A sign-in waits at most this long per server for the directory (the sync's own timeouts allow a
# minute, far longer than a browser or gunicorn waits for a page).
SIGN_IN_TIMEOUT_SECONDS = 10.0

UNREACHABLE_MESSAGE = ("Your password could not be checked: your organization's directory did not answer. "
                       "Try again in a few minutes, or tell your administrator if it keeps happening.")


class DirectoryUnreachable(Exception):
    """The directory could not answer a sign-in (raised from django-auth-ldap's ``ldap_error`` signal)."""

    def __init__(self, exception: ldap.LDAPError):
        super().__init__(type(exception).__name__)
        self.exception = exception


class _UserSearch(LDAPSearch):
    """django-auth-ldap's ``USER_SEARCH`` over several base DNs that raises on LDAP errors.

    ``LDAPSearchUnion`` logs a failed search and returns no entries, which would make a directory
    that stopped answering look like an unknown user. The username is escaped by ``LDAPSearch``
    (``%(user)s`` filled through ``ldap.filter.escape_filter_chars``). An entry found under two
    overlapping bases counts once; more than one entry means no sign-in (django-auth-ldap needs one).
    """

    def __init__(self, base_dns: tuple[str, ...], filterstr: str, attrlist: list[str]):
        super().__init__(base_dns[0], ldap.SCOPE_SUBTREE, filterstr, attrlist)
        self.base_dns = base_dns

    def execute(self, connection, filterargs=(), escape=True):
        found: dict[str, dict] = {}
        for base_dn in self.base_dns:
            search = LDAPSearch(base_dn, self.scope, self.filterstr, self.attrlist)
            found.update(search.execute(connection, filterargs, escape))
        return list(found.items())


def user_search_filter(preset: DirectoryPreset) -> str:
    """The user filter AND the username attribute equal to ``%(user)s`` (filled in, escaped, per attempt).

    ``%`` in the admin's filter is doubled: django-auth-ldap fills the filter with Python's ``%``.
    """
    user_filter = preset.user_filter.replace("%", "%%")
    return f"(&{user_filter}({preset.username.replace('%', '%%')}=%(user)s))"


@sensitive_variables("bind_password", "values")
def directory_ldap_settings(directory: Directory, *, ca_file: str) -> LDAPSettings:
    """django-auth-ldap's settings for one directory, from its row; nothing is read from ``AUTH_LDAP_*``.

    Fixed, whatever the project settings say: no user creation, no attribute or group copying, no
    group permissions, no cached DNs, empty passwords refused, certificates verified.
    """
    preset = preset_of(directory)
    options = {
        ldap.OPT_PROTOCOL_VERSION: 3,
        ldap.OPT_REFERRALS: 0,
        ldap.OPT_NETWORK_TIMEOUT: min(directory.connect_timeout, SIGN_IN_TIMEOUT_SECONDS),
        ldap.OPT_TIMEOUT: min(directory.operation_timeout, SIGN_IN_TIMEOUT_SECONDS),
        ldap.OPT_X_TLS_REQUIRE_CERT: ldap.OPT_X_TLS_DEMAND,
    }
    if ca_file:
        options[ldap.OPT_X_TLS_CACERTFILE] = ca_file
    options[ldap.OPT_X_TLS_NEWCTX] = 0  # last: a TLS context of this connection's own with the options above
    bind_password = decrypt_secret(directory.bind_password_encrypted)
    values = dict(LDAPSettings.defaults) | {
        # libldap tries space-separated URIs in order, as the sync's client does.
        "SERVER_URI": " ".join(directory.urls),
        "START_TLS": _starts_tls(directory),
        "CONNECTION_OPTIONS": options,
        "BIND_DN": directory.bind_dn,
        "BIND_PASSWORD": bind_password,
        "USER_SEARCH": _UserSearch(tuple(directory.base_dns), user_search_filter(preset),
                                   list(preset.user_attributes)),
        "ALWAYS_UPDATE_USER": False,
        "NO_NEW_USERS": True,
        "MIRROR_GROUPS": None,
        "MIRROR_GROUPS_EXCEPT": None,
        "FIND_GROUP_PERMS": False,
        "AUTHORIZE_ALL_USERS": False,
        "USER_ATTR_MAP": {},
        "USER_FLAGS_BY_GROUP": {},
        "REQUIRE_GROUP": None,
        "DENY_GROUP": None,
        "CACHE_TIMEOUT": 0,
        "PERMIT_EMPTY_PASSWORD": False,
        "BIND_AS_AUTHENTICATING_USER": False,
        "USER_DN_TEMPLATE": None,
        "USER_QUERY_FIELD": None,
    }
    conf = LDAPSettings(IdmLDAPBackend.settings_prefix, {})
    for name, value in values.items():  # every setting, so no AUTH_LDAP_* value leaks in
        setattr(conf, name, value)
    return conf


def _starts_tls(directory: Directory) -> bool:
    return directory.tls_mode == Directory.TlsMode.START_TLS and not any(
        url.lower().startswith("ldaps://") for url in directory.urls)


def sends_passwords_over_verified_tls(directory: Directory) -> bool:
    """The stored row still passes ``verified_tls_on_every_url`` (checked at every sign-in, not only on save)."""
    return verified_tls_on_every_url(directory.urls, directory.tls_mode, directory.verify_tls)


def directory_for_sign_in(user) -> Directory | None:
    """The directory whose password ``user`` may sign in with: the enabled LDAP source that owns them,
    with ``password_sign_in`` on; ``None`` otherwise (local users, SCIM users, setting off)."""
    profile = getattr(user, "profile", None)
    if profile is None or profile.owner_source_id is None:
        return None
    directory = (Directory.objects.select_related("source")
                 .filter(source_id=profile.owner_source_id, source__enabled=True, password_sign_in=True).first())
    return directory


def _raw(attrs) -> dict[str, list[bytes]]:
    # django-auth-ldap decodes values that are valid UTF-8; the translator wants what the server sent.
    return {name: [v if isinstance(v, bytes) else v.encode("utf-8") for v in values]
            for name, values in (attrs or {}).items()}


@dataclass(frozen=True)
class _Attempt:
    user: object
    directory: Directory
    anchor: str
    request: object


class IdmLDAPBackend(LDAPBackend):
    """Sign-in with the directory password for users a directory owns (see the module docstring).

    Django makes a new backend instance for every ``authenticate`` call, so the attempt's state
    (``_attempt``, ``settings``) belongs to one sign-in.
    """

    settings_prefix = "IDM_LDAP_SIGN_IN_"  # no such settings exist: every value comes from the Directory row
    _attempt: _Attempt | None = None

    @sensitive_variables()
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if not isinstance(username, str) or not password or "\x00" in username or not username.strip():
            return None
        # The one lookup sign-in uses (NFKC, case-folded; two legacy look-alike rows refuse, never pick one).
        found = users_named(username.strip())
        user = found[0] if len(found) == 1 else None
        directory = directory_for_sign_in(user) if user is not None else None
        if directory is None:
            return None  # not a directory sign-in: ModelBackend's answer stands
        refusal = self._refusal(user, directory)
        if refusal:
            note_sign_in_failure(request, SignInFailure(refusal, detail={"directory": directory.source.name}))
            return None
        anchor = (ExternalIdentity.objects.filter(user=user, source=Source.LDAP, provider=directory.source.slug)
                  .values_list("external_id", flat=True).first())
        if anchor is None:
            note_sign_in_failure(request, SignInFailure("directory_not_linked",
                                                        detail={"directory": directory.source.name}))
            return None
        self._attempt = _Attempt(user=user, directory=directory, anchor=anchor, request=request)
        try:
            with ca_bundle_file(directory) as ca_file:
                self.settings = directory_ldap_settings(directory, ca_file=ca_file)
                return super().authenticate(request, username=username.strip(), password=password)
        except (DirectoryUnreachable, ldap.LDAPError) as exc:
            error = exc.exception if isinstance(exc, DirectoryUnreachable) else exc
            self._unreachable(request, directory, directory_error_for(error, url=", ".join(directory.urls)))
        except IdentityError as exc:  # e.g. the bind password cannot be decrypted any more
            self._unreachable(request, directory, exc)
        finally:
            self._attempt = None
            self.settings = None
        return None

    def _refusal(self, user, directory: Directory) -> str:
        """Why ``user`` may not sign in through ``directory`` before the directory is asked, or ""."""
        from sso.signin import org_provider  # sso imports provisioning models; import at call time

        if not self.user_can_authenticate(user):
            return "user_inactive"
        if org_provider(user.profile.org) is not None:
            return "org_uses_sso"
        if not sends_passwords_over_verified_tls(directory):
            # validate_settings refuses this combination; a row changed behind its back is refused too,
            # never used without TLS verification.
            logger.warning("Directory %s has password sign-in on without verified TLS on every server URL; "
                           "sign-in refused.", directory.source.name)
            return "directory_insecure"
        return ""

    def _unreachable(self, request, directory: Directory, error: IdentityError) -> None:
        logger.warning("Directory %s could not check a sign-in: %s", directory.source.name, error.code)
        note_sign_in_failure(request, SignInFailure(
            "directory_unreachable", message=UNREACHABLE_MESSAGE, password_checked=False,
            detail={"directory": directory.source.name, "error": error.code, "hint": error.message},
        ))

    # -- django-auth-ldap hooks -------------------------------------------------------------------

    def get_or_build_user(self, username, ldap_user):
        """The idm user the attempt is for, once the bound entry proves to be theirs (same anchor,
        active in the directory); never a new user, never a lookup by username."""
        attempt = self._attempt
        if attempt is None:  # populate_user() and other entry points that would create users
            raise ldap_user.AuthenticationFailed("directory sign-in only")
        reason = self._entry_refusal(ldap_user, attempt)
        if reason:
            note_sign_in_failure(attempt.request, SignInFailure(
                reason, detail={"directory": attempt.directory.source.name}))
            raise ldap_user.AuthenticationFailed(reason)
        return attempt.user, False

    @staticmethod
    def _entry_refusal(ldap_user, attempt: _Attempt) -> str:
        """Why the entry the password was checked against does not sign ``attempt.user`` in, or ""."""
        preset = preset_of(attempt.directory)
        try:
            entry = translate_user(ldap_user.dn, _raw(ldap_user.attrs), preset, now=datetime.now(UTC))
        except MappingError as exc:  # no anchor or no username readable
            return exc.code
        if entry.anchor != attempt.anchor:
            return "directory_entry_not_linked"  # another entry than the one the user is linked to
        if not entry.active:  # disabled or expired in the directory, not yet synced
            return f"directory_account_{entry.inactive_reason or 'inactive'}"
        return ""

    def user_can_authenticate(self, user) -> bool:
        return account_may_sign_in(user)

    def get_user(self, user_id):
        """The session's user while their account may sign in (blocked or deactivated: signed out)."""
        user = get_user_model()._default_manager.select_related("profile").filter(pk=user_id).first()
        return user if user is not None and account_may_sign_in(user) else None

    def get_group_permissions(self, user, obj=None):
        return set()  # authorization stays with idm's roles, set by the sync

    def get_all_permissions(self, user, obj=None):
        return set()

    # -- audit ------------------------------------------------------------------------------------

    @staticmethod
    def describe_sign_in(user) -> tuple[dict, str]:
        """What the ``auth.login_succeeded`` event records for a sign-in through this backend."""
        source = getattr(getattr(user, "profile", None), "owner_source", None)
        name = source.name if source is not None else "(unknown)"
        return ({"method": "directory", "directory": name, "directory_id": getattr(source, "pk", None)},
                f"signed in via directory {name}")


def _raise_unreachable(sender, context, user, request, exception, **kwargs):
    """django-auth-ldap's ``ldap_error`` signal: raise, so the backend can tell "directory down" from
    "wrong password" (the library would log and carry on as if the user did not exist)."""
    if isinstance(exception, ldap.INVALID_CREDENTIALS) and context == "authenticate":
        return  # a wrong user password is handled by the library (AuthenticationFailed)
    raise DirectoryUnreachable(exception)


ldap_error.connect(_raise_unreachable, sender=IdmLDAPBackend, dispatch_uid="idm_ldap_sign_in_errors")
