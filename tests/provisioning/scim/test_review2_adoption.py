"""The second outside review's adoption findings, reproduced through the console views and SCIM over
HTTP: who may enable adoption (N2), what a provider may adopt by POST (N2, N8), what it is told when
refused (N4), and the fallback org of an attribute-mode source (N11b)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from accounts.identity.service import apply_identity_change
from accounts.identity.types import Actor, IdentityChange, Mode, UserState
from accounts.models import AuditEvent, ExternalIdentity
from provisioning.models import JournalEntry, ProvisioningRun, Source
from provisioning.scim.models import ScimResource

pytestmark = pytest.mark.django_db
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
TAKEN = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "409", "scimType": "uniqueness",
         "detail": "userName is already taken."}
ATTACKER = "pwn@attacker.example"


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _source_post(source: Source, **fields) -> dict:
    data = {"name": source.name, "enabled": "on", "adopt_by": "username", "org_mode": source.org_mode,
            "fixed_org": source.fixed_org_id or "", "grace_minutes": "15"}
    data.update(fields)
    return data


def _post(scim, username: str, email: str | None = ATTACKER, **extra):
    body = {"schemas": [USER, ENTERPRISE], "userName": username, **extra}
    if email:
        body["emails"] = [{"value": email, "primary": True}]
    return scim.post("/Users", body)


@pytest.fixture
def adopting(provider):
    """The provider with adoption enabled by a Customer Cloud Admin (here: set directly)."""
    source, _ = provider
    Source.objects.filter(pk=source.pk).update(adoption_enabled=True)
    source.refresh_from_db()
    return source


def test_n2_only_a_global_user_manager_enables_adoption(user_factory, admin_client, provider):
    """N2 step 1: an IMA (manage_identity only) may not switch adoption on for a provider with no admin
    rules (a SCIM POST may then match any user in any org); a Cross Org Admin who manages users in
    every org, or a Cloud Admin, may."""
    source, _ = provider
    url = f"/provisioning/sources/{source.pk}/edit/"
    ima = _client(user_factory("ivan.identity", roles=["identity-management-administrator"]))
    response = ima.post(url, _source_post(source, adoption_enabled="on"))
    assert response.status_code == 200 and "source_needs_cloud_admin" in response.content.decode()
    source.refresh_from_db()
    assert source.adoption_enabled is False
    cross = _client(user_factory("carl.cross", roles=["identity-management-administrator", "cross-org-admin"]))
    assert cross.post(url, _source_post(source, adoption_enabled="on")).status_code == 302
    source.refresh_from_db()
    assert source.adoption_enabled is True
    assert admin_client.post(url, _source_post(source, adoption_enabled="on", adopt_by="email")).status_code == 302
    # Switching it off again is fine for the IMA.
    assert ima.post(url, _source_post(source)).status_code == 302
    source.refresh_from_db()
    assert source.adoption_enabled is False


@pytest.mark.parametrize("roles", [["cross-org-admin"], ["org-admin"], ["help-desk"], ["audit-log-viewer"], ["multi-factor-auth-admin"]])
def test_n2_n4_provider_never_adopts_a_user_holding_a_role_it_did_not_grant(adopting, scim, user_factory, roles):
    """N2 step 2: a POST of an admin's userName (with or without an email) is refused like any taken
    userName (N4: no reason in the answer); the user stays unowned and keeps their email; the journal
    and the audit say why."""
    admin = user_factory("alice.admin", email="alice@corp.example", roles=roles)
    for email in (ATTACKER, None):
        response = _post(scim, "alice.admin", email, name={"givenName": "Pwned"})
        assert response.status_code == 409 and response.doc == TAKEN
    admin.refresh_from_db()
    assert admin.email == "alice@corp.example" and admin.first_name != "Pwned"
    assert admin.profile.owner_source_id is None and admin.profile.source == "local"
    assert not ScimResource.objects.exists() and not ExternalIdentity.objects.filter(source="scim").exists()
    refusals = JournalEntry.objects.filter(run__kind=ProvisioningRun.Kind.ADOPTION, run__source=adopting,
                                           result=JournalEntry.Result.REFUSED, user_id=admin.pk)
    assert [e.code for e in refusals] == ["role_not_from_source"] * 2
    event = AuditEvent.objects.filter(action="user.adoption_refused", target_id=str(admin.pk)).first()
    assert event is not None and event.new_value["code"] == "role_not_from_source"
    assert roles[0] in event.new_value["reason"]


@pytest.mark.parametrize("state", [UserState.BLOCKED, UserState.DEACTIVATED])
def test_n8_provider_never_adopts_a_user_an_admin_blocked(adopting, scim, user_factory, admin_user, state):
    """N8: bob.blocked / dave.former are not adopted by POST (so never reported active:true nor
    given the attacker's email); the answer is the generic 409."""
    bob = user_factory("bob.blocked", email="bob@corp.example")
    apply_identity_change(change=IdentityChange(user_id=bob.pk, mode=Mode.UPDATE, state=state),
                          actor=Actor.for_user(admin_user))
    response = _post(scim, "bob.blocked", active=True)
    assert response.status_code == 409 and response.doc == TAKEN
    bob.refresh_from_db()
    assert (bob.email, bob.is_active, bob.profile.state) == ("bob@corp.example", False, state)
    assert bob.profile.owner_source_id is None and not ScimResource.objects.exists()
    assert JournalEntry.objects.filter(user_id=bob.pk, code="adoption_user_inactive").exists()


def test_n2_provider_still_adopts_a_plain_user(adopting, scim, user_factory):
    """The rule refuses only what it must: a plain user (sign-in roles only) is adopted as before."""
    nina = user_factory("nina.new", email="nina@corp.example")
    response = _post(scim, "nina.new", "nina@new.example")
    assert response.status_code == 201, response.doc
    nina.refresh_from_db()
    assert nina.email == "nina@new.example" and nina.profile.owner_source_id == adopting.pk


def test_n11b_attribute_mode_unknown_department_uses_the_fallback_org(admin_client, provider, scim, org_factory):
    """N11b: attribute mode with a fallback org (no create-under): an unknown department places the
    new user in the fallback org, with the reason in the journal, instead of 400 "Choose an organization."."""
    source, _ = provider
    sales = org_factory("Sales")
    assert admin_client.post(f"/provisioning/sources/{source.pk}/edit/", _source_post(
        source, org_mode="attribute", org_attribute="department", fallback_org=sales.pk,
        fixed_org="")).status_code == 302
    response = _post(scim, "una.known", "una@corp.example", **{ENTERPRISE: {"department": "Nowhere Dept"}})
    assert response.status_code == 201, response.doc
    assert User.objects.get(username="una.known").profile.org_id == sales.pk
    known = _post(scim, "kim.sales", "kim@corp.example", **{ENTERPRISE: {"department": "Sales"}})
    assert known.status_code == 201 and User.objects.get(username="kim.sales").profile.org_id == sales.pk


def test_n11b_attribute_mode_with_create_under_places_an_unknown_department(admin_client, provider, scim,
                                                                            org_factory):
    """N11b as reported (create under Sales, fallback Sales): an unknown department is a new org under
    Sales or, failing that, the fallback; never 400 "Choose an organization."."""
    source, _ = provider
    sales = org_factory("Sales")
    assert admin_client.post(f"/provisioning/sources/{source.pk}/edit/", _source_post(
        source, org_mode="attribute", org_attribute="department", org_create_under=sales.pk, fallback_org=sales.pk,
        fixed_org="")).status_code == 302
    for name, dept in (("una.known", "Nowhere Dept"), ("pat.path", "Acme/Engineering")):
        response = _post(scim, name, f"{name}@corp.example", **{ENTERPRISE: {"department": dept}})
        assert response.status_code == 201, (dept, response.doc)
        org = User.objects.get(username=name).profile.org
        assert org.path.startswith(sales.path), (dept, org)
