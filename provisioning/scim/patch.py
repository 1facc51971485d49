"""SCIM PATCH (RFC 7644 §3.5.2) applied to a resource's JSON document. Pure: no ORM.

A PATCH arrives as a list of operations; the SCIM front door reads the resource as its SCIM JSON,
``apply_patch`` returns the new JSON, and the front door turns the difference into one identity or
group change — so PATCH, PUT and POST share the same translation and the same service call.

What real clients send, beyond the RFC's examples (each has a test with its source):

* op names in any case (``"Replace"``, ``"Add"``: Entra);
* no ``path``, with a value object whose keys are attribute paths — plain, dotted
  (``"name.givenName"``) or URN-prefixed (``"urn:…:enterprise:2.0:User:department"``);
* booleans as strings ``"True"`` / ``"False"`` (Entra's long-standing bug);
* ``replace`` of ``emails[type eq "work"].value`` for a user with no work email yet: the element is
  created (the filter's equality tests give its other sub-attributes);
* ``remove`` of ``members`` with a value list (Entra's legacy form): only the listed members go;
* read-only attributes (``id``, ``meta``, a group's ``members`` display names) in a value object:
  ignored, as Okta's group rename includes the ``id``.

Attribute names compare case-insensitively; the document keeps the schema's spelling.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from accounts.exceptions import IdentityError
from provisioning.scim.filters import (
    And,
    AttrPath,
    Compare,
    Node,
    Not,
    Or,
    PatchPath,
    ScimFilterError,
    ValuePath,
    parse_patch_path,
)

PATCH_OP_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MAX_OPERATIONS = 1_000


class ScimPatchError(IdentityError):
    """A PATCH that cannot be applied; ``scim_type`` is the RFC 7644 error keyword."""

    status = 400

    def __init__(self, scim_type: str, message: str):
        super().__init__(f"scim_{scim_type.lower()}", message)
        self.scim_type = scim_type


@dataclass(frozen=True)
class ResourceSchema:
    """What ``apply_patch`` must know about a resource type's attributes (lower-case names)."""

    core_urn: str
    attributes: frozenset[str]
    multi_valued: frozenset[str] = frozenset()
    complex: frozenset[str] = frozenset()
    booleans: frozenset[str] = frozenset()
    read_only: frozenset[str] = frozenset({"id", "meta", "schemas"})
    extensions: Mapping[str, frozenset[str]] = field(default_factory=dict)
    spelling: Mapping[str, str] = field(default_factory=dict)

    def canonical(self, name: str) -> str:
        """The schema's spelling of ``name`` (as sent when the schema has no other)."""
        return self.spelling.get(name.lower(), name)


@dataclass(frozen=True)
class Operation:
    """One normalized operation: lower-case ``op``, a parsed path (None only for remove errors), value."""

    op: str
    path: PatchPath
    value: Any = None


_TRUE_FALSE = {"true": True, "false": False}


