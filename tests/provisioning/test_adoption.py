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


# --- applying an adoption ---------------------------------------------------------------------

from accounts.exceptions import PolicyDenied  # noqa: E402
from accounts.identity.service import apply_identity_change  # noqa: E402
from accounts.identity.types import ExternalLink, IdentityChange, Mode  # noqa: E402
from accounts.models import AuditEvent, ExternalIdentity, UserProfile  # noqa: E402
from provisioning.adoption import apply_adoption  # noqa: E402
from provisioning.models import JournalEntry  # noqa: E402


def owner_of(user) -> tuple:
    profile = UserProfile.objects.get(user=user)
    return profile.owner_source_id, profile.source, profile.source_provider


def test_apply_adopts_through_the_service_audited_and_journaled(source_factory, people, admin_actor):
    source = source_factory("Okta", slug="okta", adoption_enabled=True)
    provider = IdentityProvider.objects.create(name="IdP", entity_id="https://idp.example.com")
    provider.break_glass_users.add(people["glass"])
    run = apply_adoption(source=source, actor=admin_actor, candidates=[
        AdoptionCandidate("u-ann", username="ann"), AdoptionCandidate("u-glass", username="glass"),
        AdoptionCandidate("u-admin", username="admin"), AdoptionCandidate("u-new", username="nobody")])
    assert run.status == "succeeded"
    assert run.kind == "adoption"
    assert run.counts == {"candidates": 4, "adopted": 1, "refused": 0, "skipped": 3, "already_linked": 0}
    assert owner_of(people["ann"]) == (source.pk, "scim", "okta")
    link = ExternalIdentity.objects.get(user=people["ann"])
    assert (link.source, link.provider, link.external_id) == ("scim", "okta", "u-ann")
    adopted = AuditEvent.objects.get(action="user.adopted")
    assert (adopted.target_label, adopted.old_value, adopted.new_value) == ("ann", "Console", "SCIM provisioning (okta)")
    assert (adopted.actor_label, adopted.job_id) == ("admin", run.run_id)
    assert AuditEvent.objects.filter(action="user.linked", target_label="ann", job_id=run.run_id).count() == 1
    assert set(JournalEntry.objects.filter(run=run).values_list("user_label", "subject", "result", "code")) == {
        ("ann", "owner", "applied", ""), ("ann", "link", "applied", ""),
        ("glass", "adoption", "refused", "break_glass"), ("admin", "adoption", "refused", "cloud_admin"),
        ("nobody", "adoption", "refused", "no_match")}
    assert owner_of(people["glass"])[0] is None
    assert owner_of(people["admin"])[0] is None


def test_apply_is_idempotent(source_factory, people, admin_actor):
    source = source_factory("Okta", adoption_enabled=True, adopt_by="email")
    candidates = [AdoptionCandidate("u-ann", username="whatever", email="ANN@example.com")]
    assert apply_adoption(source=source, actor=admin_actor, candidates=candidates).counts["adopted"] == 1
    again = apply_adoption(source=source, actor=admin_actor, candidates=candidates)
    assert again.counts == {"candidates": 1, "adopted": 0, "refused": 0, "skipped": 0, "already_linked": 1}
    assert AuditEvent.objects.filter(action="user.adopted").count() == 1
    assert ExternalIdentity.objects.filter(user=people["ann"]).count() == 1
    assert not again.entries.exists()


def test_a_user_adopted_meanwhile_by_another_source_is_reported(source_factory, people, admin_actor):
    okta = source_factory("Okta", slug="okta", adoption_enabled=True)
    ldap = source_factory("Directory", slug="corp", kind="ldap", adoption_enabled=True)
    candidates = [AdoptionCandidate("u-ann", username="ann")]
    assert [d.code for d in plan_adoption(source=okta, candidates=candidates)] == ["adopt"]  # the preview
    apply_adoption(source=ldap, actor=admin_actor, candidates=[AdoptionCandidate("cn=ann", username="ann")])
    run = apply_adoption(source=okta, actor=admin_actor, candidates=candidates)
    assert run.counts["adopted"] == 0
    entry = JournalEntry.objects.get(run=run)
    assert (entry.code, entry.result, entry.user_id) == ("owned_by_other_source", "refused", people["ann"].pk)
    assert owner_of(people["ann"]) == (ldap.pk, "ldap", "corp")
    assert not ExternalIdentity.objects.filter(provider="okta").exists()


