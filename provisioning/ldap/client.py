"""The only module that talks to a directory server: connect, bind, paged search.

Directory sync reads a whole directory in pages (RFC 2696 simple paged results) over one bound
connection; nothing here knows about users, rules or the database. Connection settings arrive as a
``DirectoryConnection`` value, so the console's "Test connection", the sync engine and the tests
use the same code path. Every failure becomes a ``DirectoryError`` with a stable code and a
sentence an administrator can act on (wrong password, unknown CA, name mismatch, base DN not found,
size limit without paging) — python-ldap's own messages ("Can't contact LDAP server") say none of
that.

Security defaults: certificates are verified (``verify_tls=True``) whenever TLS is used; TLS
settings are set per connection (``OPT_X_TLS_NEWCTX``), never process-wide; the bind password is
never logged or put into an error message.
"""

from __future__ import annotations

import enum
import re
import socket
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import ldap
from ldap.controls import SimplePagedResultsControl

from accounts.exceptions import IdentityError

# python-ldap reads ~/.ldaprc and /etc/ldap/ldap.conf at import unless told not to; a sync must not
# pick up the host's client defaults (TLS_REQCERT never, another BASE) by accident.
ldap.set_option(ldap.OPT_REFERRALS, 0)


class DirectoryError(IdentityError):
    """A directory could not be reached, bound or searched; ``message`` says how to fix it."""

    status = 502
    scim_type = None


class TlsMode(enum.StrEnum):
    """How the connection is protected: LDAPS (``ldaps://`` URLs), StartTLS, or plain LDAP."""

    LDAPS = "ldaps"
    START_TLS = "starttls"
    NONE = "none"


@dataclass(frozen=True)
class DirectoryConnection:
    """Everything needed to reach and bind to one directory (servers are tried in order)."""

    urls: tuple[str, ...]
    bind_dn: str = ""
    bind_password: str = field(default="", repr=False)
    tls: TlsMode = TlsMode.NONE
    ca_file: str = ""
    verify_tls: bool = True
    connect_timeout: float = 5.0
    operation_timeout: float = 60.0


@dataclass(frozen=True)
class Entry:
    """One search result: its DN and raw attribute values (bytes), attribute names as sent."""

    dn: str
    attributes: dict[str, list[bytes]]


def _name_mismatch(url: str) -> DirectoryError:
    return DirectoryError(
        "tls_name_mismatch",
        f"The certificate of {url} is not issued for that host name. Use the name the certificate was "
        "issued for in the server URL.",
        field="urls",
    )


def _unknown_ca(url: str) -> DirectoryError:
    return DirectoryError(
        "tls_unknown_ca",
        f"The certificate of {url} is not signed by a trusted certificate authority. Upload the "
        "directory's CA certificate.",
        field="ca_file",
    )


# An LDAPv3 StartTLS extended request (RFC 4511 §4.14.1), message id 1, BER-encoded.
_STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
_STARTTLS_REQUEST = b"\x30\x1d\x02\x01\x01\x77\x18\x80\x16" + _STARTTLS_OID


