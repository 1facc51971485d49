"""Bulk statements of the identity writer: PostgreSQL ``COPY`` where Django's bulk helpers are slow.

Django 5.2 sends ``bulk_create`` to PostgreSQL as ``INSERT ... SELECT * FROM UNNEST(arrays)`` and
psycopg's client-side binding quotes every array element in Python, and ``bulk_update`` builds a
``CASE WHEN id = ...`` expression per object: together most of the time of a 100k-row import
(docs/benchmarks.md). On PostgreSQL these helpers write the same rows with ``COPY`` instead (psycopg
formats the rows in C): new rows straight into the table, updates into a temporary table that one
``UPDATE ... FROM`` applies. Other backends (SQLite) keep Django's ``bulk_create`` / ``bulk_update``.

Same values as Django writes: each field's own ``get_db_prep_save`` for values psycopg cannot take
as they are, ``auto_now`` / ``auto_now_add`` set, primary keys drawn from the table's sequence before
the ``COPY`` so the objects get their ids as with ``bulk_create``. Errors are Django's (a unique
violation is an ``IntegrityError``, which the service's retry relies on). Every ``COPY`` appears in
``connection.queries`` when queries are logged, so query-count checks see it.
"""

from __future__ import annotations

import datetime
import operator
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

_COLUMN_CONVERTERS: dict[type, list[Callable[[Sequence[Any]], Sequence[Any]]]] = {}

# Updates of fewer objects than this use Django's bulk_update: a temporary table is four statements.
COPY_UPDATE_MIN = 50
BATCH = 1000  # bulk_create / bulk_update batch size elsewhere


def uses_copy() -> bool:
    """True when the default connection is PostgreSQL (the only backend with ``COPY``)."""
    return connection.vendor == "postgresql"


_INIT_PLANS: dict[type, tuple[dict[str, Any], list[tuple[str, Callable[[], Any]]]]] = {}


def new_instance(model: type[models.Model], **values: Any) -> Any:
    """``model(**values)`` (``values`` by attname, e.g. ``org_id``) at a fraction of the cost, for the
    hundreds of thousands of unsaved instances a large import builds: the same ``__dict__`` as
    ``Model.__init__`` would leave (other fields get their defaults), without its per-field
    ``setattr``: a copy of the model's defaults, callable defaults called for the fields not given,
    then ``values``. Falls back to ``Model.__init__`` when something listens to ``pre_init`` /
    ``post_init`` of ``model``."""
    init = _INIT_PLANS.get(model)
    if init is None:
        template: dict[str, Any] = {}
        factories: list[tuple[str, Callable[[], Any]]] = []
        for f in model._meta.concrete_fields:
            if f.has_default() and callable(f.default):
                template[f.attname] = None
                factories.append((f.attname, f.default))
            else:
                template[f.attname] = f.get_default()
        init = _INIT_PLANS[model] = (template, factories)
    template, factories = init
    row = template.copy()  # the fields in their declared order, as ``Model.__init__`` sets them
    for attname, factory in factories:
        if attname not in values:
            row[attname] = factory()
    row.update(values)
    if len(row) != len(template):
        unknown = sorted(values.keys() - template.keys())
        raise TypeError(f"{model.__name__} has no field(s) {', '.join(unknown)}")
    # ``receivers`` first: with no receiver at all (the usual case) skip ``has_listeners``' lookups.
    if (pre_init.receivers or post_init.receivers) and (pre_init.has_listeners(model)
                                                         or post_init.has_listeners(model)):
        return model(*row.values())
    obj = model.__new__(model)
    obj._state = ModelState()
    obj.__dict__.update(row)
    return obj


def clone_instance(obj: models.Model) -> Any:
    """A shallow copy of a model instance, as ``copy.copy`` makes it (own ``_state`` and related
    object cache, field values shared) without the pickle protocol's round trip."""
    new = obj.__class__.__new__(obj.__class__)
    state = obj.__dict__.copy()
    model_state = ModelState.__new__(ModelState)
    model_state.__dict__.update(state["_state"].__dict__)
    model_state.fields_cache = state["_state"].fields_cache.copy()
    state["_state"] = model_state
    new.__dict__.update(state)
    return new


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _converter(field: models.Field) -> Callable[[Any], Any]:
    """A function turning an attribute value into what psycopg's ``COPY`` takes: native values as
    they are (no per-value Django call), anything else through the field's ``get_db_prep_save``."""
    prep = field.get_db_prep_save
    # The connection itself: passing the ``django.db.connection`` proxy would cost a thread-local
    # lookup on each of the field's attribute reads, for every value.
    db = connections[DEFAULT_DB_ALIAS]
    if isinstance(field, models.DateTimeField):
        def convert_datetime(value: Any) -> Any:
            if value is None or (type(value) is datetime.datetime and value.tzinfo is not None):
                return value
            return prep(value, db)
        return convert_datetime
    if isinstance(field, models.BooleanField):
        native: tuple[type, ...] = (bool,)
    elif isinstance(field, (models.CharField, models.TextField)):
        native = (str,)  # other str subclasses (enum members of choices) go through prep, which keeps them
    elif isinstance(field, (models.GenericIPAddressField, models.JSONField)):
        # An address is normalised and a JSON value adapted by prep; None is SQL NULL for both
        # (JSONField.get_db_prep_save returns None as it is), the usual audit old_value / ip_address.
        native = ()
    elif isinstance(field, models.IntegerField) or (
            isinstance(field, models.ForeignKey) and isinstance(field.target_field, models.IntegerField)):
        native = (int,)
    else:
        return lambda value: prep(value, db)

    def convert(value: Any) -> Any:
        if value is None or type(value) in native:
            return value
        return prep(value, db)
    return convert


