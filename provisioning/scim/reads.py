"""Hand-written reads on the SCIM write paths: a resource by id, the member rows a group PATCH names,
their groups, the source's rules.

Why not the ORM: building a query (joins, lookups, compiler) costs 0.5-1.4 ms of CPU per statement
here, more than PostgreSQL takes to answer it, and a member PATCH of a 20k-member group ran six such
reads (issue 9: 4 clients on 2 sync workers queue for CPU, so CPU per request is the latency). Each
statement below is one fixed text built once from the models' own table and column names; every
value is a bound parameter. Rows come back through the same converters Django applies (JSON text
decoded, SQLite's 0/1 as booleans, datetimes made aware), so callers get what the ORM would give.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Field, Model, prefetch_related_objects

from accounts.models import DirectoryGroup, ExternalIdentity
from provisioning import rules as rules_mod
from provisioning.models import MappingRule, Source
from provisioning.scim.models import ScimResource

CHUNK = 1000  # ids per IN list (SQLite's variable limit, plan stability on PostgreSQL)
Membership = User.groups.through


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _table(model: type[Model]) -> str:
    return _q(model._meta.db_table)


def _col(model: type[Model], name: str) -> str:
    return _q(model._meta.get_field(name).column)


@cache
def _converters(fields: tuple[Field, ...], vendor: str) -> tuple:
    """Per field: the backend's and the field's own converters, as the ORM's compiler applies them.
    They take the connection as an argument, so one list serves every connection of a backend."""
    out = []
    for f in fields:
        col = f.get_col(f.model._meta.db_table)
        out.append((col, (*connection.ops.get_db_converters(col), *col.get_db_converters(connection))))
    return tuple(out)


def fetch(sql: str, params: Sequence[Any], fields: Sequence[Field]) -> list[tuple]:
    """Run ``sql`` (one SELECT whose columns are ``fields``, in order) and convert each value."""
    converters = _converters(tuple(fields), connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    out = []
    for row in rows:
        values = []
        for value, (col, funcs) in zip(row, converters, strict=True):
            for func in funcs:
                value = func(value, col, connection)
            values.append(value)
        out.append(tuple(values))
    return out


def _columns(alias: str, model: type[Model]) -> tuple[str, tuple[Field, ...]]:
    fields = tuple(model._meta.concrete_fields)
    return ", ".join(f"{alias}.{_q(f.column)}" for f in fields), fields


def _instance(model: type[Model], fields: tuple[Field, ...], values: tuple) -> Model:
    return model.from_db(connection.alias, [f.attname for f in fields], values)


# --- one resource ---------------------------------------------------------------------------------


@cache
def _by_id_sql(kind: str, lock: bool, vendor: str) -> tuple[str, tuple[Field, ...], type[Model], int]:
    related = User if kind == ScimResource.Kind.USER else DirectoryGroup
    fk = "user" if kind == ScimResource.Kind.USER else "group"
    own, own_fields = _columns("r", ScimResource)
    other, other_fields = _columns("o", related)
    sql = (f"SELECT {own}, {other} FROM {_table(ScimResource)} r "  # noqa: S608 - model names only
           f"LEFT JOIN {_table(related)} o ON o.{_q(related._meta.pk.column)} = r.{_col(ScimResource, fk)} "
           f"WHERE r.{_col(ScimResource, 'source')} = %s AND r.{_col(ScimResource, 'kind')} = %s "
           f"AND r.{_col(ScimResource, 'deleted_at')} IS NULL AND r.{_col(ScimResource, 'scim_id')} = %s")
    if lock and connection.features.has_select_for_update_of:
        sql += " FOR UPDATE OF r"
    elif lock and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    return sql, own_fields + other_fields, related, len(own_fields)


def resource_by_id(source: Source | int, kind: str, scim_id: str, *, lock: bool = False) -> ScimResource | None:
    """The provider's live resource with this SCIM id, its user or group loaded (as
    ``select_related`` would), or None. ``lock``: ``FOR UPDATE`` of the resource row."""
    sql, fields, related, split = _by_id_sql(kind, lock, connection.vendor)
    rows = fetch(sql, [getattr(source, "pk", source), kind, scim_id], fields)
    if not rows:
        return None
    values = rows[0]
    resource = _instance(ScimResource, fields[:split], values[:split])
    other = values[split:]
    instance = None if other[0] is None else _instance(related, fields[split:], other)
    setattr(resource, "user" if related is User else "group", instance)
    return resource


# --- member rows ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserRow:
    """What a group PATCH needs about one of the provider's users: its SCIM resource's stored
    document and flags, and its userName."""

    scim_id: str
    user_id: int
    username: str
    document: dict
    active: bool
    external_id: str


_USER_ROW_FIELDS = (ScimResource._meta.get_field("scim_id"), ScimResource._meta.get_field("user"),
                    User._meta.get_field("username"), ScimResource._meta.get_field("document"),
                    ScimResource._meta.get_field("active"), ScimResource._meta.get_field("external_id"))


@cache
def _user_rows_sql(key: str, vendor: str) -> str:
    r = {name: _col(ScimResource, name) for name in ("scim_id", "user", "document", "active", "external_id",
                                                      "source", "kind", "deleted_at")}
    return (f"SELECT r.{r['scim_id']}, r.{r['user']}, u.{_col(User, 'username')}, r.{r['document']}, "  # noqa: S608
            f"r.{r['active']}, r.{r['external_id']} FROM {_table(ScimResource)} r "
            f"JOIN {_table(User)} u ON u.{_col(User, 'id')} = r.{r['user']} "
            f"WHERE r.{r['source']} = %s AND r.{r['kind']} = %s AND r.{r['deleted_at']} IS NULL "
            f"AND r.{r[key]} IN ")


def user_rows(source: Source, *, scim_ids: Iterable[str] = (), user_ids: Iterable[int] = ()) -> list[UserRow]:
    """The provider's live users with these SCIM ids or user ids (unknown ones are left out)."""
    out: list[UserRow] = []
    for key, wanted in (("scim_id", list(dict.fromkeys(scim_ids))), ("user", sorted(set(user_ids)))):
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start:start + CHUNK]
            sql = _user_rows_sql(key, connection.vendor) + f"({', '.join(['%s'] * len(chunk))})"
            rows = fetch(sql, [source.pk, ScimResource.Kind.USER, *chunk], _USER_ROW_FIELDS)
            out += [UserRow(*row) for row in rows]
    return out