def test_service_rechecks_an_adoption_at_write_time(source_factory, people, admin_actor, linked_user):
    """The planner refuses what the (stale) plan allowed: the rules hold inside the write."""
    okta = source_factory("Okta", slug="okta")
    other = source_factory("Other", slug="other")
    carl = linked_user(other, "carl")

    def adopt(user, ext):
        return IdentityChange(user_id=user.pk, mode=Mode.UPDATE, owner_source_id=okta.pk,
                              link=ExternalLink(source="scim", provider="okta", external_id=ext))

    cases = [(carl, "owned_by_other_source", "carl is managed by SCIM provisioning (other); two sources never own "
                                             "one user."),
             (people["admin"], "cloud_admin", "admin is a Customer Cloud Admin and is never adopted.")]
    for user, code, message in cases:
        with pytest.raises(PolicyDenied) as err:
            apply_identity_change(change=adopt(user, f"x-{user.pk}"), actor=admin_actor)
        assert (err.value.code, err.value.message) == (code, message)
    with pytest.raises(PolicyDenied) as err:  # a provider adopts by itself only when adoption is on (issue 9)
        apply_identity_change(change=adopt(people["ann"], "x"), actor=Actor_for(okta))
    assert err.value.code == "adoption_not_allowed"
    with pytest.raises(PolicyDenied) as err:  # and never for another source
        apply_identity_change(change=adopt(people["ann"], "x"), actor=Actor_for(other))
    assert err.value.code == "not_owner"
    with pytest.raises(PolicyDenied) as err:  # the link must be the adopting source's
        apply_identity_change(change=IdentityChange(user_id=people["ann"].pk, mode=Mode.UPDATE,
                                                    owner_source_id=okta.pk), actor=admin_actor)
    assert err.value.code == "adoption_link_required"
    assert owner_of(people["ann"])[0] is None


def Actor_for(source):  # noqa: N802
    from tests.provisioning.conftest import provider_actor

    return provider_actor(source)


def test_console_preview_then_apply(admin_client, source_factory, people):
    source = source_factory("Okta", adoption_enabled=True)
    detail = admin_client.get(f"/provisioning/sources/{source.pk}/").content.decode()
    assert f'href="/provisioning/sources/{source.pk}/adopt/">Adopt existing users</a>' in detail
    url = f"/provisioning/sources/{source.pk}/adopt/"
    text = "u-ann,ann,\nu-x,nobody,\n"
    page = admin_client.post(url, {"candidates": text, "action": "preview"}).content.decode()
    assert '<tr data-decision="adopt">' in page
    assert '<tr data-decision="no_match">' in page
    assert "data-adopt-apply>Adopt 1 user</button>" in page
    assert owner_of(people["ann"])[0] is None  # a preview writes nothing
    response = admin_client.post(url, {"candidates": text, "action": "apply"})
    run = source.runs.get(kind="adoption")
    assert response.status_code == 302
    assert response["Location"] == f"/provisioning/runs/{run.run_id}/"
    assert owner_of(people["ann"])[0] == source.pk
    event = AuditEvent.objects.get(action="provisioning_adoption_applied")
    assert event.new_value["run"] == run.run_id
    assert event.new_value["adopted"] == 1


def test_console_adoption_rejects_bad_input_and_needs_the_permission(admin_client, client, source_factory, people,
                                                                      user_factory):
    source = source_factory("Okta", adoption_enabled=True)
    url = f"/provisioning/sources/{source.pk}/adopt/"
    response = admin_client.post(url, {"candidates": "u-1,ann\nonly-an-id\n", "action": "apply"})
    assert response.status_code == 200
    assert "Line 2: expected external id, username, email." in response.content.decode()
    response = admin_client.post(url, {"candidates": "a,ann\na,bob\n", "action": "apply"})
    assert "Line 2: external id &#x27;a&#x27; appears twice." in response.content.decode()
    assert not source.runs.exists()
    client.force_login(user_factory("helper", roles=["help-desk"]))
    response = client.post(url, {"candidates": "u-ann,ann,", "action": "apply"})
    assert response.status_code == 403
    assert owner_of(people["ann"])[0] is None


def test_console_adoption_needs_csrf(source_factory, people, admin_user):
    from django.test import Client

    source = source_factory("Okta", adoption_enabled=True)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    response = strict.post(f"/provisioning/sources/{source.pk}/adopt/", {"candidates": "u-ann,ann,", "action": "apply"})
    assert response.status_code == 403
    assert owner_of(people["ann"])[0] is None