def diagnose_tls(url: str, *, ca_file: str, start_tls: bool, timeout: float) -> DirectoryError | None:
    """Why a TLS connection to ``url`` fails, as a coded error; None when TLS itself is fine.

    libldap reports every TLS failure as "Can't contact LDAP server" with no detail, which leaves an
    admin guessing between a down server, a missing CA and a wrong host name. Python's ssl module
    gives the verification error, so on failure we repeat the handshake with it (after a StartTLS
    request on plain ``ldap://``) and name the cause.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (636 if parts.scheme.lower() == "ldaps" else 389)
    context = ssl.create_default_context(cafile=ca_file or None)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if start_tls:
                sock.sendall(_STARTTLS_REQUEST)
                if not sock.recv(4096):
                    return None
            with context.wrap_socket(sock, server_hostname=host):
                return None
    except ssl.SSLCertVerificationError as exc:
        # 62: hostname mismatch, 64: IP address mismatch (OpenSSL X509_V_ERR_*).
        if exc.verify_code in (62, 64):
            return _name_mismatch(url)
        return _unknown_ca(url)
    except ssl.SSLError as exc:
        return DirectoryError("tls_failed", f"A secure connection to {url} could not be set up ({exc.reason}).",
                              field="urls")
    except OSError:
        return None


def _unreachable(url: str) -> DirectoryError:
    return DirectoryError(
        "server_unreachable",
        f"Could not connect to the directory server {url}. Check the URL, the port and that the server is "
        "running.",
        field="urls",
    )


# Before a bind has been answered, these mean "no LDAP server spoke": a closed port, a filtered host,
# or an open port whose service never answers or answers in another protocol. They all read the
# same so "Test connection" is no port scanner (review F3: open port "took too long", closed port
# "did not answer"). Errors carrying an LDAP result code, and TLS failures, mean a handshake started.
_NO_LDAP_ANSWER = (ldap.SERVER_DOWN, ldap.CONNECT_ERROR, ldap.TIMEOUT, ldap.DECODING_ERROR)


def _ldap_error(exc: ldap.LDAPError, *, url: str, base_dn: str = "") -> DirectoryError:
    """Translate a python-ldap exception into a coded, actionable error."""
    if isinstance(exc, ldap.INVALID_CREDENTIALS):
        return DirectoryError(
            "bind_failed", "The directory refused the bind DN or password. Check both and save again.",
            field="bind_password",
        )
    if isinstance(exc, ldap.SERVER_DOWN | ldap.CONNECT_ERROR):
        return _unreachable(url)
    if isinstance(exc, ldap.TIMEOUT):
        return DirectoryError(
            "timeout", f"The directory server {url} took too long to answer. Raise the timeout or page size.",
            field="operation_timeout",
        )
    if isinstance(exc, ldap.NO_SUCH_OBJECT):
        return DirectoryError(
            "base_dn_not_found", f"The base DN {base_dn!r} does not exist on the directory server.",
            field="base_dn",
        )
    if isinstance(exc, ldap.SIZELIMIT_EXCEEDED):
        return DirectoryError(
            "size_limit",
            "The directory stopped at its size limit: it does not allow paged searches for this account. "
            "Allow the paged results control (1.2.840.113556.1.4.319) or raise the server's size limit.",
        )
    if isinstance(exc, ldap.FILTER_ERROR):
        return DirectoryError("invalid_filter", "The search filter is not valid LDAP filter syntax.",
                              field="filter")
    if isinstance(exc, ldap.INSUFFICIENT_ACCESS | ldap.STRONG_AUTH_REQUIRED | ldap.CONFIDENTIALITY_REQUIRED):
        return DirectoryError(
            "access_denied",
            "The directory refused the search for this account (it may require TLS or more rights).",
        )
    name = type(exc).__name__
    return DirectoryError("directory_error", f"The directory answered with an error ({name}).")


def directory_error_for(exc: ldap.LDAPError, *, url: str, base_dn: str = "") -> DirectoryError:
    """The coded, actionable ``DirectoryError`` for a python-ldap exception (for callers that talk to the
    server through another library, such as the sign-in backend through django-auth-ldap)."""
    return _ldap_error(exc, url=url, base_dn=base_dn)


_RANGE = re.compile(r"^(?P<attr>[^;]+);range=(?P<start>\d+)-(?P<end>\d+|\*)$", re.IGNORECASE)


def parse_range(name: str) -> tuple[str, int, int | None] | None:
    """``member;range=0-1499`` → ("member", 0, 1499); ``member;range=1500-*`` → ("member", 1500, None)
    (the last range); None for a name without a range option."""
    match = _RANGE.match(name)
    if match is None:
        return None
    end = match["end"]
    return match["attr"], int(match["start"]), None if end == "*" else int(end)


class DirectoryClient:
    """One bound connection to a directory. Use as a context manager; ``search`` pages lazily."""

    def __init__(self, connection: DirectoryConnection):
        if not connection.urls:
            raise DirectoryError("no_server", "Give at least one server URL.", field="urls")
        self.connection = connection
        self.url = ""
        self._conn: ldap.ldapobject.LDAPObject | None = None

    def __enter__(self) -> DirectoryClient:
        self.open()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def open(self) -> None:
        """Connect to the first server that answers and bind; raise the last server's error otherwise."""
        last_error: DirectoryError | None = None
        for url in self.connection.urls:
            try:
                self._conn = self._connect(url)
                self.url = url
                return
            except DirectoryError as error:
                last_error = error
                # A wrong password or a TLS problem will not improve on the next server of the same
                # directory; only an unreachable server is worth skipping.
                if error.code != "server_unreachable":
                    raise
        raise last_error or DirectoryError("no_server", "Give at least one server URL.", field="urls")

    def _connect(self, url: str) -> ldap.ldapobject.LDAPObject:
        settings = self.connection
        conn = ldap.initialize(url, bytes_mode=False)
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, settings.connect_timeout)
        conn.set_option(ldap.OPT_TIMEOUT, settings.operation_timeout)
        uses_tls = url.lower().startswith("ldaps://") or settings.tls == TlsMode.START_TLS
        if uses_tls:
            conn.set_option(
                ldap.OPT_X_TLS_REQUIRE_CERT,
                ldap.OPT_X_TLS_DEMAND if settings.verify_tls else ldap.OPT_X_TLS_NEVER,
            )
            if settings.ca_file:
                conn.set_option(ldap.OPT_X_TLS_CACERTFILE, settings.ca_file)
            # Apply the options above to this connection only (a fresh TLS context).
            conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        try:
            if settings.tls == TlsMode.START_TLS and not url.lower().startswith("ldaps://"):
                conn.start_tls_s()
            conn.simple_bind_s(settings.bind_dn, settings.bind_password)
        except ldap.LDAPError as exc:
            error = _unreachable(url) if isinstance(exc, _NO_LDAP_ANSWER) else _ldap_error(exc, url=url)
            if uses_tls and settings.verify_tls and error.code == "server_unreachable":
                error = diagnose_tls(url, ca_file=settings.ca_file, timeout=settings.connect_timeout,
                                     start_tls=not url.lower().startswith("ldaps://")) or error
            raise error from None
        return conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.unbind_s()
            except ldap.LDAPError:
                pass
            self._conn = None

    def search(
        self, *, base_dn: str, filter: str, attributes: Sequence[str] | None = None,  # noqa: A002
        page_size: int = 500, scope: int = ldap.SCOPE_SUBTREE,
    ) -> Iterator[list[Entry]]:
        """Yield the entries under ``base_dn`` matching ``filter``, one list per page of ``page_size``.

        The whole result is read through the paged results control; a server that ignores it and
        stops at its size limit raises ``size_limit`` instead of returning a silently partial list
        (a partial list would look like deleted users to a sync). Referrals are skipped.
        """
        if self._conn is None:
            raise DirectoryError("not_connected", "The directory connection is not open.")
        control = SimplePagedResultsControl(True, size=page_size, cookie="")
        attrlist = list(attributes) if attributes is not None else None
        while True:
            try:
                msgid = self._conn.search_ext(base_dn, scope, filter, attrlist, serverctrls=[control])
                _rtype, rdata, _rmsgid, rctrls = self._conn.result3(msgid)
            except ldap.LDAPError as exc:
                raise _ldap_error(exc, url=self.url, base_dn=base_dn) from None
            page = [self._complete_ranges(Entry(dn=dn, attributes=attrs)) for dn, attrs in rdata if dn is not None]
            if page:
                yield page
            cookie = b""
            for response in rctrls:
                if response.controlType == SimplePagedResultsControl.controlType:
                    cookie = response.cookie
            if not cookie:
                return
            control.cookie = cookie

    def _complete_ranges(self, entry: Entry) -> Entry:
        """Read the rest of any attribute the server sent in ranges (Active Directory sends at most
        ``MaxValRange`` — 1,500 — values of ``member`` per read: ``member;range=0-1499``), one base
        search per further range, and return the entry with the whole attribute under its plain name.
        A range that cannot be read raises: a group with missing members would remove memberships."""
        ranged = [name for name in entry.attributes if ";range=" in name.lower()]
        if not ranged:
            return entry
        attributes = dict(entry.attributes)
        for name in ranged:
            parsed = parse_range(name)
            if parsed is None:
                continue
            attr, _start, end = parsed
            values = list(attributes.pop(name))
            while end is not None:
                try:
                    result = self._conn.search_s(entry.dn, ldap.SCOPE_BASE, "(objectClass=*)",
                                                 [f"{attr};range={end + 1}-*"])
                except ldap.LDAPError as exc:
                    raise _ldap_error(exc, url=self.url, base_dn=entry.dn) from None
                returned = result[0][1] if result and result[0][0] else {}
                key = next((k for k in returned if (parse_range(k) or ("",))[0].lower() == attr.lower()), None)
                if key is None:
                    raise DirectoryError(
                        "partial_result",
                        f"The directory did not return the rest of {attr} of {entry.dn} (values from {end + 1} "
                        "on). Check the sync account's read rights.",
                    )
                values += returned[key]
                end = parse_range(key)[2]
            attributes[attr] = attributes.get(attr, []) + values
        return Entry(dn=entry.dn, attributes=attributes)

    def read_root_dse(self, attributes: Sequence[str]) -> dict[str, list[bytes]]:
        """The server's root DSE (e.g. ``highestCommittedUSN`` on AD, ``contextCSN`` elsewhere)."""
        if self._conn is None:
            raise DirectoryError("not_connected", "The directory connection is not open.")
        try:
            result = self._conn.search_s("", ldap.SCOPE_BASE, "(objectClass=*)", list(attributes))
        except ldap.LDAPError as exc:
            raise _ldap_error(exc, url=self.url) from None
        return result[0][1] if result else {}
