"""The one mapping evaluator shared by SCIM and LDAP: (rules, what a source says about a user) ->
(active, organization, roles, reasons). Pure: no database, no settings, no clock.

Front doors translate their protocol data into a frozen ``SourceRecord`` (attributes with
case-insensitive names and several values each, group memberships, the entry's DN, and the source's
own "active" flag). ``evaluate`` applies a source's ordered ``Rule`` values and ``OrgPolicy`` to it:

* **active**: inactive when the source itself says so, or when any "active" rule matches.
* **organization**, one mode per source (issue 8): ``fixed`` (new users only, so an admin's later
  move sticks), ``attribute`` (an org named by an attribute value: an existing org by name or path,
  or one created under a chosen parent, else the fallback), ``rules`` (first matching rule wins,
  else the fallback), ``unmanaged``. The result is an ``OrgTarget`` the database side resolves.
* **roles**: the union of every matching role rule; when no role rule matches, the org's default
  roles (``Outcome.use_default_roles``). Customer Cloud Admin is never granted by a rule, and other
  admin roles only by rules a Customer Cloud Admin saved; refused roles become reasons, not grants,
  even if such a rule reached the database some other way.

Rule conditions: ``member_of_group`` (a group name, id or DN the record lists), ``attribute_equals``
(any value, case-insensitive), ``attribute_matches`` (a regular expression run by RE2 in
linear time, see ``check_pattern``) and ``dn_under`` (the entry lies at or below a DN). ``validate_rule`` and
``validate_org_policy`` give the console's coded errors before anything is saved.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property, lru_cache
from types import MappingProxyType
from typing import Any

import ldap.dn
import re2

from accounts.exceptions import MappingError
from provisioning import dn as _dn

# Bounds that keep one rule from costing more than a few microseconds per user.
MAX_PATTERN_LENGTH = 200
MAX_MATCHED_VALUE_LENGTH = 1024
MAX_CONDITION_VALUE_LENGTH = 1000
MAX_ORG_NAME_LENGTH = 1000
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._:;-]{0,119}")


class RuleKind(StrEnum):
    ORG = "org"
    ROLE = "role"
    ACTIVE = "active"


class ConditionKind(StrEnum):
    MEMBER_OF_GROUP = "member_of_group"
    ATTRIBUTE_EQUALS = "attribute_equals"
    ATTRIBUTE_MATCHES = "attribute_matches"
    DN_UNDER = "dn_under"


class OrgMode(StrEnum):
    FIXED = "fixed"
    ATTRIBUTE = "attribute"
    RULES = "rules"
    UNMANAGED = "unmanaged"


# --------------------------------------------------------------------------------------------
# Normalisation


def normalize_dn(dn: str) -> str:
    """The DN in the one canonical spelling of ``provisioning.dn`` (python-ldap's, with its fast path),
    so rules, SCIM and LDAP agree on what names the same entry; ``""`` for an empty DN.
    ``MappingError('invalid_dn')`` for text that is not a DN."""
    return _dn.normalize_dn(dn) if dn.strip() else ""


def is_valid_dn(dn: str) -> bool:
    """A DN a "DN under" rule can use: valid for LDAP (``provisioning.dn``) with no empty RDN value
    (``ou=,dc=x`` parses, but as a rule it is a typo)."""
    if not _dn.is_valid_dn(dn):
        return False
    return all(value for rdn in ldap.dn.str2dn(dn) for _, value, _ in rdn)


def normalize_group(name: str) -> str:
    """A group reference as compared: a DN canonically, any other name or id case-folded (a name
    with an "=" that is not a DN, such as ``Team=Sales+``, is a name)."""
    name = name.strip()
    if "=" in name:
        try:
            return normalize_dn(name)
        except MappingError:
            pass
    return name.casefold()


def _canonical(text: str) -> bool:
    """Cheap test that a name or DN is already in ``normalize_dn`` / ``normalize_group`` form. Escaped
    DNs (a backslash) never pass, so they always go through the parser (older records kept escapes
    as written; the canonical spelling may differ)."""
    return (text == text.casefold() and text == text.strip() and ", " not in text and " ," not in text
            and "= " not in text and " =" not in text and "\\" not in text)


def is_canonical(text: str) -> bool:
    """Is a stored name or DN already in canonical form (``SourceRecord.from_json``'s fast path, and
    the stored-record fast path of ``provisioning.preview``)?"""
    return _canonical(text)


def _as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


# --------------------------------------------------------------------------------------------
# What a source says about a user


@dataclass(frozen=True)
class SourceRecord:
    """What a source says about one user, as the evaluator reads it.

    ``attributes`` maps case-folded names to tuples of string values (Entra's ``UserName`` and
    LDAP's ``uid`` spellings meet here); ``groups`` holds normalised group references (names, ids
    and DNs, see ``normalize_group``); ``dn`` is normalised; ``active`` is the source's own flag
    (SCIM ``active``, a directory's disabled bit) or ``None`` when it says nothing. Build with
    ``SourceRecord.build``.
    """

    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    groups: frozenset[str] = frozenset()
    dn: str = ""
    active: bool | None = None

    @classmethod
    def build(
        cls,
        *,
        attributes: Mapping[str, Any] | None = None,
        groups: Iterable[str] = (),
        dn: str = "",
        active: bool | None = None,
    ) -> SourceRecord:
        """Normalise raw protocol values: names case-folded (values of names differing only in case
        are merged), a single value or a list, ``None`` dropped, bytes decoded as UTF-8."""
        merged: dict[str, list[str]] = {}
        for name, value in (attributes or {}).items():
            key = str(name).strip().casefold()
            values = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
            bucket = merged.setdefault(key, [])
            bucket.extend(_as_text(v) for v in values if v is not None)
        return cls(
            attributes=MappingProxyType({k: tuple(v) for k, v in merged.items()}),
            groups=frozenset(normalize_group(_as_text(g)) for g in groups if g is not None and _as_text(g).strip()),
            dn=normalize_dn(_as_text(dn or "")),
            active=active,
        )

    def values(self, name: str) -> tuple[str, ...]:
        """All values of an attribute (any spelling of its name); ``()`` when absent."""
        return self.attributes.get(name.strip().casefold(), ())

    def first(self, name: str) -> str:
        """The first non-blank value of an attribute, stripped; ``""`` when there is none."""
        for value in self.values(name):
            if value.strip():
                return value.strip()
        return ""

    def to_json(self) -> dict:
        """A JSON-safe dict (stored on the user's external identity as the last-known data)."""
        return {
            "attributes": {k: list(v) for k, v in sorted(self.attributes.items())},
            "groups": sorted(self.groups),
            "dn": self.dn,
            "active": self.active,
        }

    @classmethod
    def from_json(cls, data: Any) -> SourceRecord:
        """The inverse of ``to_json``; ``MappingError('record_invalid')`` for anything else."""
        if not isinstance(data, dict):
            raise MappingError("record_invalid", "Stored source data is not an object.")
        attributes = data.get("attributes", {})
        groups = data.get("groups", [])
        active = data.get("active")
        if not isinstance(attributes, dict) or not isinstance(groups, list) or active not in (None, True, False):
            raise MappingError("record_invalid", "Stored source data has the wrong shape.")
        dn = str(data.get("dn") or "")
        # Fast path for what ``to_json`` wrote (already normalised): re-evaluating 100k stored
        # records must not re-normalise every DN and name. Anything else goes through ``build``.
        try:
            fast = _canonical(dn) and all(k == k.casefold() for k in attributes)
            if fast:
                values = {k: tuple(v) for k, v in attributes.items() if type(v) is list}
                fast = len(values) == len(attributes) and all(type(x) is str for v in values.values() for x in v)
        except (AttributeError, TypeError):
            fast = False
        if fast and all(type(g) is str and _canonical(g) for g in groups):
            return cls(attributes=MappingProxyType(values), groups=frozenset(groups), dn=dn, active=active)
        return cls.build(attributes=attributes, groups=groups, dn=dn, active=active)


# --------------------------------------------------------------------------------------------
# Rules


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # a refused pattern is a form error, not a line on stderr
    return options


_RE2_OPTIONS = _re2_options()


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re2._Regexp:
    return re2.compile(pattern, _RE2_OPTIONS)


def _search(pattern: re2._Regexp, value: str) -> bool:
    try:
        return pattern.search(value) is not None
    except UnicodeEncodeError:  # a lone surrogate cannot be UTF-8 for RE2; such a value matches nothing
        return False


def check_pattern(pattern: str) -> None:
    """Refuse a regular expression that is too long, invalid, or outside RE2's syntax.

    Patterns run on RE2 (google-re2), whose matching time is linear in the value's length, so no
    pattern can backtrack catastrophically (F7 of the 2026-11-30 review: shape heuristics over
    Python's ``re`` let ``(?:a|b|ab){1,100}c`` take seconds). RE2 has no back-references or
    look-around, and refuses nested repeat counts whose product exceeds 1000."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise MappingError(
            "regex_too_long", f"Keep the pattern under {MAX_PATTERN_LENGTH + 1} characters.", field="value"
        )
    try:
        _compiled(pattern)
    except re2.error as exc:
        detail = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        try:
            re.compile(pattern)  # compiled only to tell a typo from a feature RE2 lacks; never run
        except re.error as py_exc:
            raise MappingError("regex_invalid", f"The pattern is not a valid regular expression: {py_exc}.",
                               field="value") from None
        raise MappingError(
            "regex_unsupported",
            f"The pattern uses something the linear-time matcher does not support ({detail}). Back-references, "
            "look-ahead/look-behind and nested repeat counts above 1000 in total are not available.",
            field="value",
        ) from None


@dataclass(frozen=True)
class Condition:
    """The "if" of a rule. ``attribute`` is used by the attribute kinds; ``value`` by all."""

    kind: ConditionKind
    attribute: str = ""
    value: str = ""

    @cached_property
    def _wanted(self) -> str:
        """The value as compared (normalised once per condition, not once per user)."""
        if self.kind == ConditionKind.MEMBER_OF_GROUP:
            return normalize_group(self.value)
        if self.kind == ConditionKind.DN_UNDER:
            return normalize_dn(self.value)
        return self.value.strip().casefold()

    def matches(self, record: SourceRecord) -> bool:
        """Does the record satisfy this condition? (Validate first: see ``validate_condition``.)"""
        if self.kind == ConditionKind.MEMBER_OF_GROUP:
            return self._wanted in record.groups
        if self.kind == ConditionKind.ATTRIBUTE_EQUALS:
            wanted = self._wanted
            return any(v.strip().casefold() == wanted for v in record.values(self.attribute))
        if self.kind == ConditionKind.ATTRIBUTE_MATCHES:
            try:
                pattern = _compiled(self.value)
            except re2.error:
                # Saved before patterns ran on RE2 (look-around, \Z...): stop with a coded error rather
                # than guess what the rule meant. Saving the rule again shows what to change.
                raise MappingError("regex_unsupported", f"The saved pattern {self.value!r} uses syntax the "
                                   "linear-time matcher does not support; edit the rule.", field="value") from None
            return any(len(v) <= MAX_MATCHED_VALUE_LENGTH and _search(pattern, v) for v in record.values(self.attribute))
        if self.kind == ConditionKind.DN_UNDER:
            base = self._wanted
            return bool(record.dn) and (record.dn == base or record.dn.endswith("," + base))
        raise MappingError("condition_unknown", f"Unknown condition {self.kind!r}.", field="condition")

    @cached_property
    def _attribute_key(self) -> str:
        return self.attribute.strip().casefold()

    def relevant(self, record: SourceRecord) -> Any:
        """The part of ``record`` this condition looks at (see ``RuleSet.relevant``)."""
        if self.kind == ConditionKind.MEMBER_OF_GROUP:
            return self._wanted in record.groups
        if self.kind == ConditionKind.DN_UNDER:
            return self.matches(record)
        return record.attributes.get(self._attribute_key, ())


@dataclass(frozen=True)
class Rule:
    """One ordered rule of a source: ``condition`` -> an org (``org_id``), ``roles`` (slugs) or inactive.

    ``saved_by_cloud_admin``: a Customer Cloud Admin last saved it, so it may grant admin roles.
    """

    kind: RuleKind
    condition: Condition
    position: int = 0
    org_id: int | None = None
    roles: frozenset[str] = frozenset()
    saved_by_cloud_admin: bool = False
    rule_id: int | None = None


@dataclass(frozen=True)
class RoleInfo:
    """What the evaluator needs to know about a role: is it an admin role, does it make a Cloud Admin."""

    slug: str
    is_admin: bool = False
    grants_cloud_admin: bool = False


@dataclass(frozen=True)
class OrgPolicy:
    """A source's org mode and its settings (see the module docstring)."""

    mode: OrgMode = OrgMode.UNMANAGED
    fixed_org_id: int | None = None
    attribute: str = ""
    create_under_id: int | None = None
    fallback_org_id: int | None = None


@dataclass(frozen=True)
class OrgTarget:
    """Where the user should be: an existing org (``org_id``), or an org named by an attribute
    (``name``: a name or a path such as "Acme/Engineering") that is created under
    ``create_under_id`` when it does not exist, else ``fallback_org_id``. ``new_users_only``: apply
    only when the source creates the user (fixed mode)."""

    org_id: int | None = None
    name: str = ""
    create_under_id: int | None = None
    fallback_org_id: int | None = None
    new_users_only: bool = False


@dataclass(frozen=True)
class Reason:
    """Why the evaluator decided something: a code, the rule involved, a detail (e.g. a role slug)."""

    code: str
    rule_id: int | None = None
    position: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class Outcome:
    """The evaluator's answer for one user. ``org`` ``None``: leave the org alone.

    ``roles`` are the roles granted by matching rules; when ``use_default_roles`` is set no role rule
    matched and the user gets their org's default roles instead (see ``final_roles``).
    """

    active: bool
    org: OrgTarget | None
    roles: frozenset[str]
    use_default_roles: bool
    reasons: tuple[Reason, ...] = ()

    def final_roles(self, default_roles: Iterable[str]) -> frozenset[str]:
        """The roles the source grants, given the resolved org's default roles."""
        return frozenset(default_roles) if self.use_default_roles else self.roles

    def reason_codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons)


def _ordered(rules: Iterable[Rule], kind: RuleKind) -> tuple[Rule, ...]:
    # Stable: rules with the same position keep the order they were given in.
    return tuple(sorted((r for r in rules if r.kind == kind), key=lambda r: r.position))


@dataclass(frozen=True)
class RuleSet:
    """A source's rules sorted once per kind, for evaluating many users (``RuleSet.of(rules)``)."""

    active: tuple[Rule, ...] = ()
    org: tuple[Rule, ...] = ()
    role: tuple[Rule, ...] = ()

    @classmethod
    def of(cls, rules: Iterable[Rule]) -> RuleSet:
        if isinstance(rules, RuleSet):
            return rules
        rules = tuple(rules)
        return cls(active=_ordered(rules, RuleKind.ACTIVE), org=_ordered(rules, RuleKind.ORG),
                   role=_ordered(rules, RuleKind.ROLE))

    @cached_property
    def _conditions(self) -> tuple[Condition, ...]:
        return tuple(rule.condition for rule in (*self.active, *self.org, *self.role))

    def relevant(self, record: SourceRecord, policy: OrgPolicy) -> tuple:
        """Everything about ``record`` that ``evaluate`` can depend on, as a hashable value: two
        records with equal ``relevant`` get equal outcomes, so a caller may evaluate once per value
        (100k users of a directory fall into few such classes)."""
        org_part = record.first(policy.attribute) if policy.mode == OrgMode.ATTRIBUTE else None
        return (record.active, org_part, *(c.relevant(record) for c in self._conditions))

    def reads(self, policy: OrgPolicy) -> RecordParts:
        """The parts of a record ``evaluate`` (and ``relevant``) can look at with these rules and
        ``policy``: a record holding only those parts gets the same outcome as the whole record, so a
        caller may load just them (``provisioning.preview`` reads them out of the stored JSON)."""
        attributes = {c._attribute_key for c in self._conditions
                      if c.kind in (ConditionKind.ATTRIBUTE_EQUALS, ConditionKind.ATTRIBUTE_MATCHES)}
        if policy.mode == OrgMode.ATTRIBUTE and policy.attribute:
            attributes.add(policy.attribute.strip().casefold())
        return RecordParts(
            attributes=tuple(sorted(attributes)),
            groups=any(c.kind == ConditionKind.MEMBER_OF_GROUP for c in self._conditions),
            dn=any(c.kind == ConditionKind.DN_UNDER for c in self._conditions),
        )


@dataclass(frozen=True)
class RecordParts:
    """Which parts of a ``SourceRecord`` a rule set reads (``RuleSet.reads``); ``active`` always."""

    attributes: tuple[str, ...] = ()
    groups: bool = False
    dn: bool = False


def _reason(code: str, rule: Rule | None = None, detail: str = "") -> Reason:
    if rule is None:
        return Reason(code, detail=detail)
    return Reason(code, rule_id=rule.rule_id, position=rule.position, detail=detail)


def evaluate_active(rules: Iterable[Rule] | RuleSet, record: SourceRecord) -> bool:
    """``evaluate(...).active`` alone: the source's own flag and the "inactive" rules, without the org
    and roles (a sync asks it of every changed user to find the few it may block)."""
    return _evaluate_active(RuleSet.of(rules), record, [])


def _evaluate_active(rules: RuleSet, record: SourceRecord, reasons: list[Reason]) -> bool:
    if record.active is False:
        reasons.append(_reason("source_inactive"))
        return False
    for rule in rules.active:
        if rule.condition.matches(record):
            reasons.append(_reason("inactive_rule", rule))
            return False
    return True


def _evaluate_org(rules: RuleSet, record: SourceRecord, policy: OrgPolicy, reasons: list[Reason]) -> OrgTarget | None:
    mode = policy.mode
    if mode == OrgMode.UNMANAGED:
        reasons.append(_reason("org_unmanaged"))
        return None
    if mode == OrgMode.FIXED:
        if policy.fixed_org_id is None:
            raise MappingError("fixed_org_required", "Choose the organization new users go to.", field="fixed_org")
        reasons.append(_reason("org_fixed"))
        return OrgTarget(org_id=policy.fixed_org_id, new_users_only=True)
    if mode == OrgMode.ATTRIBUTE:
        if not policy.attribute:
            raise MappingError("org_attribute_required", "Name the attribute that holds the organization.",
                               field="org_attribute")
        name = record.first(policy.attribute)
        if name and len(name) <= MAX_ORG_NAME_LENGTH:
            reasons.append(_reason("org_from_attribute", detail=name))
            return OrgTarget(name=name, create_under_id=policy.create_under_id,
                             fallback_org_id=policy.fallback_org_id)
        reasons.append(_reason("org_attribute_missing" if not name else "org_name_too_long", detail=policy.attribute))
    elif mode == OrgMode.RULES:
        for rule in rules.org:
            if rule.condition.matches(record):
                reasons.append(_reason("org_rule", rule))
                return OrgTarget(org_id=rule.org_id)
        reasons.append(_reason("no_org_rule"))
    else:
        raise MappingError("org_mode_unknown", f"Unknown organization mode {mode!r}.", field="org_mode")
    if policy.fallback_org_id is not None:
        reasons.append(_reason("org_fallback"))
        return OrgTarget(org_id=policy.fallback_org_id)
    return None


def _evaluate_roles(
    rules: RuleSet, record: SourceRecord, roles: Mapping[str, RoleInfo], reasons: list[Reason]
) -> tuple[frozenset[str], bool]:
    granted: set[str] = set()
    matched = False
    for rule in rules.role:
        if not rule.condition.matches(record):
            continue
        matched = True
        reasons.append(_reason("role_rule", rule))
        for slug in sorted(rule.roles):
            info = roles.get(slug)
            if info is None:
                reasons.append(_reason("role_unknown", rule, slug))
            elif info.grants_cloud_admin:
                reasons.append(_reason("role_cloud_admin_refused", rule, slug))
            elif info.is_admin and not rule.saved_by_cloud_admin:
                reasons.append(_reason("role_admin_refused", rule, slug))
            else:
                granted.add(slug)
    if not matched:
        reasons.append(_reason("default_roles"))
    return frozenset(granted), not matched


def evaluate(
    *,
    rules: Iterable[Rule] | RuleSet,
    record: SourceRecord,
    org_policy: OrgPolicy,
    roles: Mapping[str, RoleInfo],
) -> Outcome:
    """Evaluate a source's rules for one user. Raises ``MappingError`` only for a misconfigured
    ``org_policy`` (``validate_org_policy`` catches those before saving). Pass a ``RuleSet`` when
    evaluating many users with the same rules."""
    rules = RuleSet.of(rules)
    reasons: list[Reason] = []
    active = _evaluate_active(rules, record, reasons)
    org = _evaluate_org(rules, record, org_policy, reasons)
    granted, use_defaults = _evaluate_roles(rules, record, roles, reasons)
    return Outcome(active=active, org=org, roles=granted, use_default_roles=use_defaults, reasons=tuple(reasons))


# --------------------------------------------------------------------------------------------
# Validation before saving (the console's coded errors)


def validate_condition(condition: Condition) -> None:
    """Refuse a condition that could never work or could cost too much to evaluate."""
    if condition.kind not in set(ConditionKind):
        raise MappingError("condition_unknown", f"Unknown condition {condition.kind!r}.", field="condition")
    value = condition.value
    if not value.strip():
        raise MappingError("condition_value_required", "Enter the value to compare with.", field="value")
    if len(value) > MAX_CONDITION_VALUE_LENGTH:
        raise MappingError("condition_value_too_long",
                           f"Keep the value under {MAX_CONDITION_VALUE_LENGTH + 1} characters.", field="value")
    if condition.kind in (ConditionKind.ATTRIBUTE_EQUALS, ConditionKind.ATTRIBUTE_MATCHES):
        if not condition.attribute:
            raise MappingError("condition_attribute_required", "Enter the attribute to look at.", field="attribute")
        if not _ATTRIBUTE_NAME.fullmatch(condition.attribute):
            raise MappingError(
                "condition_attribute_invalid",
                "An attribute name starts with a letter and has only letters, digits and . _ : ; - "
                "(at most 120 characters).",
                field="attribute",
            )
    if condition.kind == ConditionKind.ATTRIBUTE_MATCHES:
        check_pattern(value)
    if condition.kind == ConditionKind.DN_UNDER and not is_valid_dn(value):
        raise MappingError("dn_invalid", "Enter a DN such as ou=Staff,dc=example,dc=com.", field="value")


def validate_rule(rule: Rule, *, roles: Mapping[str, RoleInfo], saver_is_cloud_admin: bool) -> Rule:
    """Check a rule an admin is saving; return it stamped with ``saved_by_cloud_admin``.

    Refuses Customer Cloud Admin in any rule, and admin roles unless the saver is a Cloud Admin.
    """
    validate_condition(rule.condition)
    if rule.kind not in set(RuleKind):
        raise MappingError("rule_kind_unknown", f"Unknown rule kind {rule.kind!r}.", field="kind")
    if rule.kind == RuleKind.ORG:
        if rule.org_id is None:
            raise MappingError("org_required", "Choose the organization this rule puts users in.", field="target_org")
    elif rule.org_id is not None:
        raise MappingError("org_not_allowed", "Only organization rules name an organization.", field="target_org")
    if rule.kind == RuleKind.ROLE:
        if not rule.roles:
            raise MappingError("roles_required", "Choose at least one role.", field="roles")
        for slug in sorted(rule.roles):
            info = roles.get(slug)
            if info is None:
                raise MappingError("role_unknown", f"There is no role {slug!r}.", field="roles")
            if info.grants_cloud_admin:
                raise MappingError("role_cloud_admin_not_mappable",
                                   "Customer Cloud Admin can only be granted by hand, never by a rule.", field="roles")
            if info.is_admin and not saver_is_cloud_admin:
                raise MappingError("role_admin_needs_cloud_admin",
                                   f"Only a Customer Cloud Admin may save a rule granting {slug!r}.", field="roles")
    elif rule.roles:
        raise MappingError("roles_not_allowed", "Only role rules grant roles.", field="roles")
    return replace(rule, saved_by_cloud_admin=saver_is_cloud_admin)


def validate_org_policy(policy: OrgPolicy) -> None:
    """Check a source's org settings before saving them."""
    if policy.mode not in set(OrgMode):
        raise MappingError("org_mode_unknown", f"Unknown organization mode {policy.mode!r}.", field="org_mode")
    if policy.mode == OrgMode.FIXED and policy.fixed_org_id is None:
        raise MappingError("fixed_org_required", "Choose the organization new users go to.", field="fixed_org")
    if policy.mode == OrgMode.ATTRIBUTE:
        if not policy.attribute:
            raise MappingError("org_attribute_required", "Name the attribute that holds the organization.",
                               field="org_attribute")
        if not _ATTRIBUTE_NAME.fullmatch(policy.attribute):
            raise MappingError("condition_attribute_invalid", "That is not a valid attribute name.",
                               field="org_attribute")
