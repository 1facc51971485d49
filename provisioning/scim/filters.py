"""SCIM filters and attribute paths (RFC 7644 §3.4.2.2, §3.5.2): parse, then compile to a Django ``Q``.

Why not the parser django-scim2 ships (scim2-filter-parser): it refuses what real clients send —
a string with an escaped quote (``"a\\"b"``), a decimal number, ``True`` — and its transpiler writes
raw PostgreSQL SQL, so SQLite and every ORM guard are bypassed. This module is a small recursive
descent parser over the RFC's grammar that produces frozen nodes, and a compiler that turns them
into ORM lookups through an explicit attribute map. Anything the map does not name is an
``invalidFilter`` error, never "match everything".

Grammar, with ``not`` binding tighter than ``and``, and ``and`` tighter than ``or``:

    filter    = term *("or" term)
    term      = factor *("and" factor)
    factor    = ["not"] "(" filter ")" / attrPath "[" filter "]" / attrPath "pr"
              / attrPath compareOp compValue
    compValue = "true" / "false" / "null" / number / JSON string
    attrPath  = [schema URN ":"] attrName ["." subAttr]

Operators and keywords are case-insensitive (RFC 7644 §3.4.2.2); so are attribute names
(RFC 7643 §2.1). Limits on length and nesting keep a hostile filter from costing more than a
normal one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Union

from django.db.models import Q
from django.db.models.functions import Lower
from django.db.models.lookups import Exact, GreaterThan, GreaterThanOrEqual, LessThan, LessThanOrEqual
from django.utils.dateparse import parse_datetime

from accounts.exceptions import IdentityError

MAX_FILTER_LENGTH = 4_096
MAX_DEPTH = 32
COMPARE_OPS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "lt", "ge", "le"})


def unstorable(text: str) -> bool:
    """NUL, or a lone UTF-16 surrogate (JSON allows ``"\\ud800"``): PostgreSQL text and jsonb refuse
    both, SQLite cannot encode the second, so either would surface as a 500 (in a body or a filter)."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class ScimFilterError(IdentityError):
    """A filter or path that cannot be parsed or names an attribute this resource does not have."""

    status = 400
    scim_type = "invalidFilter"

    def __init__(self, message: str, *, scim_type: str = "invalidFilter"):
        super().__init__("invalid_filter" if scim_type == "invalidFilter" else "invalid_path", message)
        self.scim_type = scim_type


# --- nodes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttrPath:
    """``[schema:]attr[.sub]``; ``key`` is the lower-cased ``attr`` or ``attr.sub`` used for lookups."""

    attr: str
    sub: str | None = None
    schema: str | None = None

    @property
    def key(self) -> str:
        return f"{self.attr}.{self.sub}".lower() if self.sub else self.attr.lower()

    def __str__(self) -> str:
        text = f"{self.attr}.{self.sub}" if self.sub else self.attr
        return f"{self.schema}:{text}" if self.schema else text


@dataclass(frozen=True)
class Compare:
    path: AttrPath
    op: str  # one of COMPARE_OPS or "pr"
    value: Any = None


@dataclass(frozen=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True)
class Or:
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    expr: Node


@dataclass(frozen=True)
class ValuePath:
    """``attr[filter]``: ``filter`` applies to the sub-attributes of one value of ``attr``."""

    path: AttrPath
    filter: Node


Node = Union[Compare, And, Or, Not, ValuePath]  # noqa: UP007 - a runtime alias used in annotations


@dataclass(frozen=True)
class PatchPath:
    """A PATCH ``path``: ``attr``, ``attr.sub``, ``attr[filter]`` or ``attr[filter].sub``."""

    path: AttrPath
    filter: Node | None = None
    sub: str | None = None


# --- tokens --------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*")
  | (?P<number>-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.:]))
  | (?P<lbracket>\[) | (?P<rbracket>\]) | (?P<lparen>\() | (?P<rparen>\))
  | (?P<dotsub>\.[A-Za-z$][\w$-]*)
  | (?P<word>(?:urn:[\w.:-]*:)?[A-Za-z$][\w$-]*(?:\.[A-Za-z$][\w$-]*)?)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ScimFilterError(f"Unexpected character {text[pos]!r} at position {pos + 1}.")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Token(kind, match.group(), pos))
        pos = match.end()
    return tokens


def _attr_path(token: _Token) -> AttrPath:
    text = token.text
    schema = None
    if text.lower().startswith("urn:"):
        schema, _, text = text.rpartition(":")
    attr, _, sub = text.partition(".")
    return AttrPath(attr=attr, sub=sub or None, schema=schema)


