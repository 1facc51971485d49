"""POST /Users for a userName idm already has: adoption when enabled, the provider's DELETEd user
coming back, 409 ``uniqueness`` otherwise (issue 9, "Scope" and "Semantics")."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from accounts.identity.types import UserState
from accounts.models import AuditEvent, ExternalIdentity
from provisioning.lifecycle import deactivate_due
from provisioning.models import UserBlock
from provisioning.scim.models import ScimResource
from sso.models import IdentityProvider

pytestmark = pytest.mark.django_db
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def body(username: str, **extra) -> dict:
    return {"schemas": [CORE_USER], "userName": username, "name": {"givenName": "Ann", "familyName": "Lee"},
            "emails": [{"value": "ann.lee@example.com", "type": "work", "primary": True}], **extra}


def conflict(username: str) -> dict:
    # The detail never says whose the colliding user is (review F11); ``username`` names the case.
    return {"schemas": [ERROR], "status": "409", "scimType": "uniqueness", "detail": "userName is already taken."}


@pytest.fixture
def adopting(provider):
    source, _ = provider
    source.adoption_enabled = True
    source.save(update_fields=["adoption_enabled"])
    return source


def test_post_adopts_an_existing_user_when_adoption_is_enabled(scim, adopting, user_factory):
    ann = user_factory("ann", email="ann@example.com")
    response = scim.post("/Users", body("ANN", externalId="okta-1"))
    assert response.status_code == 201, response.doc
    doc = response.doc
    assert doc["userName"] == "ANN" and doc["externalId"] == "okta-1" and doc["meta"]["version"] == 'W/"1"'
    assert response["Location"].endswith(f"/Users/{doc['id']}")
    ann.refresh_from_db()
    assert User.objects.count() == 1  # adopted, not created beside her
    assert (ann.first_name, ann.email) == ("Ann", "ann.lee@example.com")
    assert ann.profile.owner_source == adopting and ann.profile.source == "scim"
    link = ExternalIdentity.objects.get(user=ann, source="scim")
    assert (link.provider, link.external_id) == (adopting.slug, doc["id"])
    adopted = AuditEvent.objects.get(action="user.adopted", target_id=str(ann.pk))
    assert (adopted.actor_label, adopted.actor_type, adopted.source) == ("Okta", "provider", "scim")
    assert adopted.request_id and adopted.request_id == AuditEvent.objects.get(
        action="user.updated", field="first_name", target_id=str(ann.pk)).request_id
    # From now on it is the provider's user like any other.
    assert scim.get(f"/Users/{doc['id']}").doc["emails"][0]["value"] == "ann.lee@example.com"
    again = scim.post("/Users", body("ann"))
    assert again.status_code == 409 and again.doc == conflict("ANN")


@pytest.mark.parametrize("enabled", [False, True])
def test_post_of_an_existing_user_without_adoption_is_409_and_changes_nothing(scim, provider, user_factory,
                                                                              enabled):
    source, _ = provider
    source.adoption_enabled = enabled
    source.save(update_fields=["adoption_enabled"])
    # Adoption on: these three are never adopted. Off: nobody is.
    ann = user_factory("ann", email="ann@example.com")
    admin = user_factory("boss", roles=["customer-cloud-admin"])
    glass = user_factory("glass")
    IdentityProvider.objects.create(name="IdP", entity_id="https://idp.example.com").break_glass_users.add(glass)
    names = ["boss", "glass"] + ([] if enabled else ["ann"])
    for name in names:
        response = scim.post("/Users", body(name.upper()))
        assert response.status_code == 409, (name, response.doc)
        assert response.doc == conflict(name)
    assert not ScimResource.objects.exists()
    assert not ExternalIdentity.objects.filter(source="scim").exists()
    assert not AuditEvent.objects.filter(action="user.adopted").exists()
    for user in (ann, admin, glass):
        user.profile.refresh_from_db()
        assert user.profile.owner_source_id is None and user.profile.source == "local"


def test_post_never_adopts_another_providers_user(scim, adopting, other_scim):
    created = other_scim.post("/Users", body("carl"))
    assert created.status_code == 201
    response = scim.post("/Users", body("carl"))
    assert response.status_code == 409 and response.doc == conflict("carl")
    carl = User.objects.get(username="carl")
    assert carl.profile.owner_source.name == "Entra"
    assert not ExternalIdentity.objects.filter(user=carl, provider=adopting.slug).exists()


def test_repost_after_delete_brings_the_same_user_back(scim, provider, other_scim):
    source, _ = provider
    first = scim.post("/Users", body("ann", externalId="okta-1"))
    uid = first.doc["id"]
    ann = User.objects.get(username="ann")
    assert scim.delete(f"/Users/{uid}").status_code == 204
    ann.profile.refresh_from_db()
    assert ann.profile.state == UserState.BLOCKED

    # Another provider still gets 409: the DELETEd user stays this provider's.
    assert other_scim.post("/Users", body("ann")).doc == conflict("ann")

    again = scim.post("/Users", body("Ann", externalId="okta-2", title="CTO"))
    assert again.status_code == 201, again.doc
    assert again.doc["id"] == uid and again.doc["active"] is True and again.doc["externalId"] == "okta-2"
    assert again.doc["title"] == "CTO" and again.doc["meta"]["version"] == 'W/"3"'
    assert User.objects.filter(username__iexact="ann").get().pk == ann.pk
    ann.profile.refresh_from_db()
    assert ann.profile.state == UserState.ACTIVE
    assert not UserBlock.objects.filter(user=ann).exists()
    unblocked = AuditEvent.objects.filter(target_id=str(ann.pk), field="state").order_by("id").last()
    assert (unblocked.old_value, unblocked.new_value, unblocked.actor_label) == ("blocked", "active", "Okta")
    assert scim.get(f"/Users/{uid}").status_code == 200
    assert scim.get('/Users?filter=userName eq "ann"').doc["totalResults"] == 1
    # Live again: a second POST is the ordinary conflict.
    assert scim.post("/Users", body("ann")).doc == conflict("Ann")


def test_repost_after_the_grace_period_reactivates(scim, provider):
    uid = scim.post("/Users", body("ann")).doc["id"]
    assert scim.delete(f"/Users/{uid}").status_code == 204
    deactivate_due(now=timezone.now() + provider[0].grace_period + timedelta(seconds=1))
    ann = User.objects.get(username="ann")
    assert ann.profile.state == UserState.DEACTIVATED and not ann.is_active
    again = scim.post("/Users", body("ann"))
    assert again.status_code == 201 and again.doc["id"] == uid
    ann.refresh_from_db()
    ann.profile.refresh_from_db()
    assert ann.profile.state == UserState.ACTIVE and ann.is_active
    event = AuditEvent.objects.filter(target_id=str(ann.pk), field="state").order_by("id").last()
    assert (event.old_value, event.new_value, event.actor_label) == ("deactivated", "active", "Okta")


def test_repost_after_delete_with_active_false_stays_blocked(scim, provider):
    uid = scim.post("/Users", body("ann")).doc["id"]
    assert scim.delete(f"/Users/{uid}").status_code == 204
    again = scim.post("/Users", body("ann", active=False))
    assert again.status_code == 201 and again.doc["active"] is False
    assert User.objects.get(username="ann").profile.state == UserState.BLOCKED


@pytest.mark.parametrize("enabled", [False, True])
def test_a_provider_adopts_only_into_its_own_source_with_adoption_enabled(provider, other_scim, user_factory,
                                                                          enabled):
    """The identity service's guard, below the SCIM view: a provider actor asking to adopt."""
    from accounts.exceptions import PolicyDenied
    from accounts.identity.service import apply_identity_change
    from accounts.identity.types import ExternalLink, IdentityChange, Mode
    from provisioning.lifecycle import source_actor
    from provisioning.models import Source

    source, _ = provider
    source.adoption_enabled = enabled
    source.save(update_fields=["adoption_enabled"])
    entra = Source.objects.get(name="Entra")
    ann = user_factory("ann")

    def adopt(into: Source, actor_source: Source):
        return apply_identity_change(actor=source_actor(actor_source), change=IdentityChange(
            user_id=ann.pk, mode=Mode.UPDATE, owner_source_id=into.pk,
            link=ExternalLink(source="scim", provider=into.slug, external_id="x1")))

    with pytest.raises(PolicyDenied) as refused:
        adopt(source, entra)  # another provider adopting for this one
    assert refused.value.code == "not_owner"
    if not enabled:
        with pytest.raises(PolicyDenied) as refused:
            adopt(source, source)
        assert refused.value.code == "adoption_not_allowed"
        return
    assert adopt(source, source).changed_fields == ["owner", "link"]
    ann.profile.refresh_from_db()
    assert ann.profile.owner_source_id == source.pk