_LINK_FIELDS = (ExternalIdentity._meta.get_field("user"), ExternalIdentity._meta.get_field("raw"))


@cache
def _stored_records_sql(vendor: str) -> str:
    c = {name: _col(ExternalIdentity, name) for name in ("user", "raw", "source", "provider")}
    return (f"SELECT l.{c['user']}, l.{c['raw']} FROM {_table(ExternalIdentity)} l "  # noqa: S608
            f"WHERE l.{c['source']} = %s AND l.{c['provider']} = %s AND l.{c['user']} IN ")


def stored_records(source: Source, user_ids: Iterable[int], *, lock: bool = False) -> dict[int, dict | None]:
    """What the source last said about each of these users (their link's ``raw``; users without a
    link are left out). ``lock`` (inside a transaction): the links are locked (``FOR UPDATE``, in
    user id order, so two writers never wait for each other crosswise) and read as the last writer
    committed them."""
    ids = sorted(set(user_ids))
    out: dict[int, dict | None] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        sql = (_stored_records_sql(connection.vendor) + f"({', '.join(['%s'] * len(chunk))}) "
               f"ORDER BY l.{_col(ExternalIdentity, 'user')}")
        if lock and connection.features.has_select_for_update:
            sql += " FOR UPDATE"
        out.update(fetch(sql, [source.kind, source.slug, *chunk], _LINK_FIELDS))
    return out


# --- groups of users ------------------------------------------------------------------------------


_GROUP_REF_FIELDS = (Membership._meta.get_field("user"), ScimResource._meta.get_field("scim_id"),
                     DirectoryGroup._meta.get_field("display_name"))


@cache
def _group_refs_sql(vendor: str) -> str:
    r = {name: _col(ScimResource, name) for name in ("scim_id", "group", "source", "kind", "deleted_at")}
    return (f"SELECT m.{_col(Membership, 'user')}, r.{r['scim_id']}, g.{_col(DirectoryGroup, 'display_name')} "  # noqa: S608
            f"FROM {_table(ScimResource)} r "
            f"JOIN {_table(DirectoryGroup)} g ON g.{_col(DirectoryGroup, 'id')} = r.{r['group']} "
            f"JOIN {_table(Membership)} m ON m.{_col(Membership, 'group')} = g.{_col(DirectoryGroup, 'group')} "
            f"WHERE r.{r['source']} = %s AND r.{r['kind']} = %s AND r.{r['deleted_at']} IS NULL "
            f"AND m.{_col(Membership, 'user')} IN ")


def group_refs(source: Source, user_ids: Iterable[int]) -> dict[int, list[str]]:
    """Per user, the display names and SCIM ids of the provider's live groups they are in."""
    ids = sorted(set(user_ids))
    refs: dict[int, list[str]] = {uid: [] for uid in ids}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        sql = _group_refs_sql(connection.vendor) + f"({', '.join(['%s'] * len(chunk))})"
        for uid, scim_id, name in fetch(sql, [source.pk, ScimResource.Kind.GROUP, *chunk], _GROUP_REF_FIELDS):
            refs[uid] += [name, scim_id]
    return refs


# --- rules ----------------------------------------------------------------------------------------


@cache
def _rules_sql(vendor: str) -> tuple[str, tuple[Field, ...]]:
    columns, fields = _columns("r", MappingRule)
    order = ", ".join(f"r.{_col(MappingRule, name)}" for name in ("kind", "position", "id"))
    return (f"SELECT {columns} FROM {_table(MappingRule)} r "  # noqa: S608 - model names only
            f"WHERE r.{_col(MappingRule, 'source')} = %s ORDER BY {order}"), fields


def rule_set(source: Source) -> tuple[rules_mod.Rule, ...]:
    """``Source.rule_set()`` without building its query each time: the rules in order, their roles
    read (prefetched) only when there are rules."""
    sql, fields = _rules_sql(connection.vendor)
    rows = [_instance(MappingRule, fields, values) for values in fetch(sql, [source.pk], fields)]
    if rows:
        prefetch_related_objects(rows, "roles")
    return tuple(row.to_rule() for row in rows)
