"""Issue 7 §5: a user matched by username who is linked to another account at the IdP is refused, not
relinked; an administrator unlinks on the user page (scope and privilege checked, audited)."""

from __future__ import annotations

from django.test import Client

from accounts.models import AuditEvent, ExternalIdentity
from tests.sso.test_acs import failure, signed_in
from tests.sso.test_users import OID_UID


def _by_uid(provider):
    provider.use_default_mapping = False
    provider.username_attribute = OID_UID  # pysaml2's IdP sends "uid" under its urn:oid name
    provider.email_attribute = ""
    provider.save()


def _login(acs, name_id: str, username: str = "alice"):
    return acs.login(name_id=name_id, attributes={"uid": [username], "mail": [f"{username}@example.com"]})


def test_second_idp_account_with_the_same_username_is_refused(acs, sso_user, provider):
    _by_uid(provider)
    signed_in(_login(acs, "idp-1"), sso_user)
    acs.client.logout()
    resp = _login(acs, "idp-2")
    event = failure(resp, "linked_to_other_account")
    assert resp.status_code == 403
    assert "linked to another account at this identity provider" in resp.content.decode()
    assert "'idp-1'" in event.message and "'idp-2'" in event.message
    link = ExternalIdentity.objects.get(user=sso_user)
    assert link.external_id == "idp-1"  # not overwritten
    assert not AuditEvent.objects.filter(action="user.linked", new_value__icontains="idp-2").exists()


def test_the_linked_account_still_signs_in(acs, sso_user, provider):
    _by_uid(provider)
    signed_in(_login(acs, "idp-1"), sso_user)
    acs.client.logout()
    signed_in(_login(acs, "idp-1"), sso_user)


def _link(acs, provider, sso_user):
    _by_uid(provider)
    signed_in(_login(acs, "idp-1"), sso_user)
    acs.client.logout()
    return ExternalIdentity.objects.get(user=sso_user)


def _admin(admin_user) -> Client:
    client = Client()  # not the ``client`` fixture: the AcsDriver signs that one in and out
    client.force_login(admin_user)
    return client


def test_admin_unlinks_then_the_new_account_links(acs, sso_user, provider, admin_user, client):
    link = _link(acs, provider, sso_user)
    client.force_login(admin_user)
    page = client.get(f"/users/{sso_user.pk}/").content.decode()
    assert f'action="/sso/users/{sso_user.pk}/links/{link.pk}/remove/"' in page
    resp = client.post(f"/sso/users/{sso_user.pk}/links/{link.pk}/remove/")
    assert resp.status_code == 302 and resp["Location"] == f"/users/{sso_user.pk}/"
    assert not ExternalIdentity.objects.filter(pk=link.pk).exists()
    event = AuditEvent.objects.get(action="user.unlinked")
    assert event.old_value == f"saml:{provider.pk}:idp-1" and event.actor == admin_user
    assert event.target_id == str(sso_user.pk)
    signed_in(_login(acs, "idp-2"), sso_user)
    assert ExternalIdentity.objects.get(user=sso_user).external_id == "idp-2"


def test_unlink_is_post_only(acs, sso_user, provider, admin_user):
    link = _link(acs, provider, sso_user)
    admin_client = _admin(admin_user)
    assert admin_client.get(f"/sso/users/{sso_user.pk}/links/{link.pk}/remove/").status_code == 405
    assert ExternalIdentity.objects.filter(pk=link.pk).exists()


def test_org_manager_cannot_unlink_a_more_privileged_user(acs, sso_user, sso_org, provider, user_factory, client,
                                                          system_actor):
    from accounts.identity.service import apply_identity_change
    from accounts.identity.types import IdentityChange, Mode
    from accounts.roles import CUSTOMER_CLOUD_ADMIN

    apply_identity_change(change=IdentityChange(user_id=sso_user.pk, roles_add=frozenset({CUSTOMER_CLOUD_ADMIN}),
                                                mode=Mode.UPDATE), actor=system_actor)
    link = _link(acs, provider, sso_user)
    manager = user_factory("manager", org=sso_org, roles=["org-manager"], password=None, state="active")
    client.force_login(manager)
    resp = client.post(f"/sso/users/{sso_user.pk}/links/{link.pk}/remove/", follow=True)
    assert "(target_more_privileged)" in resp.content.decode()
    assert ExternalIdentity.objects.filter(pk=link.pk).exists()
    assert not AuditEvent.objects.filter(action="user.unlinked").exists()


def test_org_manager_unlinks_a_plain_user_of_their_org(acs, sso_user, sso_org, provider, user_factory, client):
    link = _link(acs, provider, sso_user)
    manager = user_factory("manager", org=sso_org, roles=["org-manager"], password=None, state="active")
    client.force_login(manager)
    client.post(f"/sso/users/{sso_user.pk}/links/{link.pk}/remove/")
    assert not ExternalIdentity.objects.filter(pk=link.pk).exists()


def test_manager_of_another_org_gets_404_and_viewer_403(acs, sso_user, provider, user_factory, org_factory, client):
    link = _link(acs, provider, sso_user)
    other = org_factory("Elsewhere")
    client.force_login(user_factory("outsider", org=other, roles=["org-manager"]))
    assert client.post(f"/sso/users/{sso_user.pk}/links/{link.pk}/remove/").status_code == 404
    client.force_login(user_factory("viewer", roles=["help-desk"]))
    assert client.post(f"/sso/users/{sso_user.pk}/links/{link.pk}/remove/").status_code == 403
    assert ExternalIdentity.objects.filter(pk=link.pk).exists()


def test_unknown_or_non_saml_link_is_a_coded_message(acs, sso_user, provider, admin_user):
    link = _link(acs, provider, sso_user)
    admin_client = _admin(admin_user)
    resp = admin_client.post(f"/sso/users/{sso_user.pk}/links/{link.pk + 999}/remove/", follow=True)
    assert "(link_not_found)" in resp.content.decode()
    ExternalIdentity.objects.filter(pk=link.pk).update(source="scim")
    resp = admin_client.post(f"/sso/users/{sso_user.pk}/links/{link.pk}/remove/", follow=True)
    assert "(link_not_found)" in resp.content.decode()
    assert ExternalIdentity.objects.filter(pk=link.pk).exists()
