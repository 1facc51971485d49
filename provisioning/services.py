"""Writes to the provisioning configuration: sources and their mapping rules, each audited with old
and new values. (User, role and group changes go through ``accounts.identity``, never here.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction

from accounts.access import Access
from accounts.exceptions import MappingError, NotFound, PolicyDenied
from accounts.identity.audit import record_event
from accounts.identity.types import Actor
from accounts.models import Organization, Role
from provisioning import policy as source_policy
from provisioning.models import MappingRule, Source
from provisioning.resolve import role_catalogue
from provisioning.rules import Condition, ConditionKind, Rule, RuleKind, validate_org_policy, validate_rule

SOURCE_FIELDS = ("name", "slug", "kind", "enabled", "grace_period", "adoption_enabled", "adopt_by", "org_mode",
                 "fixed_org_id", "org_attribute", "org_create_under_id", "fallback_org_id")


def actor_is_cloud_admin(actor: Actor) -> bool:
    """Customer Cloud Admins (and Django superusers) may save rules that grant admin roles."""
    return actor.user is not None and Access.of(actor.user).is_cloud_admin


def _plain(value: Any) -> Any:
    if hasattr(value, "total_seconds"):
        return int(value.total_seconds())
    return value


def _source_snapshot(source: Source) -> dict:
    return {name: _plain(getattr(source, name)) for name in SOURCE_FIELDS}


def source_save(*, actor: Actor, source: Source) -> Source:
    """Create or update a source (validated org policy), one audit event per changed setting.

    Refused (``PolicyDenied``) unless the actor may administer the source as it will be
    (``provisioning.policy``: it holds every power the source can exercise) and, for org or adoption
    settings, may point it there (review F1a, F1b).
    """
    validate_org_policy(source.org_policy())
    with transaction.atomic():
        # Lock, then read and judge: rule writes take the same row lock (``_lock_source``), so an
        # admin-granting rule saved meanwhile is seen by the checks, never raced past them.
        stored = _lock_source(source) if source.pk else None
        source_policy.check_source_settings_change(actor=actor, source=source, before=stored)
        source_policy.check_may_administer_source(actor=actor, source=source,
                                                  action="change" if stored is not None else "create")
        before = _source_snapshot(stored) if stored is not None else None
        source.save()
        after = _source_snapshot(source)
        if before is None:
            record_event(actor=actor, action="provisioning_source_created", target_type="source",
                         target_id=source.pk, target_label=source.name, new=after)
        for name in SOURCE_FIELDS:
            if before is not None and before[name] != after[name]:
                record_event(actor=actor, action="provisioning_source_updated", target_type="source",
                             target_id=source.pk, target_label=source.name, field=name,
                             old=before[name], new=after[name])
        source.revoked_credentials = _revoke_beyond_issuers(actor, source) if stored is not None else 0
    return source


def _revoke_beyond_issuers(actor: Actor, source: Source) -> int:
    """After a write that may raise a source's powers: its credentials whose issuer may no longer
    administer it stop working (``provisioning.scim.providers.revoke_beyond_issuers``); how many."""
    from provisioning.scim.providers import revoke_beyond_issuers  # the SCIM layer sits above this one

    return revoke_beyond_issuers(actor=actor, source=source)


def _lock_source(source: Source) -> Source:
    """The stored source, its row locked until the transaction ends. Settings changes, rule writes
    and credential rotations take this lock first and only then read what their checks judge."""
    return Source.objects.select_for_update().get(pk=source.pk)


@dataclass(frozen=True)
class RuleInput:
    """What the rules editor submits for one rule."""

    kind: str
    condition: str
    value: str
    attribute: str = ""
    position: int = 0
    target_org_id: int | None = None
    role_slugs: frozenset[str] = frozenset()


def _needs_cloud_admin(rule: MappingRule) -> bool:
    """A rule granting admin roles may be changed or deleted only by a Cloud Admin."""
    return rule.kind == MappingRule.Kind.ROLE and rule.roles.filter(is_admin_role=True).exists()


def rule_save(*, actor: Actor, source: Source, data: RuleInput, rule: MappingRule | None = None) -> MappingRule:
    """Create or update one rule after ``rules.validate_rule``; audited with old and new values.

    Raises ``MappingError`` (bad rule, forbidden role) or ``PolicyDenied`` (a non-Cloud-Admin
    touching a rule that grants admin roles).
    """
    with transaction.atomic():
        _lock_source(source)  # one writer per source's settings and rules; judged on what is stored now
        if rule is not None:
            rule = MappingRule.objects.filter(pk=rule.pk).first()
            if rule is None:
                raise NotFound("rule_not_found", "No such rule for this source.")
        return _rule_save(actor=actor, source=source, data=data, rule=rule)


def _rule_save(*, actor: Actor, source: Source, data: RuleInput, rule: MappingRule | None) -> MappingRule:
    cloud_admin = actor_is_cloud_admin(actor)
    if rule is not None and rule.source_id != source.pk:
        raise NotFound("rule_not_found", "No such rule for this source.")
    if rule is not None and not cloud_admin and _needs_cloud_admin(rule):
        raise PolicyDenied("rule_needs_cloud_admin", "Only a Customer Cloud Admin may change a rule that grants "
                           "admin roles.")
    try:
        kind, condition = RuleKind(data.kind), ConditionKind(data.condition)
    except ValueError:
        raise MappingError("rule_kind_unknown", "Choose a rule kind and a condition.", field="kind") from None
    if data.target_org_id is not None and not Organization.objects.filter(pk=data.target_org_id).exists():
        raise NotFound("org_not_found", "No such organization.", field="target_org")
    validate_rule(
        Rule(kind, Condition(condition, attribute=data.attribute.strip(), value=data.value.strip()),
             position=data.position, org_id=data.target_org_id, roles=data.role_slugs),
        roles=role_catalogue(), saver_is_cloud_admin=cloud_admin,
    )
    source_policy.check_rule_grants(  # "never more than you hold" (review F2)
        actor=actor, source=source, role_slugs=data.role_slugs if kind == RuleKind.ROLE else (),
        target_org=Organization.objects.filter(pk=data.target_org_id).first() if data.target_org_id else None)
    with transaction.atomic():
        before = rule.snapshot() if rule is not None else None
        rule = rule or MappingRule(source=source)
        rule.kind, rule.condition = kind.value, condition.value
        rule.attribute, rule.value = data.attribute.strip(), data.value.strip()
        rule.position = data.position
        rule.target_org_id = data.target_org_id
        rule.saved_by_cloud_admin = cloud_admin
        rule.saved_by = actor.console_user
        rule.saved_by_label = actor.label
        rule.save()
        rule.roles.set(Role.objects.filter(slug__in=data.role_slugs))
        after = rule.snapshot()
        record_event(actor=actor, action="provisioning_rule_created" if before is None else "provisioning_rule_updated",
                     target_type="source", target_id=source.pk, target_label=source.name,
                     field=f"rule:{rule.pk}", old=before, new=after)
        rule.revoked_credentials = _revoke_beyond_issuers(actor, source)
    return rule


def rule_delete(*, actor: Actor, rule: MappingRule) -> None:
    """Delete one rule (audited with its old values)."""
    with transaction.atomic():
        _lock_source(rule.source)
        rule = MappingRule.objects.filter(pk=rule.pk).first()
        if rule is None:
            raise NotFound("rule_not_found", "No such rule for this source.")
        if not actor_is_cloud_admin(actor) and _needs_cloud_admin(rule):
            raise PolicyDenied("rule_needs_cloud_admin", "Only a Customer Cloud Admin may delete a rule that grants "
                               "admin roles.")
        before = rule.snapshot()
        source = rule.source
        rule_id = rule.pk
        rule.delete()
        record_event(actor=actor, action="provisioning_rule_deleted", target_type="source", target_id=source.pk,
                     target_label=source.name, field=f"rule:{rule_id}", old=before, new=None)
