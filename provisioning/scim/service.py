"""SCIM writes: every request becomes what the provisioning core and the identity service apply.

Users: the resulting SCIM document (after POST, PUT or PATCH) becomes one ``SourceUser`` and goes
through ``provisioning.inbound.apply_source_users`` with the provider as actor (profile fields,
rules for org / roles / active, the lifecycle's block-then-deactivate). DELETE is ``active=false``
through the same path; the user row stays (audit, ownership) and the SCIM resource answers 404.

Groups: ``accounts.identity.groups`` (create, rename, delete) and ``accounts.identity.memberships``
(members added and removed as the *difference* between the old and new member lists, so two
concurrent PATCHes that each add a member both keep theirs). Members whose groups changed are
re-evaluated by the rules (group membership is an input of the mapping rules).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.exceptions import IdentityError, MappingError, PolicyDenied
from accounts.identity import groups as group_service
from accounts.identity import links, memberships
from accounts.identity.types import UNSET
from accounts.models import DirectoryGroup
from provisioning.adoption import AdoptionCandidate, apply_adoption, journal_adoption_refusal, plan_adoption
from provisioning.inbound import SourceUser, apply_source_users
from provisioning.lifecycle import source_actor
from provisioning.models import JournalEntry, ProvisioningRun, Source
from provisioning.resolve import link_raw, stored_record
from provisioning.rules import RuleSet, SourceRecord
from provisioning.scim import reads
from provisioning.scim import resources as res
from provisioning.scim.errors import CONFLICT_DETAILS, ScimError, not_found
from provisioning.scim.filters import Compare
from provisioning.scim.models import ScimResource, new_scim_id
from provisioning.scim.patch import apply_patch, parse_operations

SCIM_RUN = ProvisioningRun.Kind.SCIM_REQUEST


def _identity_errors(func):
    """Turn a domain error raised by a service into its SCIM error."""

    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except IdentityError as error:
            raise ScimError.from_identity(error) from None

    wrapper.__doc__ = func.__doc__
    wrapper.__name__ = func.__name__
    return wrapper


def _check_mutability(body: Any, read_only: tuple[str, ...]) -> None:
    """An operation whose explicit ``path`` names a read-only attribute is ``mutability`` (RFC 7644
    §3.5.2); read-only attributes inside a path-less value object are ignored instead (Okta's rename
    repeats the ``id``)."""
    operations = next((v for k, v in body.items() if str(k).lower() == "operations"), None) \
        if isinstance(body, dict) else None
    for raw in operations if isinstance(operations, list) else []:
        path = next((v for k, v in raw.items() if str(k).lower() == "path"), None) if isinstance(raw, dict) else None
        if isinstance(path, str):
            attr = path.strip().split("[", 1)[0].rsplit(":", 1)[-1].split(".", 1)[0].lower()
            if attr in read_only:
                raise ScimError(400, f"{path[:100]} is read-only.", "mutability")


# --- users ----------------------------------------------------------------------------------------


def _group_refs(source: Source, user_ids: list[int]) -> dict[int, list[str]]:
    """Per user, the display names and SCIM ids of the provider's groups they are in."""
    return reads.group_refs(source, user_ids)


def user_record(doc: dict, groups: list[str]) -> SourceRecord:
    """What the mapping rules read from a User document: flat attributes, groups, the active flag."""
    attributes: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, str):
            attributes[key] = value
        elif key == "name" and isinstance(value, dict):
            attributes.update({f"name.{k}": v for k, v in value.items()})
        elif isinstance(value, list):
            attributes[key] = [item.get("value") for item in value if isinstance(item, dict)]
        elif key in res.EXTENSIONS and isinstance(value, dict):
            for name, item in value.items():
                text = item.get("value") if isinstance(item, dict) else item
                attributes[name] = text
                attributes[f"{key}:{name}"] = text
    return SourceRecord.build(attributes=attributes, groups=groups, active=doc.get("active", True))


def _primary_email(doc: dict) -> Any:
    if "emails" not in doc:
        return UNSET
    emails = [e for e in doc["emails"] if e.get("value")]
    chosen = (next((e for e in emails if e.get("primary")), None)
              or next((e for e in emails if (e.get("type") or "").lower() == "work"), None)
              or (emails[0] if emails else None))
    return chosen["value"] if chosen else ""


