"""Issue 7 §6: bulk results are compact - ids, codes and field names, never model objects - so a
100k-row run keeps little in memory; only the single-change entry point hands back the saved user."""

from __future__ import annotations

import pytest
from django.db import models

from accounts.identity.service import apply_identity_change, apply_identity_changes
from accounts.identity.types import ChangeResult, IdentityChange, Mode

pytestmark = pytest.mark.django_db


def model_objects_in(result: ChangeResult) -> list[str]:
    found = []
    for name in ChangeResult.__slots__:
        value = getattr(result, name)
        values = value if isinstance(value, (list, tuple, set)) else [value]
        found += [name for v in values if isinstance(v, models.Model)]
    return found


def test_bulk_results_hold_no_model_objects(root_org, user_factory, system_actor):
    existing = user_factory("existing")
    result = apply_identity_changes(actor=system_actor, changes=[
        IdentityChange(username="fresh", org_id=root_org.pk, mode=Mode.CREATE, ref=1),
        IdentityChange(user_id=existing.pk, first_name="Changed", ref=2),
        IdentityChange(username="existing", org_id=root_org.pk, mode=Mode.CREATE, ref=3)])
    assert [r.status for r in result.results] == ["created", "updated", "refused"]
    assert [model_objects_in(r) for r in result.results] == [[], [], []]
    assert result.results[0].user_id and result.results[1].user_id == existing.pk
    assert result.results[1].changed_fields == ["first_name"]
    assert result.results[2].error.code == "username_taken"


def test_single_change_returns_the_saved_user(root_org, system_actor):
    result = apply_identity_change(actor=system_actor, change=IdentityChange(
        username="single", org_id=root_org.pk, mode=Mode.CREATE))
    assert result.user.pk == result.user_id and result.user.username == "single"
