"""The console's block action records an admin block (``UserBlock`` without source), so a source saying
"active" does not undo it; the console's unblock lifts the record."""

from __future__ import annotations

from django.urls import reverse

from accounts.models import UserProfile
from provisioning.lifecycle import source_says_active, source_says_inactive
from provisioning.models import UserBlock


def state_of(user) -> str:
    return UserProfile.objects.get(user=user).state


def test_console_block_survives_a_source_saying_active(admin_client, source_factory, linked_user):
    source = source_factory("Okta")
    ann = linked_user(source, "ann")
    response = admin_client.post(reverse("accounts:user_state", args=[ann.pk, "block"]))
    assert response.status_code == 302
    assert state_of(ann) == "blocked"
    block = UserBlock.objects.get(user=ann)
    assert (block.source_id, block.blocked_by_label, block.reason) == (None, "admin", "Blocked in the console")
    counts = source_says_active(source=source, user_ids=[ann.pk])
    assert (counts.unblocked, counts.reactivated) == (0, 0)
    assert state_of(ann) == "blocked"


def test_admin_block_takes_over_a_source_block_and_unblock_lifts_it(admin_client, source_factory, linked_user):
    source = source_factory("Okta")
    ann = linked_user(source, "ann")
    source_says_inactive(source=source, user_ids=[ann.pk])
    assert UserBlock.objects.get(user=ann).source == source
    admin_client.post(reverse("accounts:user_state", args=[ann.pk, "block"]))  # already blocked: unchanged
    block = UserBlock.objects.get(user=ann)
    assert (block.source_id, block.deactivate_after) == (None, None)
    source_says_active(source=source, user_ids=[ann.pk])
    assert state_of(ann) == "blocked"
    admin_client.post(reverse("accounts:user_state", args=[ann.pk, "unblock"]))
    assert state_of(ann) == "active"
    assert not UserBlock.objects.filter(user=ann).exists()


def test_bulk_block_records_admin_blocks(admin_client, source_factory, linked_user):
    source = source_factory("Okta")
    ann, bob = linked_user(source, "ann"), linked_user(source, "bob")
    response = admin_client.post(reverse("accounts:user_bulk_state"),
                                 {"action": "block", "ids": [ann.pk, bob.pk], "confirmed": "1"})
    assert response.status_code == 302
    assert set(UserBlock.objects.filter(source=None).values_list("user_id", flat=True)) == {ann.pk, bob.pk}
    source_says_active(source=source, user_ids=[ann.pk, bob.pk])
    assert (state_of(ann), state_of(bob)) == ("blocked", "blocked")
    admin_client.post(reverse("accounts:user_bulk_state"), {"action": "unblock", "ids": [ann.pk], "confirmed": "1"})
    assert state_of(ann) == "active"
    assert list(UserBlock.objects.values_list("user_id", flat=True)) == [bob.pk]