def _source_user(scim_id: str, doc: dict, groups: list[str], *, profile: bool = True) -> SourceUser:
    """``profile=False``: the record only (rules input); idm's names and email are left as they are."""
    name = doc.get("name") if profile else None
    return SourceUser(
        external_id=scim_id, record=user_record(doc, groups), username=doc["userName"],
        email=_primary_email(doc) if profile else UNSET,
        first_name=name.get("givenName", UNSET) if name is not None else UNSET,
        last_name=name.get("familyName", UNSET) if name is not None else UNSET,
    )


# Journal subjects whose refusal fails the request: the identity change itself, and the block or
# unblock that active=false / DELETE / active=true asks for. A provider told "204" for a DELETE the
# service refused would believe the user deprovisioned (review F4): it gets the refusal instead.
_REFUSAL_FAILS_REQUEST = ("change", "state")


def _apply_users(source: Source, users: list[SourceUser], request_id: str) -> ProvisioningRun:
    """Apply through the core; the first refused identity change or state change becomes the
    request's error (the caller's transaction then rolls the whole request back)."""
    run = apply_source_users(source=source, users=users, kind=SCIM_RUN, request_id=request_id)
    if not run.counts.get("refused"):
        return run
    refused = (JournalEntry.objects.filter(run=run, result=JournalEntry.Result.REFUSED,
                                           subject__in=_REFUSAL_FAILS_REQUEST)
               .order_by("id").values_list("code", "message").first())
    if refused:
        raise ScimError.from_refusal(*refused)
    return run


def _stored(doc: dict) -> dict:
    """What is kept in ``ScimResource.document`` (externalId and active have columns)."""
    return {k: v for k, v in doc.items() if k not in ("externalId", "active")}


def user_create(*, source: Source, body: Any, request_id: str = "") -> ScimResource:
    """POST /Users."""
    doc = res.clean_user(body)
    scim_id = new_scim_id()
    try:
        with transaction.atomic():
            claimed = _claim_existing(source, doc, scim_id, request_id)
    except _AdoptionRefused as refused:
        # Rolled back; the reason goes to the journal and audit only. The provider gets the answer any
        # taken userName gets, so refusals do not tell it who is an admin or blocked (review N4).
        journal_adoption_refusal(source=source, actor=_actor(source, request_id), candidate=refused.candidate,
                                 user_id=refused.user_id, code=refused.code, message=refused.message)
        raise ScimError(409, CONFLICT_DETAILS["username_taken"], "uniqueness") from None
    if claimed is not None:
        return claimed
    with transaction.atomic():
        _apply_users(source, [_source_user(scim_id, doc, [])], request_id)
        user = User.objects.get(external_identities__source=source.kind, external_identities__provider=source.slug,
                                external_identities__external_id=scim_id)
        resource = ScimResource.objects.create(
            source=source, kind=ScimResource.Kind.USER, scim_id=scim_id, user=user,
            external_id=doc.get("externalId") or "", active=doc.get("active", True), document=_stored(doc))
    resource.user = user
    return resource


class _AdoptionRefused(Exception):
    """A POST matched a user the provider may not adopt (the reason is for the journal, not the provider)."""

    def __init__(self, candidate: AdoptionCandidate, user_id: int, code: str, message: str):
        super().__init__(message)
        self.candidate, self.user_id, self.code, self.message = candidate, user_id, code, message


