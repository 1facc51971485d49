"""Who an assertion signs in: existing users only by default, linking, state, provider, JIT."""

from __future__ import annotations

from django.contrib.auth.models import User

from accounts.identity.orgs import org_update_settings
from accounts.identity.service import apply_identity_change
from accounts.identity.types import AuthMethod, IdentityChange, Mode, UserState
from accounts.models import AuditEvent, ExternalIdentity
from sso.attributes import OID_UID
from tests.sso.test_acs import failure, signed_in


def test_unknown_user_refused_and_never_created(acs, sso_org):
    failure(acs.login(name_id="nobody"), "unknown_user")
    assert not User.objects.filter(username="nobody").exists()


def test_blocked_user_refused(acs, sso_user, system_actor):
    apply_identity_change(change=IdentityChange(user_id=sso_user.pk, state=UserState.BLOCKED, mode=Mode.UPDATE),
                          actor=system_actor)
    body = failure(acs.login(), "user_blocked")
    assert body.target_label == "alice"


def test_deactivated_user_refused(acs, sso_user, system_actor):
    apply_identity_change(change=IdentityChange(user_id=sso_user.pk, state=UserState.DEACTIVATED,
                                                mode=Mode.UPDATE), actor=system_actor)
    failure(acs.login(), "user_deactivated")


def test_user_of_a_local_org_refused(acs, user_factory):
    user_factory("alice")  # root org: local sign-in
    failure(acs.login(), "wrong_provider")


def test_user_of_an_org_using_another_provider_refused(acs, user_factory, org_factory, provider_factory, idp,
                                                       system_actor):
    other = provider_factory("Other", metadata=idp.metadata().replace(idp.entity_id, "https://other.example/idp"))
    org = org_factory("Other org")
    org_update_settings(actor=system_actor, org=org, auth_method=AuthMethod.SSO, auth_provider=other)
    user_factory("alice", org=org, password=None, state="active")
    failure(acs.login(), "wrong_provider")


def test_child_org_inherits_sso(acs, user_factory, org_factory, sso_org):
    child = org_factory("Child", parent=sso_org)
    user = user_factory("alice", org=child, password=None, state="active")
    signed_in(acs.login(), user)


def test_username_is_case_insensitive(acs, sso_user):
    signed_in(acs.login(name_id="ALICE"), sso_user)


def test_link_survives_username_change_at_idp(acs, sso_user, provider):
    """Username from an attribute, link on the (stable) NameID: a renamed user still signs in as themself."""
    provider.use_default_mapping = False
    provider.username_attribute = OID_UID  # pysaml2's IdP sends "uid" under its urn:oid name
    provider.save()
    signed_in(acs.login(name_id="00u123", attributes={"uid": ["alice"]}), sso_user)
    assert ExternalIdentity.objects.get(user=sso_user).external_id == "00u123"
    acs.client.logout()
    signed_in(acs.login(name_id="00u123", attributes={"uid": ["alice.renamed"]}), sso_user)


def test_link_is_per_provider(acs, sso_user, provider):
    signed_in(acs.login(), sso_user)
    link = ExternalIdentity.objects.get(user=sso_user)
    assert link.provider == str(provider.pk)
    assert AuditEvent.objects.filter(action="user.linked", target_label="alice").exists()


def test_jit_creates_user_in_chosen_org_through_identity_service(acs, provider, sso_org):
    provider.jit_enabled = True
    provider.jit_org = sso_org
    provider.save()
    resp = acs.login(name_id="newbie", attributes={"mail": ["newbie@example.com"], "givenName": ["New"],
                                                   "sn": ["Bie"]})
    user = User.objects.get(username="newbie")
    signed_in(resp, user)
    assert (user.email, user.first_name, user.last_name, user.profile.org) == (
        "newbie@example.com", "New", "Bie", sso_org)
    assert user.profile.source == "saml"
    assert ExternalIdentity.objects.filter(user=user, external_id="newbie").exists()
    created = AuditEvent.objects.get(action="user.created", target_label="newbie")
    assert created.actor_type == "provider" and created.source == "saml"


def test_jit_refused_when_org_does_not_use_provider(acs, provider, org_factory):
    provider.jit_enabled = True
    provider.jit_org = org_factory("Local org")
    provider.save()
    failure(acs.login(name_id="newbie"), "jit_misconfigured")
    assert not User.objects.filter(username="newbie").exists()


def test_missing_username_attribute_refused(acs, sso_user, provider):
    provider.use_default_mapping = False
    provider.username_attribute = "uid"
    provider.save()
    failure(acs.login(attributes={"mail": ["a@example.com"]}), "no_username")


def test_session_ends_when_user_is_blocked_later(acs, sso_user, system_actor):
    signed_in(acs.login(), sso_user)
    apply_identity_change(change=IdentityChange(user_id=sso_user.pk, state=UserState.BLOCKED, mode=Mode.UPDATE),
                          actor=system_actor)
    assert acs.client.get("/").wsgi_request.user.is_authenticated is False