class _Parser:
    def __init__(self, text: str):
        if len(text) > MAX_FILTER_LENGTH:
            raise ScimFilterError(f"The filter is longer than {MAX_FILTER_LENGTH} characters.")
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def next(self, expected: str) -> _Token:
        token = self.peek()
        if token is None:
            raise ScimFilterError(f"The filter ends where {expected} was expected.")
        self.index += 1
        return token

    def keyword(self, *words: str) -> str | None:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text.lower() in words:
            self.index += 1
            return token.text.lower()
        return None

    def expect(self, kind: str, what: str) -> _Token:
        token = self.next(what)
        if token.kind != kind:
            raise ScimFilterError(f"Expected {what} at position {token.pos + 1}, found {token.text!r}.")
        return token

    def parse_filter(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ScimFilterError(f"The filter nests deeper than {MAX_DEPTH} levels.")
        node = self.parse_term()
        while self.keyword("or"):
            node = Or(node, self.parse_term())
        self.depth -= 1
        return node

    def parse_term(self) -> Node:
        node = self.parse_factor()
        while self.keyword("and"):
            node = And(node, self.parse_factor())
        return node

    def parse_factor(self) -> Node:
        if self.keyword("not"):
            self.expect("lparen", '"(" after "not"')
            inner = self.parse_filter()
            self.expect("rparen", '")"')
            return Not(inner)
        token = self.next("an attribute or \"(\"")
        if token.kind == "lparen":
            inner = self.parse_filter()
            self.expect("rparen", '")"')
            return inner
        if token.kind != "word":
            raise ScimFilterError(f"Expected an attribute name at position {token.pos + 1}, found {token.text!r}.")
        path = _attr_path(token)
        following = self.peek()
        if following is not None and following.kind == "lbracket":
            self.index += 1
            inner = self.parse_filter()
            self.expect("rbracket", '"]"')
            return ValuePath(path, inner)
        op_token = self.next(f'an operator after "{token.text}"')
        op = op_token.text.lower()
        if op_token.kind != "word" or op not in COMPARE_OPS | {"pr"}:
            raise ScimFilterError(f"Unknown operator {op_token.text!r} at position {op_token.pos + 1}.")
        if op == "pr":
            return Compare(path, "pr")
        return Compare(path, op, self.parse_value())

    def parse_value(self) -> Any:
        token = self.next("a value")
        if token.kind == "string":
            text = json.loads(token.text)
            if unstorable(text):  # "\ud800" or "\u0000": no stored value holds one, and the query would fail
                raise ScimFilterError(f"The string at position {token.pos + 1} contains a character that cannot "
                                      "be stored (NUL or an unpaired surrogate).")
            return text
        if token.kind == "number":
            return json.loads(token.text)
        if token.kind == "word" and token.text.lower() in {"true", "false", "null"}:
            return {"true": True, "false": False, "null": None}[token.text.lower()]
        raise ScimFilterError(
            f"Expected a value (a quoted string, a number, true, false or null) at position {token.pos + 1}, "
            f"found {token.text!r}."
        )

    def done(self) -> None:
        token = self.peek()
        if token is not None:
            raise ScimFilterError(f"Unexpected {token.text!r} at position {token.pos + 1}.")


def parse_filter(text: str) -> Node:
    """Parse a SCIM filter expression; ``ScimFilterError`` (invalidFilter) when it is not one."""
    if not text or not text.strip():
        raise ScimFilterError("The filter is empty.")
    parser = _Parser(text)
    node = parser.parse_filter()
    parser.done()
    return node


def parse_patch_path(text: str) -> PatchPath:
    """Parse a PATCH operation's ``path``; errors are ``invalidPath`` (RFC 7644 §3.5.2)."""
    try:
        if not text or not text.strip():
            raise ScimFilterError("The path is empty.")
        parser = _Parser(text)
        token = parser.expect("word", "an attribute name")
        path = _attr_path(token)
        value_filter = None
        sub = None
        following = parser.peek()
        if following is not None and following.kind == "lbracket":
            if path.sub:
                raise ScimFilterError(f"A value filter cannot follow the sub-attribute in {text!r}.")
            parser.index += 1
            value_filter = parser.parse_filter()
            parser.expect("rbracket", '"]"')
            after = parser.peek()
            if after is not None and after.kind == "dotsub":
                parser.index += 1
                sub = after.text[1:]
        parser.done()
    except ScimFilterError as error:
        raise ScimFilterError(error.message, scim_type="invalidPath") from None
    return PatchPath(path=path, filter=value_filter, sub=sub)


# --- compiling to the ORM ------------------------------------------------------------------------

_NOTHING = Q(pk__in=[])
_STRING_OPS = {"eq": "exact", "co": "contains", "sw": "startswith", "ew": "endswith"}
_ORDER_SUFFIX = {"gt": "gt", "ge": "gte", "lt": "lt", "le": "lte"}
_ORDER_LOOKUPS = {"gt": GreaterThan, "ge": GreaterThanOrEqual, "lt": LessThan, "le": LessThanOrEqual}


@dataclass(frozen=True)
class Attribute:
    """How one filterable attribute is stored.

    ``field`` is an ORM lookup path (``"username"``, ``"profile__org__name"``); ``kind`` is
    ``string``, ``boolean``, ``datetime`` or ``integer``; strings compare case-insensitively unless
    ``case_exact`` (RFC 7643: userName, displayName and emails are caseExact false; id and
    externalId true). ``constant`` makes a virtual attribute with one fixed value for every row
    (``emails.type`` is always "work" when idm stores one email). ``compile`` takes over entirely:
    ``compile(op, value) -> Q`` for attributes stored in another shape (``active`` from a state).
    ``indexed_text(value) -> Q``: a wider condition an index serves, added to ``co`` and ``ew``
    (case-insensitive) so they do not scan the table; it must hold wherever the attribute's own
    condition holds.
    """

    field: str = ""
    kind: str = "string"
    case_exact: bool = False
    constant: Any = None
    compile: Callable[[str, Any], Q] | None = None
    multi_valued: bool = False
    indexed_text: Callable[[str], Q] | None = None


def _bad_value(path: AttrPath, op: str, value: Any) -> ScimFilterError:
    return ScimFilterError(f"{op!r} cannot compare {path} with {json.dumps(value)}.")


def _constant_matches(op: str, stored: Any, value: Any) -> bool:
    if op == "pr":
        return stored not in (None, "")
    if isinstance(stored, str) and isinstance(value, str):
        stored, value = stored.lower(), value.lower()
    if op == "eq":
        return stored == value
    if op == "ne":
        return stored != value
    if isinstance(stored, str) and isinstance(value, str):
        return {"co": value in stored, "sw": stored.startswith(value), "ew": stored.endswith(value),
                "gt": stored > value, "ge": stored >= value, "lt": stored < value, "le": stored <= value}[op]
    return False


def _present(field: str, kind: str) -> Q:
    if kind == "string":
        return Q(**{f"{field}__isnull": False}) & ~Q(**{field: ""})
    return Q(**{f"{field}__isnull": False})


def _typed(path: AttrPath, spec: Attribute, op: str, value: Any) -> Any:
    """The filter value converted to the attribute's type, or an invalidFilter error."""
    if spec.kind == "string":
        if not isinstance(value, str):
            raise _bad_value(path, op, value)
        return value
    if spec.kind == "boolean":
        if not isinstance(value, bool) or op not in {"eq", "ne"}:
            raise _bad_value(path, op, value)
        return value
    if spec.kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int) or op in _STRING_OPS.keys() - {"eq"}:
            raise _bad_value(path, op, value)
        return value
    if spec.kind == "datetime":
        problem = ScimFilterError(f"{path} needs an RFC 3339 date-time such as \"2026-11-29T12:00:00Z\".")
        if not isinstance(value, str) or op in {"co", "sw", "ew"}:
            raise problem
        try:
            parsed = parse_datetime(value)
            if parsed is None:
                raise problem
            # RFC 3339 requires an offset; a client that leaves it out means UTC in practice. In UTC, as
            # the database compares: 0001-01-01T00:00:00+01:00 has no UTC year to be stored in.
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
        except (ValueError, OverflowError):  # month 99, offset +99:99, a year before 1 or after 9999 in UTC
            raise problem from None
    raise ScimFilterError(f"{path} cannot be filtered.")