def _claim_existing(source: Source, doc: dict, scim_id: str, request_id: str) -> ScimResource | None:
    """POST of a userName idm already has (issue 9): the provider's own user it DELETEd comes back
    (same idm user and SCIM id, ``active`` through the lifecycle: unblocked or reactivated); a user
    nobody owns is adopted when the admin enabled adoption for this provider (never break-glass
    users, Cloud Admins or another source's users: ``provisioning.adoption``). None: create as usual
    (a user that is neither answers 409 ``uniqueness`` from the identity service). Runs inside the
    POST's transaction."""
    # lower() = lower(): the form of the unique index on auth_user (``iexact`` is UPPER() on PostgreSQL
    # and would scan every user on each POST).
    user = (User.objects.annotate(username_lower=Lower("username")).filter(username_lower=doc["userName"].lower())
            .only("pk").first())
    if user is None:
        return None
    deleted = (ScimResource.objects.select_for_update(of=("self",)).select_related("user")
               .filter(source=source, kind=ScimResource.Kind.USER, user=user, deleted_at__isnull=False).first())
    if deleted is not None:
        deleted.deleted_at = None
        doc.setdefault("active", True)
        return _user_update(source, deleted, doc, request_id)
    if not source.adoption_enabled or ScimResource.objects.filter(user=user).exists():
        return None
    candidate = AdoptionCandidate(external_id=scim_id, username=doc["userName"],
                                  email=_primary_email(doc) if "emails" in doc else "")
    (decision,) = plan_adoption(source=source, candidates=[candidate])
    if decision.user_id != user.pk:
        return None
    if not decision.adopt:
        raise _AdoptionRefused(candidate, user.pk, decision.code, decision.message)
    # The provider is the actor: the admin's consent is the source's adoption setting, bounded by the
    # identity service's rules for provider adoption (``check_adoption``).
    run = apply_adoption(source=source, candidates=[candidate], actor=_actor(source, request_id))
    if run.counts.get("adopted") != 1:
        code, message = (JournalEntry.objects.filter(run=run, result=JournalEntry.Result.REFUSED)
                         .order_by("id").values_list("code", "message").first() or ("adoption_refused", ""))
        raise _AdoptionRefused(candidate, user.pk, code, message)
    resource = ScimResource.objects.create(source=source, kind=ScimResource.Kind.USER, scim_id=scim_id,
                                           user_id=user.pk, active=doc.get("active", True), version=0)
    resource = ScimResource.objects.select_related("user").get(pk=resource.pk)
    try:
        return _user_update(source, resource, doc, request_id)
    except PolicyDenied as error:
        raise _AdoptionRefused(candidate, user.pk, error.code, error.message) from None
    except ScimError as error:
        if error.scim_type != "mutability":  # a bad value is the provider's to fix, not a refusal
            raise
        # A guard refused the adopted user's update (e.g. the sign-in guard on an admin's email).
        raise _AdoptionRefused(candidate, user.pk, "adoption_update_refused", error.detail) from None


def _user_update(source: Source, resource: ScimResource, doc: dict, request_id: str) -> ScimResource:
    groups = _group_refs(source, [resource.user_id])[resource.user_id]
    with transaction.atomic():
        _apply_users(source, [_source_user(resource.scim_id, doc, groups)], request_id)
        resource.external_id = doc.get("externalId") or ""
        resource.active = doc.get("active", resource.active)
        resource.document = _stored(doc)
        resource.version += 1
        resource.save(update_fields=["external_id", "active", "document", "version", "updated_at", "deleted_at"])
    resource.user.refresh_from_db()
    return resource


def user_replace(*, source: Source, resource: ScimResource, body: Any, request_id: str = "") -> ScimResource:
    """PUT /Users/{id}: the document is replaced; idm fields the body leaves out stay as they are, and
    ``active`` stays what the provider last said when the body does not give it."""
    doc = res.clean_user(body)
    doc.setdefault("active", resource.active)
    return _user_update(source, resource, doc, request_id)


def user_patch(*, source: Source, resource: ScimResource, body: Any, base: str, request_id: str = "") -> ScimResource:
    """PATCH /Users/{id}: RFC 7644 §3.5.2 on the current document, then the same path as PUT."""
    operations = parse_operations(body)
    _check_mutability(body, ("id", "meta", "groups"))
    current = res.user_document(resource, base)
    patched = apply_patch(current, operations, res.USER_SCHEMA)
    for read_only in ("id", "meta", "schemas", "groups"):
        patched.pop(read_only, None)
    return _user_update(source, resource, res.clean_user(patched), request_id)


def user_delete(*, source: Source, resource: ScimResource, request_id: str = "") -> None:
    """DELETE /Users/{id}: the lifecycle's block-then-deactivate; the row stays, SCIM shows 404."""
    doc = dict(resource.document, active=False)
    if resource.external_id:
        doc["externalId"] = resource.external_id
    doc["userName"] = resource.user.username
    groups = _group_refs(source, [resource.user_id])[resource.user_id]
    with transaction.atomic():
        _apply_users(source, [_source_user(resource.scim_id, doc, groups, profile=False)], request_id)
        resource.active = False
        resource.deleted_at = timezone.now()
        resource.version += 1
        resource.save(update_fields=["active", "deleted_at", "version", "updated_at"])


def refresh_rules(source: Source, user_ids: list[int], request_id: str = "") -> None:
    """Re-evaluate the rules for users whose group memberships changed (see ``_refresh_records``)."""
    if user_ids:
        _refresh_records(source, reads.user_rows(source, user_ids=user_ids), request_id)