def _boolean(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE_FALSE:
        return _TRUE_FALSE[value.strip().lower()]
    raise ScimPatchError("invalidValue", f"{where} must be true or false.")


def _split_key(key: str) -> PatchPath:
    try:
        return parse_patch_path(key)
    except ScimFilterError as error:
        raise ScimPatchError("invalidPath", error.message) from None


def parse_operations(body: Any) -> list[Operation]:
    """Validate a PatchOp body and expand it into single-path operations."""
    if not isinstance(body, dict):
        raise ScimPatchError("invalidSyntax", "The request body must be a JSON object.")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or PATCH_OP_SCHEMA not in schemas:
        raise ScimPatchError("invalidSyntax", f"The request must list the schema {PATCH_OP_SCHEMA}.")
    operations = next((v for k, v in body.items() if k.lower() == "operations"), None)
    if not isinstance(operations, list) or not operations:
        raise ScimPatchError("invalidSyntax", "The request must have a non-empty Operations list.")
    if len(operations) > MAX_OPERATIONS:
        raise ScimPatchError("tooMany", f"A PATCH may hold at most {MAX_OPERATIONS} operations.")
    result: list[Operation] = []
    for number, raw in enumerate(operations, start=1):
        if not isinstance(raw, dict):
            raise ScimPatchError("invalidSyntax", f"Operation {number} is not a JSON object.")
        fields = {k.lower(): v for k, v in raw.items()}
        op = fields.get("op")
        if not isinstance(op, str) or op.lower() not in {"add", "replace", "remove"}:
            raise ScimPatchError("invalidSyntax", f"Operation {number} has no op add, replace or remove.")
        op = op.lower()
        path_text = fields.get("path")
        value = fields.get("value")
        if path_text is not None and not isinstance(path_text, str):
            raise ScimPatchError("invalidPath", f"Operation {number}: path must be a string.")
        if path_text is None or not path_text.strip():
            if op == "remove":
                raise ScimPatchError("noTarget", f"Operation {number}: remove needs a path.")
            if not isinstance(value, dict):
                raise ScimPatchError("invalidValue",
                                     f"Operation {number}: without a path the value must be an object.")
            for key, item in value.items():
                result.append(Operation(op, _split_key(key), item))
            continue
        if op != "remove" and "value" not in fields:
            raise ScimPatchError("invalidValue", f"Operation {number}: {op} needs a value.")
        result.append(Operation(op, _split_key(path_text), value))
    return result


# --- applying --------------------------------------------------------------------------------------


def _get(container: Mapping, name: str) -> tuple[str | None, Any]:
    """The key in ``container`` equal to ``name`` ignoring case, and its value."""
    lowered = name.lower()
    for key, value in container.items():
        if key.lower() == lowered:
            return key, value
    return None, None


def _matches(element: Any, node: Node) -> bool:
    """Does one value of a multi-valued attribute satisfy a value filter?"""
    if isinstance(node, And):
        return _matches(element, node.left) and _matches(element, node.right)
    if isinstance(node, Or):
        return _matches(element, node.left) or _matches(element, node.right)
    if isinstance(node, Not):
        return not _matches(element, node.expr)
    if isinstance(node, ValuePath):
        raise ScimPatchError("invalidFilter", "A value filter cannot contain another value filter.")
    if not isinstance(node, Compare) or not isinstance(element, dict):
        return False
    _key, actual = _get(element, node.path.attr)
    if node.path.sub:
        actual = _get(actual, node.path.sub)[1] if isinstance(actual, dict) else None
    if node.op == "pr":
        return actual not in (None, "", [], {})
    expected = node.value
    if isinstance(actual, str) and isinstance(expected, str):
        actual_cmp, expected_cmp = actual.lower(), expected.lower()
    elif isinstance(expected, bool) and isinstance(actual, str) and actual.lower() in _TRUE_FALSE:
        actual_cmp, expected_cmp = _TRUE_FALSE[actual.lower()], expected
    else:
        actual_cmp, expected_cmp = actual, expected
    if node.op == "eq":
        return actual_cmp == expected_cmp
    if node.op == "ne":
        return actual_cmp != expected_cmp
    if not isinstance(actual_cmp, str) or not isinstance(expected_cmp, str):
        if node.op in {"gt", "ge", "lt", "le"} and isinstance(actual_cmp, int | float) \
                and isinstance(expected_cmp, int | float):
            return {"gt": actual_cmp > expected_cmp, "ge": actual_cmp >= expected_cmp,
                    "lt": actual_cmp < expected_cmp, "le": actual_cmp <= expected_cmp}[node.op]
        return False
    return {"co": expected_cmp in actual_cmp, "sw": actual_cmp.startswith(expected_cmp),
            "ew": actual_cmp.endswith(expected_cmp), "gt": actual_cmp > expected_cmp,
            "ge": actual_cmp >= expected_cmp, "lt": actual_cmp < expected_cmp,
            "le": actual_cmp <= expected_cmp}[node.op]


def _template_from(node: Node) -> dict[str, Any] | None:
    """The element a filter of equality tests describes (``type eq "work"`` → ``{"type": "work"}``)."""
    if isinstance(node, Compare) and node.op == "eq" and not node.path.sub:
        return {node.path.attr: node.value}
    if isinstance(node, And):
        left, right = _template_from(node.left), _template_from(node.right)
        if left is not None and right is not None:
            return {**left, **right}
    return None


class _Patcher:
    def __init__(self, document: dict, schema: ResourceSchema):
        self.doc = copy.deepcopy(document)
        self.schema = schema

    def _locate(self, path: AttrPath) -> tuple[str | None, str]:
        """The extension URN holding ``path`` (None for core attributes) and its lower-case name."""
        name = path.attr.lower()
        urn = (path.schema or "").lower()
        if urn and urn != self.schema.core_urn.lower():
            for canonical_urn, names in self.schema.extensions.items():
                if canonical_urn.lower() == urn and name in names:
                    return canonical_urn, name
            raise ScimPatchError("invalidPath", f"Unknown attribute {path}.")
        if name not in self.schema.attributes:
            raise ScimPatchError("invalidPath", f"Unknown attribute {path}.")
        return None, name

    def existing(self, path: AttrPath) -> tuple[dict | None, str]:
        """Where ``path`` lives, without creating an extension object (for remove)."""
        urn, name = self._locate(path)
        if urn is None:
            return self.doc, name
        _key, ext = _get(self.doc, urn)
        return (ext if isinstance(ext, dict) else None), name

    def writable(self, path: AttrPath) -> tuple[dict, str]:
        """Where ``path`` lives, creating its extension object when missing (for add and replace)."""
        urn, name = self._locate(path)
        if urn is None:
            return self.doc, name
        key, ext = _get(self.doc, urn)
        if not isinstance(ext, dict):
            ext = self.doc[key or urn] = {}
        return ext, name

    def coerce(self, dotted: str, value: Any) -> Any:
        if dotted in self.schema.booleans:
            return _boolean(value, self.schema.canonical(dotted))
        return value

    def apply(self, operation: Operation) -> None:
        path = operation.path.path
        name = path.attr.lower()
        if name in self.schema.read_only and not path.schema:
            return  # RFC 7644 §3.5.2: read-only attributes in a value object are ignored
        if operation.path.filter is not None:
            self.apply_filtered(operation)
            return
        canonical = self.schema.canonical(path.attr)
        if operation.op == "remove":
            self.remove(operation, canonical)
            return
        container, name = self.writable(path)
        if path.sub:
            self.set_sub(operation, container, canonical, path.sub)
            return
        key, current = _get(container, canonical)
        value = operation.value
        if name in self.schema.multi_valued:
            values = value if isinstance(value, list) else [value]
            if operation.op == "add" and isinstance(current, list):
                existing = {str(_get(e, "value")[1]) for e in current if isinstance(e, dict)}
                merged = list(current)
                for item in values:
                    item_value = _get(item, "value")[1] if isinstance(item, dict) else None
                    if item_value is None or str(item_value) not in existing:
                        merged.append(item)
                        existing.add(str(item_value))
                container[key or canonical] = merged
            else:
                if key is not None and key != canonical:
                    del container[key]
                container[canonical] = list(values)
            return
        if isinstance(value, dict):
            if name not in self.schema.complex:
                raise ScimPatchError("invalidValue", f"{canonical} takes a single value, not an object.")
            merged = dict(current) if isinstance(current, dict) else {}
            for sub_key, sub_value in value.items():
                existing_key, _ = _get(merged, sub_key)
                merged[existing_key or sub_key] = self.coerce(f"{name}.{sub_key.lower()}", sub_value)
            if key is not None and key != canonical:
                del container[key]
            container[canonical] = merged
            return
        if key is not None and key != canonical:
            del container[key]
        container[canonical] = self.coerce(name, value)

    def remove(self, operation: Operation, canonical: str) -> None:
        path = operation.path.path
        container, name = self.existing(path)
        key, current = _get(container or {}, canonical)
        if container is None or key is None:
            return  # removing what is not there changes nothing
        if path.sub:
            if isinstance(current, dict):
                sub_key, _ = _get(current, path.sub)
                if sub_key is not None:
                    del current[sub_key]
            return
        if name in self.schema.multi_valued and isinstance(operation.value, list) and operation.value:
            # Entra's legacy "remove members with a value list": only those values go.
            gone = {str(_get(v, "value")[1]) for v in operation.value if isinstance(v, dict)}
            container[key] = [e for e in current or [] if str(_get(e, "value")[1]) not in gone]
            return
        del container[key]

    def set_sub(self, operation: Operation, container: dict, canonical: str, sub: str) -> None:
        key, current = _get(container, canonical)
        if not isinstance(current, dict):
            current = {}
            container[key or canonical] = current
        sub_key, _ = _get(current, sub)
        current[sub_key or sub] = self.coerce(f"{canonical.lower()}.{sub.lower()}", operation.value)

    def apply_filtered(self, operation: Operation) -> None:
        path = operation.path
        name = path.path.attr.lower()
        if name not in self.schema.multi_valued:
            raise ScimPatchError("invalidPath", f"{path.path.attr} has no values to filter.")
        canonical = self.schema.canonical(path.path.attr)
        value_filter = path.filter
        if operation.op == "remove":
            container, name = self.existing(path.path)
            key, current = _get(container or {}, canonical)
            if container is None or key is None:
                return
            elements = list(current) if isinstance(current, list) else []
            hits = [i for i, element in enumerate(elements) if value_filter and _matches(element, value_filter)]
            if path.sub:
                for i in hits:
                    sub_key, _ = _get(elements[i], path.sub)
                    if sub_key is not None:
                        del elements[i][sub_key]
            else:
                elements = [e for i, e in enumerate(elements) if i not in hits]
            container[key] = elements
            return
        container, name = self.writable(path.path)
        key, current = _get(container, canonical)
        elements = list(current) if isinstance(current, list) else []
        hits = [i for i, element in enumerate(elements) if value_filter and _matches(element, value_filter)]
        if not hits:
            template = _template_from(path.filter)
            if template is None or (operation.op == "replace" and not path.sub):
                raise ScimPatchError("noTarget", f"No value of {path.path.attr} matches the filter.")
            element = dict(template)
            if path.sub:
                element[path.sub] = self.coerce(f"{name}.{path.sub.lower()}", operation.value)
            elif isinstance(operation.value, dict):
                element.update(operation.value)
            elements.append(element)
        else:
            for i in hits:
                if path.sub:
                    sub_key, _ = _get(elements[i], path.sub)
                    elements[i][sub_key or path.sub] = self.coerce(f"{name}.{path.sub.lower()}", operation.value)
                elif isinstance(operation.value, dict):
                    elements[i] = {**elements[i], **operation.value} if operation.op == "add" \
                        else dict(operation.value)
                else:
                    raise ScimPatchError("invalidValue", f"The value for {path.path.attr}[…] must be an object.")
        container[key or canonical] = elements


def apply_patch(document: dict, operations: list[Operation], schema: ResourceSchema) -> dict:
    """The document after ``operations``, applied in order; the input is not modified.

    Raises ``ScimPatchError`` (invalidPath, noTarget, invalidValue…) on the first operation that
    cannot be applied; then nothing of the PATCH applies (RFC 7644 §3.5.2: all or nothing).
    """
    patcher = _Patcher(document, schema)
    for operation in operations:
        patcher.apply(operation)
    return patcher.doc