def _compare(path: AttrPath, spec: Attribute, op: str, value: Any) -> Q:
    if spec.compile is not None:
        return spec.compile(op, value)
    if spec.constant is not None:
        return Q() if _constant_matches(op, spec.constant, value) else _NOTHING
    field = spec.field
    if op == "pr":
        return _present(field, spec.kind)
    if value is None:  # "eq null" means absent, "ne null" present
        if op == "eq":
            return ~_present(field, spec.kind)
        if op == "ne":
            return _present(field, spec.kind)
        raise _bad_value(path, op, value)
    typed = _typed(path, spec, op, value)
    insensitive = spec.kind == "string" and not spec.case_exact
    # lower(field) = lower(value) is the form the lower(username) index answers (iexact compiles to
    # UPPER(...) on PostgreSQL, which no index covers). Across a multi-valued relation keep keyword
    # lookups: only those get Django's subquery treatment under "not".
    by_lower = insensitive and not spec.multi_valued
    if op == "eq" and by_lower:
        return Q(Exact(Lower(field), typed.lower()))
    if op in _STRING_OPS:
        if spec.kind != "string" and op != "eq":
            raise _bad_value(path, op, value)
        lookup = _STRING_OPS[op]
        condition = Q(**{f"{field}__{'i' if insensitive else ''}{lookup}": typed})
        if op in ("co", "ew") and insensitive and spec.indexed_text is not None:
            # A LIKE '%x' on one column has no index since the per-field trigram indexes went
            # (accounts/0011): the joined search text's trigram index narrows, the column decides.
            condition &= spec.indexed_text(typed)
        return condition
    if op == "ne":
        if by_lower:
            same = Q(Exact(Lower(field), typed.lower()))
        else:
            same = Q(**{f"{field}__{'iexact' if insensitive else 'exact'}": typed})
        return ~same | ~_present(field, spec.kind)
    lookup_class = _ORDER_LOOKUPS[op]
    if by_lower:
        return Q(lookup_class(Lower(field), typed.lower()))
    return Q(**{f"{field}__{_ORDER_SUFFIX[op]}": typed})