def _refresh_records(source: Source, rows: list[reads.UserRow], request_id: str) -> None:
    """Give the rules the new group memberships of these users.

    A user whose new record gives the rules nothing new (``RuleSet.relevant`` equals the stored
    record's: no rule reads the groups that changed) keeps every rule outcome, so only the stored
    record is refreshed (``accounts.identity.links.link_records_refresh``, as the writer would) and
    no run is started: a one-member PATCH of a 20k-member group stays a few queries. The others go
    through ``apply_source_users`` (run, journal, the rules' org / roles / active decisions).

    The users' links are locked before their groups are read: two PATCHes of different groups that
    add one user at once would otherwise each read the groups without the other's uncommitted
    membership, and the later record would drop the earlier group. Locked, the second waits for the
    first's commit and then reads both memberships and the record the first stored.
    """
    if not rows:
        return
    user_ids = [row.user_id for row in rows]
    stored = reads.stored_records(source, user_ids, lock=True)
    refs = reads.group_refs(source, user_ids)
    users = {}
    for row in rows:
        doc = dict(row.document, active=row.active, userName=row.username)
        if row.external_id:
            doc["externalId"] = row.external_id
        users[row.user_id] = _source_user(row.scim_id, doc, refs[row.user_id], profile=False)
    ruleset, policy = RuleSet.of(reads.rule_set(source)), source.org_policy()
    same = {uid: link_raw(user.record) for uid, user in users.items()
            if _rules_see_no_change(ruleset, policy, stored.get(uid), user.record)}
    if same:
        links.link_records_refresh(source=source.kind, provider=source.slug, raws=same)
    rest = [user for uid, user in users.items() if uid not in same]
    if rest:
        apply_source_users(source=source, users=rest, kind=SCIM_RUN, request_id=request_id)


def _rules_see_no_change(ruleset: RuleSet, policy, raw: dict | None, record: SourceRecord) -> bool:
    """Whether the rules give ``record`` the outcome they gave the stored record (False when none
    is stored or it cannot be read: then the user is evaluated in full)."""
    try:
        old = stored_record(raw)
    except MappingError:
        return False
    return old is not None and ruleset.relevant(old, policy) == ruleset.relevant(record, policy)


# --- groups ---------------------------------------------------------------------------------------


def _member_user_ids(source: Source, scim_ids: list[str], *, strict: bool = True) -> list[int]:
    """User ids of the provider's users with these SCIM ids; an unknown id is ``invalidValue``
    (``strict``) or skipped (removing a member that is not there changes nothing)."""
    if not scim_ids:
        return []
    found = dict(ScimResource.objects.filter(source=source, kind=ScimResource.Kind.USER, deleted_at__isnull=True,
                                             scim_id__in=scim_ids).values_list("scim_id", "user_id"))
    missing = [sid for sid in scim_ids if sid not in found]
    if not strict:
        return [found[sid] for sid in scim_ids if sid in found]
    if missing:
        raise ScimError(400, f"No user with id {missing[0][:64]} (members must be this provider's users).",
                        "invalidValue")
    return [found[sid] for sid in scim_ids]


def group_members(resource: ScimResource) -> list[tuple[str, str]]:
    """(SCIM id, userName) of the group's members that are this provider's users, in a stable order."""
    return list(ScimResource.objects.filter(source=resource.source_id, kind=ScimResource.Kind.USER,
                                            deleted_at__isnull=True, user__groups=resource.group.group_id)
                .order_by("id").values_list("scim_id", "user__username"))


@_identity_errors
def group_create(*, source: Source, body: Any, request_id: str = "") -> ScimResource:
    """POST /Groups."""
    doc = res.clean_group(body)
    actor = _actor(source, request_id)
    with transaction.atomic():
        member_ids = _member_user_ids(source, doc.get("members", []))
        dgroup = group_service.group_create(actor=actor, display_name=doc["displayName"],
                                            external_id=doc.get("externalId", ""))
        resource = ScimResource.objects.create(source=source, kind=ScimResource.Kind.GROUP, group=dgroup,
                                               external_id=dgroup.external_id)
        if member_ids:
            memberships.group_members_add(actor=actor, dgroup=dgroup, user_ids=member_ids)
    refresh_rules(source, member_ids, request_id)
    return resource