_NONE = type(None)


def _column_converter(field: models.Field) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """A function turning one column of values (all rows' values of ``field``) into what ``COPY``
    takes, with ``_converter``'s result for every value: a column whose values are all of the
    field's native types (or ``None``) goes as it is, checked with one ``set(map(type, ...))`` in C
    instead of a Python call per value; any other column is converted value by value. Date-times
    are always converted (a naive one must be made aware), which is a cheap call for aware ones."""
    convert = _converter(field)
    if isinstance(field, models.DateTimeField):
        return lambda column: list(map(convert, column))
    if isinstance(field, models.BooleanField):
        allowed = {bool, _NONE}
    elif isinstance(field, (models.CharField, models.TextField)):
        # Their get_db_prep_save returns any str instance as it is, enum members (choices) included:
        # a column of str subclasses needs no per-value call either.
        def convert_text(column: Sequence[Any]) -> Sequence[Any]:
            if all(t is _NONE or issubclass(t, str) for t in set(map(type, column))):
                return column
            return list(map(convert, column))
        return convert_text
    elif isinstance(field, (models.GenericIPAddressField, models.JSONField)):
        allowed = {_NONE}
    elif isinstance(field, models.IntegerField) or (
            isinstance(field, models.ForeignKey) and isinstance(field.target_field, models.IntegerField)):
        allowed = {int, _NONE}
    else:
        return lambda column: list(map(convert, column))

    def convert_column(column: Sequence[Any]) -> Sequence[Any]:
        if set(map(type, column)) <= allowed:
            return column
        return list(map(convert, column))
    return convert_column


def _copy_columns(table: str, columns: Sequence[str], converters: Sequence[Callable[[Sequence[Any]], Sequence[Any]]],
                  rows: Sequence[Sequence[Any]]) -> int:
    """``_copy`` of ``rows`` (tuples in the order of ``columns``) after each column went through its
    ``_column_converter``: the rows are transposed, converted per column and transposed back."""
    if not rows:
        return 0
    data = [convert(column) for convert, column in zip(converters, zip(*rows, strict=True), strict=True)]
    return _copy(table, columns, zip(*data, strict=True))


def _copy_sql(table: str, columns: Sequence[str]) -> str:
    return f"COPY {_quote(table)} ({', '.join(_quote(c) for c in columns)}) FROM STDIN"


def _log_copy(sql: str, rows: int, start: float) -> None:
    if connection.queries_logged:  # query-count checks and the debug toolbar see every COPY
        connection.queries_log.append({"sql": f"{sql} -- {rows} rows", "time": f"{time.monotonic() - start:.3f}"})


def _copy(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """``COPY table (columns) FROM STDIN`` with ``rows``; returns the number of rows written."""
    sql = _copy_sql(table, columns)
    start = time.monotonic()
    n = 0
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(sql) as copy:
            write_row = copy.write_row
            for n, row in enumerate(rows, start=1):  # noqa: B007 (n: rows written)
                write_row(row)
    _log_copy(sql, n, start)
    return n


def copy_text(model: type[models.Model], columns: Sequence[str], chunks: Iterable[tuple[str, int]]) -> int:
    """``COPY`` into ``model``'s table of text its caller formatted in ``COPY``'s text format, for
    writers that format faster than ``write_row`` can (shared values formatted once: the group
    mirror's memberships and audit rows). ``chunks``: ``(text, rows in it)``; returns the rows written.
    Same errors (Django's), same query log as the other writers here."""
    sql = _copy_sql(model._meta.db_table, columns)
    start = time.monotonic()
    n = 0
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(sql) as copy:
            for text, rows in chunks:
                copy.write(text)
                n += rows
    _log_copy(sql, n, start)
    return n


def _next_ids(model: type[models.Model], n: int) -> list[int]:
    """``n`` fresh primary keys from the table's sequence (ascending, as ``bulk_create`` assigns them)."""
    table, pk = model._meta.db_table, model._meta.pk.column
    # The sequence is looked up once (a materialised CTE): ``pg_get_serial_sequence`` is only stable,
    # so in the select list PostgreSQL would run its catalog lookup again for every id (about 15 us
    # each, 16 ms for 2,000 ids instead of 2 ms; issue 7).
    with connection.cursor() as cursor:
        cursor.execute("WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence(%s, %s)::regclass AS seq) "
                       "SELECT nextval(s.seq) FROM s, generate_series(1, %s)", [table, pk, n])
        return sorted(row[0] for row in cursor.fetchall())


def insert_objects(model: type[models.Model], objs: Sequence[models.Model]) -> None:
    """Insert ``objs`` (unsaved instances) like ``bulk_create``: afterwards each has its primary key
    and is no longer "adding"; ``auto_now_add`` fields hold the time written."""
    if not objs:
        return
    if not uses_copy():
        model._default_manager.bulk_create(objs, batch_size=BATCH)
        return
    meta = model._meta
    pk_attname = meta.pk.attname
    missing = [obj for obj in objs if getattr(obj, pk_attname) is None]
    for obj, pk in zip(missing, _next_ids(model, len(missing)), strict=True):
        setattr(obj, pk_attname, pk)
    fields = list(meta.concrete_fields)
    stamped = [f for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)]
    now = timezone.now()
    for obj in objs:
        if obj._state.fields_cache:  # it only acts on related objects in this cache
            obj._prepare_related_fields_for_save(operation_name="bulk_create")
        for f in stamped:
            setattr(obj, f.attname, now)
    converters = _COLUMN_CONVERTERS.get(model)
    if converters is None:
        converters = _COLUMN_CONVERTERS[model] = [_column_converter(f) for f in fields]
    values = operator.itemgetter(*[f.attname for f in fields])
    _copy_columns(meta.db_table, [f.column for f in fields], converters, [values(obj.__dict__) for obj in objs])
    alias = connection.alias
    for obj in objs:
        obj._state.adding = False
        obj._state.db = alias


