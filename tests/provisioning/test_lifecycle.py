"""Block now, deactivate after the grace period; reactivation that respects admin blocks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from accounts.identity.service import apply_identity_change
from accounts.identity.types import IdentityChange, Mode, UserState
from accounts.models import AuditEvent
from provisioning.lifecycle import (
    deactivate_due,
    record_admin_block,
    source_says_active,
    source_says_inactive,
)
from provisioning.models import UserBlock


def state(user) -> str:
    user.profile.refresh_from_db()
    return user.profile.state


@pytest.fixture
def owned(source_factory, linked_user):
    source = source_factory("Okta", grace_period=timedelta(minutes=15))
    return source, linked_user(source, "ann"), linked_user(source, "bob")


def test_inactive_blocks_at_once_and_schedules_deactivation(owned):
    source, ann, bob = owned
    now = timezone.now()
    counts = source_says_inactive(source=source, user_ids=[ann.pk], now=now, reason="active=false")
    assert counts.blocked == 1
    assert state(ann) == UserState.BLOCKED
    assert User.objects.get(pk=ann.pk).is_active is False
    assert state(bob) == UserState.ACTIVE
    block = UserBlock.objects.get(user=ann)
    assert (block.source, block.blocked_by_label, block.reason) == (source, "Okta", "active=false")
    assert block.deactivate_after == now + timedelta(minutes=15)
    event = AuditEvent.objects.get(action="user.blocked", target_label="ann")
    assert (event.actor_label, event.actor_type, event.source) == ("Okta", "provider", "scim")


def test_sweep_deactivates_only_when_due(owned):
    source, ann, _ = owned
    now = timezone.now()
    source_says_inactive(source=source, user_ids=[ann.pk], now=now)
    assert deactivate_due(now=now + timedelta(minutes=14)).deactivated == 0
    assert state(ann) == UserState.BLOCKED
    assert deactivate_due(now=now + timedelta(minutes=15)).deactivated == 1
    assert state(ann) == UserState.DEACTIVATED
    assert UserBlock.objects.get(user=ann).deactivate_after is None
    assert deactivate_due(now=now + timedelta(hours=1)).deactivated == 0  # nothing left to do
    assert AuditEvent.objects.get(action="user.deactivated", target_label="ann").actor_label == "Okta"


def test_active_within_grace_unblocks(owned):
    source, ann, _ = owned
    source_says_inactive(source=source, user_ids=[ann.pk])
    counts = source_says_active(source=source, user_ids=[ann.pk])
    assert (counts.unblocked, counts.reactivated) == (1, 0)
    assert state(ann) == UserState.ACTIVE
    assert not UserBlock.objects.filter(user=ann).exists()
    assert deactivate_due(now=timezone.now() + timedelta(days=1)).deactivated == 0
    assert state(ann) == UserState.ACTIVE


def test_active_after_grace_reactivates(owned):
    source, ann, _ = owned
    now = timezone.now()
    source_says_inactive(source=source, user_ids=[ann.pk], now=now)
    deactivate_due(now=now + timedelta(minutes=20))
    counts = source_says_active(source=source, user_ids=[ann.pk])
    assert (counts.unblocked, counts.reactivated) == (0, 1)
    assert state(ann) == UserState.ACTIVE
    assert AuditEvent.objects.filter(action="user.reactivated", target_label="ann").count() == 1


def test_admin_block_is_not_lifted_by_source(owned, admin_actor):
    source, ann, _ = owned
    apply_identity_change(change=IdentityChange(user_id=ann.pk, state=UserState.BLOCKED, mode=Mode.UPDATE),
                          actor=admin_actor)
    record_admin_block(user_ids=[ann.pk], actor=admin_actor, reason="lost laptop")
    counts = source_says_active(source=source, user_ids=[ann.pk])
    assert counts.kept_admin_block == 1
    assert state(ann) == UserState.BLOCKED
    block = UserBlock.objects.get(user=ann)
    assert (block.source, block.blocked_by_label, block.reason) == (None, "admin", "lost laptop")


def test_source_gone_on_admin_blocked_user_deactivates_but_keeps_admin_reason(owned, admin_actor):
    source, ann, _ = owned
    apply_identity_change(change=IdentityChange(user_id=ann.pk, state=UserState.BLOCKED, mode=Mode.UPDATE),
                          actor=admin_actor)
    record_admin_block(user_ids=[ann.pk], actor=admin_actor, reason="investigation")
    now = timezone.now()
    counts = source_says_inactive(source=source, user_ids=[ann.pk], now=now)
    assert (counts.blocked, counts.kept_admin_block) == (0, 1)
    assert deactivate_due(now=now + timedelta(minutes=16)).deactivated == 1
    assert state(ann) == UserState.DEACTIVATED
    source_says_active(source=source, user_ids=[ann.pk])
    assert state(ann) == UserState.DEACTIVATED  # an admin's block: the source cannot bring her back
    assert UserBlock.objects.get(user=ann).reason == "investigation"


def test_legacy_block_without_row_counts_as_admin_block(owned, admin_actor):
    source, ann, _ = owned
    apply_identity_change(change=IdentityChange(user_id=ann.pk, state=UserState.BLOCKED, mode=Mode.UPDATE),
                          actor=admin_actor)
    source_says_inactive(source=source, user_ids=[ann.pk])
    assert UserBlock.objects.get(user=ann).source is None
    source_says_active(source=source, user_ids=[ann.pk])
    assert state(ann) == UserState.BLOCKED


def test_another_source_cannot_lift_a_block(owned, source_factory):
    source, ann, _ = owned
    source_says_inactive(source=source, user_ids=[ann.pk])
    other = source_factory("Other")
    counts = source_says_active(source=other, user_ids=[ann.pk])
    assert counts.unblocked == 0
    assert state(ann) == UserState.BLOCKED


def test_deactivated_users_are_not_blocked_again(owned):
    source, ann, _ = owned
    now = timezone.now()
    source_says_inactive(source=source, user_ids=[ann.pk], now=now)
    deactivate_due(now=now + timedelta(hours=1))
    counts = source_says_inactive(source=source, user_ids=[ann.pk], now=now + timedelta(hours=2))
    assert counts.blocked == 0
    assert state(ann) == UserState.DEACTIVATED
    assert UserBlock.objects.get(user=ann).deactivate_after is None