def _actor(source: Source, request_id: str):
    from dataclasses import replace
    return replace(source_actor(source), request_id=request_id)


def _group_update(source: Source, resource: ScimResource, doc: dict, *, old_members: list[str] | None,
                  request_id: str) -> ScimResource:
    """Rename and change members by the difference between ``old_members`` and ``doc['members']``
    (``old_members`` None: replace the whole membership)."""
    actor = _actor(source, request_id)
    dgroup: DirectoryGroup = resource.group
    changed: list[int] = []
    with transaction.atomic():
        group_service.group_update(actor=actor, dgroup=dgroup, display_name=doc["displayName"],
                                   external_id=doc.get("externalId", dgroup.external_id))
        if "members" in doc or old_members is None:
            new = doc.get("members", [])
            if old_members is None:
                result = memberships.group_members_replace(actor=actor, dgroup=dgroup,
                                                           user_ids=_member_user_ids(source, new))
            else:
                added = [sid for sid in new if sid not in set(old_members)]
                removed = [sid for sid in old_members if sid not in set(new)]
                result = memberships.group_members_add(actor=actor, dgroup=dgroup,
                                                       user_ids=_member_user_ids(source, added))
                result.removed = memberships.group_members_remove(
                    actor=actor, dgroup=dgroup, user_ids=_member_user_ids(source, removed)).removed
            changed = result.added + result.removed
        resource.external_id = dgroup.external_id
        resource.version += 1
        resource.save(update_fields=["external_id", "version", "updated_at"])
    refresh_rules(source, changed, request_id)
    return resource


@_identity_errors
def group_replace(*, source: Source, resource: ScimResource, body: Any, request_id: str = "") -> ScimResource:
    """PUT /Groups/{id}: name, external id and (when given) the whole member list."""
    doc = res.clean_group(body)
    return _group_update(source, resource, doc, old_members=None if "members" in doc else [],
                         request_id=request_id)


def _member_value(node: Any) -> str | None:
    """``X`` of a ``members[value eq "X"]`` filter, else None."""
    if isinstance(node, Compare) and node.op == "eq" and node.path.key == "value" and isinstance(node.value, str):
        return node.value
    return None


def _member_delta(operations: list) -> tuple[list[str], list[str]] | None:
    """For a PATCH made only of member adds and removes (the shapes Okta and Entra send when a
    group's membership changes), the SCIM ids to add and to remove, in request order; None for
    anything else (rename, replace of all members, remove without a target list)."""
    add: dict[str, None] = {}
    remove: dict[str, None] = {}
    for operation in operations:
        path = operation.path
        if path.path.key != "members" or path.sub is not None or operation.op == "replace":
            return None
        if path.filter is not None:
            value = _member_value(path.filter)
            if operation.op != "remove" or value is None:
                return None
            ids = [value]
        else:
            if operation.op == "remove" and operation.value is None:
                return None
            values = operation.value if isinstance(operation.value, list) else [operation.value]
            ids = res.member_ids(values)
        for sid in ids:
            (add if operation.op == "add" else remove)[sid] = None
            (remove if operation.op == "add" else add).pop(sid, None)
    return list(add), list(remove)


@_identity_errors
def group_patch(*, source: Source, resource: ScimResource, body: Any, base: str,
                request_id: str = "") -> ScimResource:
    """PATCH /Groups/{id}: member adds and removes are applied directly (the cost does not grow with
    the group); anything else is applied to the current document and members change by the difference."""
    operations = parse_operations(body)
    _check_mutability(body, ("id", "meta"))
    delta = _member_delta(operations)
    if delta is not None:
        return _group_members_delta(source, resource, *delta, request_id=request_id)
    old_members = [sid for sid, _ in group_members(resource)]
    current = res.group_document(resource, base, [(sid, "") for sid in old_members])
    current["members"] = [{"value": sid} for sid in old_members]
    patched = apply_patch(current, operations, res.GROUP_SCHEMA)
    doc = res.clean_group({k: v for k, v in patched.items() if k.lower() not in ("id", "meta", "schemas")})
    doc.setdefault("members", [])
    return _group_update(source, resource, doc, old_members=old_members, request_id=request_id)


def member_delta(body: Any) -> tuple[list[str], list[str]] | None:
    """The SCIM ids a PATCH made only of member adds and removes adds and removes (see
    ``_member_delta``); None for any other PATCH, including one that is not valid (the general path
    reports its error)."""
    try:
        operations = parse_operations(body)
        _check_mutability(body, ("id", "meta"))
    except (ScimError, IdentityError):
        return None
    return _member_delta(operations)