def insert_rows(model: type[models.Model], attnames: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Insert ``rows`` (tuples of the ``attnames`` values) without building model instances; other
    fields get their defaults (``auto_now_add``: now), the primary key its sequence. For rows that
    cannot conflict (the batch's new users); others go through ``bulk_create(ignore_conflicts=True)``."""
    if not rows:
        return
    if not uses_copy():
        model._default_manager.bulk_create([model(**dict(zip(attnames, row, strict=True))) for row in rows],
                                           batch_size=BATCH)
        return
    meta = model._meta
    by_attname = {f.attname: f for f in meta.concrete_fields}
    given = [by_attname[a] for a in attnames]
    now = timezone.now()
    extra_fields, constants, factories = [], [], []
    for f in meta.concrete_fields:
        if f.attname in attnames or f.primary_key:
            continue
        extra_fields.append(f)
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            constants.append(now)
            factories.append(None)
        elif f.has_default() and callable(f.default):
            constants.append(None)
            factories.append(f.default)
        else:
            constants.append(f.get_default())
            factories.append(None)
    n = len(rows)
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if n else []
    if len(columns) != len(given):
        raise ValueError(f"rows of {len(columns)} values for {len(given)} fields")
    for constant, factory in zip(constants, factories, strict=True):
        columns.append([factory() for _ in range(n)] if factory else (constant,) * n)
    converters = [_column_converter(f) for f in given + extra_fields]
    data = [convert(column) for convert, column in zip(converters, columns, strict=True)]
    _copy(meta.db_table, [f.column for f in given + extra_fields], zip(*data, strict=True))


def update_objects(model: type[models.Model], objs: Sequence[models.Model], fields: Sequence[str]) -> None:
    """``bulk_update(objs, fields)``: on PostgreSQL, for more than a handful of objects, through a
    temporary table filled by ``COPY`` and one ``UPDATE ... FROM``."""
    if not objs:
        return
    if not uses_copy() or len(objs) < COPY_UPDATE_MIN:
        model._default_manager.bulk_update(objs, list(fields), batch_size=BATCH)
        return
    if not connection.in_atomic_block:  # the temporary table lives until the end of the transaction
        with transaction.atomic():
            update_objects(model, objs, fields)
        return
    meta = model._meta
    table, pk = meta.db_table, meta.pk
    targets = [meta.get_field(name) for name in fields]
    temp = f"idm_bulk_{table}"
    columns = [pk.column] + [f.column for f in targets]
    # Table and column names come from the model's meta, quoted; the values go through COPY.
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {_quote(temp)}")
        cursor.execute(f"CREATE TEMP TABLE {_quote(temp)} ON COMMIT DROP AS SELECT "  # noqa: S608
                       f"{', '.join(_quote(c) for c in columns)} FROM {_quote(table)} WITH NO DATA")
    plan = [(pk.attname, _converter(pk))] + [(f.attname, _converter(f)) for f in targets]
    _copy(temp, columns, ([convert(getattr(obj, attname)) for attname, convert in plan] for obj in objs))
    assignments = ", ".join(f"{_quote(f.column)} = s.{_quote(f.column)}" for f in targets)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {_quote(table)} AS t SET {assignments} FROM {_quote(temp)} AS s "  # noqa: S608
                       f"WHERE t.{_quote(pk.column)} = s.{_quote(pk.column)}")
        cursor.execute(f"DROP TABLE {_quote(temp)}")
