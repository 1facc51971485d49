"""Adoption preview: who a source would take over, and why not."""

from __future__ import annotations

import pytest

from provisioning.adoption import AdoptionCandidate, plan_adoption
from sso.models import IdentityProvider


def codes(decisions) -> list[tuple[str, str]]:
    return [(d.candidate.external_id, d.code) for d in decisions]


@pytest.fixture
def people(user_factory, admin_user):
    return {
        "ann": user_factory("ann", email="ann@example.com"),
        "bob": user_factory("bob", email="shared@example.com"),
        "bo2": user_factory("bob2", email="shared@example.com"),
        "glass": user_factory("glass", email="glass@example.com"),
        "admin": admin_user,
    }


def test_adoption_off_adopts_nobody(source_factory, people):
    source = source_factory(adoption_enabled=False)
    decisions = plan_adoption(source=source, candidates=[AdoptionCandidate("1", username="ann")])
    assert codes(decisions) == [("1", "adoption_disabled")]
    assert decisions[0].message == "Adoption is off for this source."
    assert decisions[0].adopt is False


def test_adoption_by_username(source_factory, people, linked_user):
    source = source_factory(adoption_enabled=True, adopt_by="username")
    provider = IdentityProvider.objects.create(name="IdP", entity_id="https://idp.example.com")
    provider.break_glass_users.add(people["glass"])
    other = source_factory("Other")
    owned = linked_user(other, "carl")
    linked_user(source, "dora")
    decisions = plan_adoption(source=source, candidates=[
        AdoptionCandidate("1", username="ANN"),
        AdoptionCandidate("2", username="nobody"),
        AdoptionCandidate("3", username="glass"),
        AdoptionCandidate("4", username="admin"),
        AdoptionCandidate("5", username="carl"),
        AdoptionCandidate("ext-dora", username="dora"),
        AdoptionCandidate("7", username="ann"),
    ])
    assert codes(decisions) == [("1", "adopt"), ("2", "no_match"), ("3", "break_glass"), ("4", "cloud_admin"),
                                ("5", "owned_by_other_source"), ("ext-dora", "already_linked"),
                                ("7", "claimed_twice")]
    assert decisions[0].user_id == people["ann"].pk
    assert decisions[0].username == "ann"
    assert decisions[4].user_id == owned.pk
    assert decisions[4].message == "Another source owns this user; two sources never own one user."


def test_adoption_by_email_reports_ambiguity(source_factory, people):
    source = source_factory(adoption_enabled=True, adopt_by="email")
    decisions = plan_adoption(source=source, candidates=[
        AdoptionCandidate("1", username="x", email="Ann@Example.com"),
        AdoptionCandidate("2", username="y", email="shared@example.com"),
        AdoptionCandidate("3", username="ann", email=""),
    ])
    assert codes(decisions) == [("1", "adopt"), ("2", "match_ambiguous"), ("3", "no_match")]


def test_adoption_plan_query_count_does_not_grow(source_factory, people, django_assert_max_num_queries):
    source = source_factory(adoption_enabled=True)
    candidates = [AdoptionCandidate(str(i), username=f"user{i}") for i in range(500)]
    with django_assert_max_num_queries(7):
        assert len(plan_adoption(source=source, candidates=candidates)) == 500