@_identity_errors
def group_members_patch(*, source: Source, resource: ScimResource, add: list[str], remove: list[str],
                        versions: frozenset[int] | None = None, request_id: str = "") -> ScimResource:
    """PATCH /Groups/{id} made only of member adds and removes (``member_delta``), called inside a
    transaction with ``resource`` read but not locked.

    The group's row is locked by the version bump, the last statement before the commit, so
    concurrent PATCHes of one group queue only for each other's commit, not for each other's reads,
    rule checks and audit writes (issue 9: a 20k-member group's PATCHes waited ~200 ms for the lock).
    No member is lost: each add and remove is its own membership row, inserted or deleted on its own.
    ``versions``: the If-Match versions (None: any); the bump matches only those, and a miss is 412
    with everything rolled back. A group deleted meanwhile is 404."""
    return _group_members_delta(source, resource, add, remove, request_id=request_id, versions=versions)


def _group_members_delta(source: Source, resource: ScimResource, add: list[str], remove: list[str], *,
                         request_id: str, versions: frozenset[int] | None = None) -> ScimResource:
    actor = _actor(source, request_id)
    # One read for the named members: their user ids, and what the rule refresh needs afterwards
    # (membership changes do not touch the SCIM documents).
    rows = {row.scim_id: row for row in reads.user_rows(source, scim_ids=[*add, *remove])}
    missing = [sid for sid in add if sid not in rows]
    if missing:
        raise ScimError(400, f"No user with id {missing[0][:64]} (members must be this provider's users).",
                        "invalidValue")
    # No savepoint: an error here fails the whole request anyway, and each savepoint is a round trip.
    with transaction.atomic(savepoint=False):
        added = memberships.group_members_add(actor=actor, dgroup=resource.group,
                                              user_ids=[rows[sid].user_id for sid in add]).added
        removed = memberships.group_members_remove(actor=actor, dgroup=resource.group,
                                                   user_ids=[rows[sid].user_id for sid in remove if sid in rows]).removed
        changed = set(added) | set(removed)
        _refresh_records(source, [row for row in rows.values() if row.user_id in changed], request_id)
        _bump_version(resource, versions)
    return resource


def _bump_version(resource: ScimResource, versions: frozenset[int] | None) -> None:
    """``version += 1`` in the database (takes the row lock until the commit); 412 when the stored
    version is not one of ``versions``, 404 when the resource is gone.

    One statement that returns the new version (``UPDATE ... RETURNING``): every round trip after
    it is time the next PATCH of the group waits."""
    now = timezone.now()
    updated_at = ScimResource._meta.get_field("updated_at").get_db_prep_save(now, connection)
    # The conditions on the row itself, not in a subquery: PostgreSQL re-checks them on the newest
    # version of the row after waiting for a concurrent bump (READ COMMITTED), so If-Match stays exact.
    sql = (f"UPDATE {connection.ops.quote_name(ScimResource._meta.db_table)} "  # noqa: S608 - the model's own table
           "SET version = version + 1, updated_at = %s WHERE id = %s AND deleted_at IS NULL")
    params: list = [updated_at, resource.pk]
    if versions is not None:
        sql += f" AND version IN ({', '.join(['%s'] * len(versions))})" if versions else " AND FALSE"
        params += sorted(versions)
    with connection.cursor() as cursor:
        cursor.execute(sql + " RETURNING version", params)
        row = cursor.fetchone()
    if row is None:
        if ScimResource.objects.filter(pk=resource.pk, deleted_at__isnull=True).exists():
            raise ScimError(412, "The resource changed since the version given in If-Match.")
        raise not_found(resource.kind, resource.scim_id)
    resource.version, resource.updated_at = row[0], now


@_identity_errors
def group_delete(*, source: Source, resource: ScimResource, request_id: str = "") -> None:
    """DELETE /Groups/{id}: the directory group and its memberships go (each audited)."""
    members = [uid for uid in ScimResource.objects.filter(
        source=source, kind=ScimResource.Kind.USER, user__groups=resource.group.group_id
    ).values_list("user_id", flat=True)]
    with transaction.atomic():
        group_service.group_delete(actor=_actor(source, request_id), dgroup=resource.group)
    refresh_rules(source, members, request_id)