@dataclass(frozen=True)
class CompiledFilter:
    """The ``Q`` to apply and whether it crosses a multi-valued relation (then call ``.distinct()``)."""

    q: Q
    distinct: bool


class FilterCompiler:
    """Compile parsed filters for one resource type through its attribute map.

    ``attributes`` maps lower-case keys (``"username"``, ``"name.givenname"``, ``"emails.value"``)
    to ``Attribute``s. A plain multi-valued attribute name means its ``value`` sub-attribute
    (``emails co "x"`` is ``emails.value co "x"``). ``schemas`` lists the URNs whose attributes the
    map holds (a path with another URN is unknown).
    """

    def __init__(self, attributes: Mapping[str, Attribute], *, schemas: tuple[str, ...] = ()):
        self.attributes = {key.lower(): spec for key, spec in attributes.items()}
        self.schemas = tuple(schema.lower() for schema in schemas)

    def lookup(self, path: AttrPath, *, within: AttrPath | None = None) -> Attribute:
        if path.schema and self.schemas and path.schema.lower() not in self.schemas:
            raise ScimFilterError(f"Unknown attribute {path} (schema {path.schema} is not supported).")
        key = f"{within.attr}.{path.attr}".lower() if within is not None else path.key
        if within is not None and path.sub:
            raise ScimFilterError(f"Unknown attribute {within.attr}.{path}.")
        spec = self.attributes.get(key) or (self.attributes.get(f"{key}.value") if not path.sub else None)
        if spec is None:
            raise ScimFilterError(f"Unknown attribute {path if within is None else f'{within.attr}.{path}'}.")
        return spec

    def compile(self, node: Node) -> CompiledFilter:
        """The ``Q`` for ``node``; ``ScimFilterError`` for unknown attributes and ill-typed values."""
        distinct = False

        def walk(item: Node, within: AttrPath | None) -> Q:
            nonlocal distinct
            if isinstance(item, And):
                return walk(item.left, within) & walk(item.right, within)
            if isinstance(item, Or):
                return walk(item.left, within) | walk(item.right, within)
            if isinstance(item, Not):
                return ~walk(item.expr, within)
            if isinstance(item, ValuePath):
                if within is not None:
                    raise ScimFilterError("A value filter cannot contain another value filter.")
                if item.path.sub:
                    raise ScimFilterError(f"A value filter cannot follow the sub-attribute in {item.path}.")
                return walk(item.filter, item.path)
            spec = self.lookup(item.path, within=within)
            distinct = distinct or spec.multi_valued
            return _compare(item.path, spec, item.op, item.value)

        q = walk(node, None)
        return CompiledFilter(q=q, distinct=distinct)


def compile_filter(text: str, compiler: FilterCompiler) -> CompiledFilter:
    """Parse and compile in one step (what a list endpoint needs)."""
    return compiler.compile(parse_filter(text))
