"""Turn parsed rows into ``IdentityChange``s and validate them with a dry run of the identity service.

``build_changes`` is the front door's translation (one change per row, ``ref`` = line number); it
checks what only the file knows (duplicates inside the file, cell syntax, org names) and leaves every
directory rule to the service. ``validate_upload`` adds password rules and the dry run, and returns
the ``Preview``: counts, every error with line/column/message, and a field-level diff per update.
Read-only queries only; nothing is written.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import password_validation
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.contrib.auth.models import BaseUserManager, User
from django.core.exceptions import ValidationError
from django.db.models.functions import Lower

from accounts.access import Access
from accounts.bulk_upload.conf import preview_show
from accounts.bulk_upload.parser import ParsedUpload, Row, UploadError
from accounts.exceptions import IdentityError
from accounts.identity.orgs import OrgIndex
from accounts.identity.service import apply_identity_changes
from accounts.identity.types import UNSET, Actor, IdentityChange, Mode, Source, UserState
from accounts.models import Role

MembershipThrough = User.groups.through
PROVIDER_SOURCES = frozenset({Source.SCIM, Source.LDAP})
STATE_VALUES = {s.value: s for s in UserState}
# A usable-looking hash for dry runs: nothing is written, and no password is hashed on the request path.
# Service messages reworded for a file (the console form's wording names fields the file doesn't have).
UPLOAD_MESSAGES = {
    "org_required": "New user without an organization: fill the org column or choose the organization for new "
                    "users in the upload dialog.",
    "user_not_found": "No user with this username.",
}
DRY_RUN_HASH = "pbkdf2_sha256$1$dry-run$not-a-real-hash"


@dataclass(slots=True)
class CurrentUser:
    """What the preview needs to know about an existing user (read once per upload)."""

    pk: int
    username: str
    email: str
    first_name: str
    last_name: str
    notes: str
    state: str
    org_id: int | None
    source: str
    role_slugs: frozenset[str] = frozenset()  # shared empty value: 100k users, most without roles


def current_users(usernames: Iterable[str]) -> dict[str, CurrentUser]:
    """Existing users by lower-cased username (chunked queries; no query per row)."""
    names = sorted({n.lower() for n in usernames if n})
    out: dict[str, CurrentUser] = {}
    role_by_group = dict(Role.objects.values_list("group_id", "slug"))
    for start in range(0, len(names), 5000):
        chunk = names[start:start + 5000]
        rows = (User.objects.annotate(_lu=Lower("username")).filter(_lu__in=chunk)
                .values_list("pk", "username", "email", "first_name", "last_name", "profile__notes",
                             "profile__state", "profile__org_id", "profile__source"))
        by_pk = {}
        for pk, username, email, first, last, notes, state, org_id, source in rows:
            cur = CurrentUser(pk, username, email, first, last, notes or "", state or "", org_id, source or "")
            out[username.lower()] = cur
            by_pk[pk] = cur
        memberships = MembershipThrough.objects.filter(user_id__in=list(by_pk), group_id__in=list(role_by_group))
        for uid, gid in memberships.values_list("user_id", "group_id"):
            by_pk[uid].role_slugs = by_pk[uid].role_slugs | {role_by_group[gid]}
    return out


@dataclass(slots=True)
class RowOutcome:
    """The preview (or result) of one line: status create/update/unchanged/error (or created/updated...)."""

    line: int
    username: str = ""
    status: str = ""
    errors: list[UploadError] = field(default_factory=list)
    diff: list[tuple[str, Any, Any]] = field(default_factory=list)
    # For a row that creates a user: what it will hold (email, name, org, roles), for the preview.
    new: dict[str, Any] = field(default_factory=dict)

    def message(self) -> str:
        return "; ".join(f"{e.message}" + (f" (column {e.column})" if e.column else "") for e in self.errors)


@dataclass
class Built:
    """Changes for the service plus the outcomes decided without it (errors, provider no-ops)."""

    changes: list[IdentityChange] = field(default_factory=list)
    outcomes: dict[int, RowOutcome] = field(default_factory=dict)
    passwords: dict[int, tuple[str, str]] = field(default_factory=dict)  # line -> (username, raw)
    rows: dict[int, Row] = field(default_factory=dict)
    current: dict[str, CurrentUser] = field(default_factory=dict)


def _error(outcome: RowOutcome, column: str | None, code: str, message: str) -> None:
    outcome.errors.append(UploadError(outcome.line, column, code, message))
    outcome.status = "error"


class _RoleNames:
    """Role name or slug -> slug, for diffs (the service does the authoritative resolution)."""

    def __init__(self) -> None:
        self.by_key: dict[str, str] = {}
        self.name_of: dict[str, str] = {}
        for slug, name in Role.objects.values_list("slug", "name"):
            self.by_key[slug] = slug
            self.by_key[name.lower()] = slug
            self.name_of[slug] = name

    def slugs(self, refs: Iterable[str]) -> set[str] | None:
        out = set()
        for ref in refs:
            slug = self.by_key.get(ref) or self.by_key.get(ref.lower())
            if slug is None:
                return None
            out.add(slug)
        return out

    def names(self, slugs: Iterable[str]) -> str:
        return ";".join(sorted(self.name_of.get(s, s) for s in slugs))


class Visibility:
    """What an actor may see of the directory, so the file's answers reveal nothing beyond it.

    The console answers a 404 for users and orgs outside the viewer's scope; an upload must answer
    alike for those and for ones that do not exist (issue 7 §5), or the preview is an oracle
    ("You may not change users in Acme" vs "No organization named ..."). An org is visible when the
    actor may view the directory or manage users there; system actors see everything.
    """

    def __init__(self, actor: Actor | None):
        self.access = None
        if actor is not None and actor.enforce_scope and actor.user is not None:
            self.access = Access.of(actor.user)

    def org(self, org) -> bool:
        if self.access is None:
            return True
        return self.access.can("view_directory", org) or self.access.can("manage_users", org)

    def org_id(self, org_id: int | None, orgs: OrgIndex) -> bool:
        if self.access is None:
            return True
        org = orgs.get(org_id) if org_id else None
        if org is None:  # users without a profile: only directory-wide viewers see them
            return self.access.is_global("view_directory") or self.access.is_global("manage_users")
        return self.org(org)


def build_changes(
    rows: list[Row], *, operation: str, default_org_id: int | None, orgs: OrgIndex | None = None,
    password_hashes: dict[int, Any] | None = None, dry_run: bool = True, actor: Actor | None = None,
) -> Built:
    """One ``IdentityChange`` per valid row (``ref`` = line).

    ``password_hashes`` (apply time) maps line -> ``BulkUploadSecret``; at preview time passwords are
    collected in ``Built.passwords`` and the dry run gets a placeholder hash instead. ``actor`` limits
    what the rows may name to what the actor can see (``Visibility``); ``None`` sees everything.
    """
    orgs = orgs or OrgIndex()
    visibility = Visibility(actor)
    built = Built(rows={r.line: r for r in rows})
    built.current = current = current_users(r.cells.get("username", "") for r in rows)
    roles = _RoleNames()
    seen: dict[Any, int] = {}
    for row in rows:
        cells = row.cells
        username = cells.get("username", "")
        outcome = RowOutcome(line=row.line, username=username)
        built.outcomes[row.line] = outcome
        if not username:
            _error(outcome, "username", "username_required", "Enter a username.")
            continue
        key: Any = username.lower()
        if operation in ("add-roles", "remove-roles"):
            key = (key, cells.get("role", "").lower())
        if key in seen:
            what = "username and role" if isinstance(key, tuple) else "username"
            _error(outcome, "username", "username_duplicate_in_file",
                   f"The {what} {username!r} already appears on line {seen[key]} (usernames ignore case).")
            continue
        seen[key] = row.line
        cur = current.get(username.lower())
        kwargs: dict[str, Any] = {"ref": row.line}
        if cur is not None:
            kwargs["user_id"] = cur.pk  # match by id: a case-only difference never renames a user
        else:
            kwargs["username"] = username

        if operation == "upsert":
            # A row for a user that does not exist yet creates; if someone creates the user between
            # preview and apply, the row is refused rather than applied as an update.
            kwargs["mode"] = Mode.CREATE_OR_UPDATE if cur is not None else Mode.CREATE
            if cur is None and not cells.get("password"):
                # Unusable password (-> invited), made here: Django's make_password(None) draws 40
                # characters one by one from SystemRandom and was a third of the upload's time.
                kwargs["password_hash"] = UNUSABLE_PASSWORD_PREFIX + secrets.token_urlsafe(30)
            for name in ("email", "first_name", "last_name", "notes"):
                if name in cells:
                    kwargs[name] = cells[name]
            if cells.get("org"):
                org_id = _lookup_org(orgs, cells["org"], outcome, visibility)
                if org_id is not None:
                    kwargs["org_id"] = org_id
            elif cur is None and default_org_id:
                kwargs["org_id"] = default_org_id
            if cells.get("roles"):
                kwargs["roles"] = frozenset(r.strip() for r in cells["roles"].split(";") if r.strip())
            if cells.get("state"):
                state = cells["state"].lower()
                if state not in STATE_VALUES:
                    _error(outcome, "state", "state_invalid",
                           f"Unknown state {cells['state']!r}: use active, blocked or deactivated.")
                elif state == UserState.INVITED and cur is not None and cur.state != UserState.INVITED:
                    _error(outcome, "state", "state_invalid",
                           "An upload cannot put an existing user back to invited.")
                else:
                    kwargs["state"] = STATE_VALUES[state]
            if cells.get("password"):
                secret = (password_hashes or {}).get(row.line)
                if dry_run:
                    built.passwords[row.line] = (username, cells["password"])
                    kwargs["password_hash"] = DRY_RUN_HASH
                elif secret is None or secret.state == "pending":
                    _error(outcome, "password", "password_not_hashed", "The password was not hashed; upload again.")
                elif secret.state == "invalid":
                    _error(outcome, "password", "password_invalid", secret.message)
                elif secret.state == "hashed":
                    kwargs["password_hash"] = secret.password_hash
                # "same": the password is already the current one; leave it alone.
        elif operation == "move":
            kwargs["mode"] = Mode.UPDATE
            if not cells.get("org"):
                _error(outcome, "org", "org_required", "Enter the organization to move the user to.")
            else:
                org_id = _lookup_org(orgs, cells["org"], outcome, visibility)
                if org_id is not None:
                    kwargs["org_id"] = org_id
        elif operation == "deactivate":
            kwargs.update(mode=Mode.UPDATE, state=UserState.DEACTIVATED)
        elif operation == "reactivate":
            kwargs["mode"] = Mode.UPDATE
            # Reactivate undoes a deactivation only; it never unblocks a blocked user.
            if cur is None or cur.state == UserState.DEACTIVATED:
                kwargs["state"] = UserState.ACTIVE
        elif operation in ("add-roles", "remove-roles"):
            kwargs["mode"] = Mode.UPDATE
            if not cells.get("role"):
                _error(outcome, "role", "role_required", "Enter a role name.")
            else:
                kwargs["roles_add" if operation == "add-roles" else "roles_remove"] = frozenset({cells["role"]})
        if outcome.errors:
            continue
        if cur is not None and not visibility.org_id(cur.org_id, orgs):
            # Answer exactly as for a username that does not exist: an update-only row is "no such
            # user"; a create-or-update row cannot create a taken username (as the console form says).
            if operation == "upsert":
                _error(outcome, "username", "username_taken", f"A user named {username!r} already exists.")
            else:
                _error(outcome, "username", "user_not_found", UPLOAD_MESSAGES["user_not_found"])
            continue
        change = IdentityChange(**kwargs)
        if cur is not None and cur.source in PROVIDER_SOURCES and not _would_change(change, cur, roles):
            # Uploads may not touch provider-owned users, but a row that changes nothing is no change:
            # this keeps export -> upload a no-op for SCIM/LDAP users too.
            outcome.status = "unchanged"
            continue
        built.changes.append(change)
    return built


def _lookup_org(orgs: OrgIndex, ref: str, outcome: RowOutcome, visibility: Visibility) -> int | None:
    try:
        return orgs.lookup(ref, visible=visibility.org).pk
    except IdentityError as exc:
        _error(outcome, "org", exc.code, exc.message)
        return None


def _would_change(change: IdentityChange, cur: CurrentUser, roles: _RoleNames) -> bool:
    for name in ("email", "first_name", "last_name", "notes"):
        value = getattr(change, name)
        if value is UNSET:
            continue
        if name == "email":
            value = BaseUserManager.normalize_email(value) if value else ""
        if value != getattr(cur, name):
            return True
    if change.state is not UNSET and change.state != cur.state:
        return True
    if change.org_id is not UNSET and change.org_id != cur.org_id:
        return True
    if change.password_hash is not UNSET or change.password is not UNSET:
        return True
    if change.roles is not UNSET and roles.slugs(change.roles) != cur.role_slugs:
        return True
    if change.roles_add and not (roles.slugs(change.roles_add) or {None}) <= cur.role_slugs:
        return True
    if change.roles_remove and (roles.slugs(change.roles_remove) or {None}) & (cur.role_slugs | {None}):
        return True
    return False


def check_passwords(built: Built) -> None:
    """Password rules that need no hashing (length, classes, similarity...) for every password row.

    The history rule (needs the user's old hashes) and "same as now" are checked by the hashing tasks.
    """
    for line, (username, raw) in list(built.passwords.items()):
        row = built.rows[line]
        stub = User(username=username, email=row.cells.get("email", ""), first_name=row.cells.get("first_name", ""),
                    last_name=row.cells.get("last_name", ""))
        try:
            password_validation.validate_password(raw, stub)
        except ValidationError as exc:
            outcome = built.outcomes[line]
            _error(outcome, "password", "password_invalid", " ".join(exc.messages))
            built.passwords.pop(line)
    bad = {line for line, o in built.outcomes.items() if o.status == "error"}
    built.changes = [c for c in built.changes if c.ref not in bad]


@dataclass
class Preview:
    """Outcome of validation: per-line outcomes (parse errors included) and counts."""

    outcomes: dict[int, RowOutcome]
    passwords: dict[int, tuple[str, str]]

    def counts(self) -> dict[str, int]:
        out = {"create": 0, "update": 0, "unchanged": 0, "error": 0}
        for outcome in self.outcomes.values():
            out[outcome.status] = out.get(outcome.status, 0) + 1
        return out

    def error_lines(self) -> list[int]:
        return sorted(line for line, o in self.outcomes.items() if o.status == "error")

    def as_json(self) -> dict:
        """What is stored with the upload (no passwords)."""
        ordered = [self.outcomes[k] for k in sorted(self.outcomes)]
        return {
            "counts": self.counts(),
            "errors": [e.as_dict() for o in ordered for e in o.errors],
            "diffs": [{"line": o.line, "username": o.username, "changes": [list(d) for d in o.diff]}
                      for o in ordered if o.diff],
            # The preview page lists the first rows that create users (all are in the CSV report).
            "creates": [{"line": o.line, "username": o.username, **o.new}
                        for o in ordered if o.status == "create"][:preview_show()],
            "status": {str(o.line): o.status for o in ordered},
        }


def add_service_error(outcome: RowOutcome, error: IdentityError, columns: list[str]) -> None:
    """A refusal of the identity service as an error of the row, worded for a file."""
    _error(outcome, service_field_to_column(error.field, columns), error.code,
           UPLOAD_MESSAGES.get(error.code, error.message))


def service_field_to_column(field_name: str | None, columns: list[str]) -> str | None:
    if field_name is None:
        return None
    if field_name == "roles" and "role" in columns:
        return "role"
    return field_name if field_name in columns else None


def validate_upload(parsed: ParsedUpload, *, actor: Actor, default_org_id: int | None) -> Preview:
    """Validate every row (parse errors, file rules, password rules, service dry run) into a ``Preview``."""
    outcomes: dict[int, RowOutcome] = {}
    by_line_errors: dict[int, list[UploadError]] = defaultdict(list)
    for error in parsed.errors:
        by_line_errors[error.line].append(error)
    built = build_changes(parsed.valid_rows(), operation=parsed.operation, default_org_id=default_org_id,
                          actor=actor)
    check_passwords(built)
    orgs = OrgIndex()
    roles = _RoleNames()
    result = apply_identity_changes(changes=built.changes, actor=actor, dry_run=True)
    by_ref = {c.ref: c for c in built.changes}
    outcomes.update(built.outcomes)
    for line, errors in by_line_errors.items():
        outcome = outcomes.setdefault(line, RowOutcome(line=line))
        outcome.errors[:0] = errors
        outcome.status = "error"
    for res in result.results:
        outcome = outcomes[res.ref]
        if res.status == "refused":
            add_service_error(outcome, res.error, parsed.columns)
            built.passwords.pop(res.ref, None)
            continue
        outcome.status = {"created": "create", "updated": "update", "unchanged": "unchanged"}[res.status]
        if res.status == "created":
            outcome.new = _created(by_ref.get(res.ref), orgs, default_org_id,
                                   has_password=res.ref in built.passwords)
        if res.status == "updated":
            cur = built.current.get(outcome.username.lower())
            outcome.diff = _diff(res.changed_fields, cur, by_ref.get(res.ref), orgs, roles)
    return Preview(outcomes=outcomes, passwords=built.passwords)


def _created(change: IdentityChange | None, orgs: OrgIndex, default_org_id: int | None, *,
             has_password: bool) -> dict[str, Any]:
    """What a new user from this row will hold, as an admin reads it."""
    if change is None:
        return {}
    org_id = change.org_id if change.org_id is not UNSET and change.org_id else default_org_id
    org = orgs.by_id.get(org_id) if org_id else None
    roles = sorted(change.roles) if change.roles is not UNSET and change.roles else []
    return {
        "email": change.email if change.email is not UNSET else "",
        "name": " ".join(v for v in (change.first_name, change.last_name) if v and v is not UNSET),
        "org": orgs.full_name(org) if org is not None else "",
        "roles": ", ".join(roles) if roles else "org default roles",
        "password": "set" if has_password or change.password is not UNSET or (
            change.password_hash is not UNSET and not str(change.password_hash).startswith(UNUSABLE_PASSWORD_PREFIX))
        else "invited",
    }


def _diff(fields: list[str], cur: CurrentUser | None, change: IdentityChange | None, orgs: OrgIndex,
          roles: _RoleNames) -> list[tuple[str, Any, Any]]:
    """(field, old, new) for each field the service says changes; values as an admin reads them."""
    if cur is None or change is None:
        return [(f, None, None) for f in fields]
    out = []
    for name in fields:
        if name in ("email", "first_name", "last_name", "notes"):
            new = getattr(change, name) or ""
            if name == "email" and new:
                new = BaseUserManager.normalize_email(new)
            out.append((name, getattr(cur, name), new))
        elif name == "state":
            out.append((name, cur.state, str(change.state)))
        elif name == "org":
            old = orgs.get(cur.org_id) if cur.org_id else None
            new = orgs.get(change.org_id)
            out.append((name, orgs.full_name(old) if old else "", orgs.full_name(new) if new else ""))
        elif name == "roles":
            target = set(cur.role_slugs)
            if change.roles is not UNSET:
                target = roles.slugs(change.roles) or set()
            target |= roles.slugs(change.roles_add) or set()
            target -= roles.slugs(change.roles_remove) or set()
            out.append((name, roles.names(cur.role_slugs), roles.names(target)))
        elif name == "password":
            out.append((name, "", "(set from the file unless it is already the current one)"))
        else:
            out.append((name, None, None))
    return out
