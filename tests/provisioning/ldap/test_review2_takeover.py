"""The second outside review's account takeover through a directory (N1, N10), reproduced against a
real slapd through the console views and the real sign-in and "forgot password" pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.credentials import service as credentials
from accounts.exceptions import ValidationFailed
from accounts.models import AuditEvent
from provisioning.ldap.directories import directory_create
from provisioning.models import Directory
from tests.provisioning.ldap.test_password_sign_in import (
    ACTOR,
    directory_settings,
    people,
    sign_in,
    synced_directory,
)

pytestmark = pytest.mark.django_db(transaction=True)
LOCAL_PASSWORD = "Local-Old-Pass-91!"  # noqa: S105 - a throwaway test password


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _form(server, ou, test_pki, **overrides) -> dict:
    data = {"name": "Ivan LDAP", "urls": server.ldap_uri, "tls_mode": "starttls", "verify_tls": "on",
            "ca_bundle": Path(test_pki.ca_file).read_text(), "bind_dn": server.root_dn,
            "bind_password": server.root_pw, "base_dns": ou, "preset": "openldap", "user_filter": "",
            "group_filter": "", "attribute_map": "", "page_size": "500", "interval_hours": "12",
            "deactivation_threshold_percent": "10", "deactivation_threshold_min": "50", "password_sign_in": "on"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


@pytest.fixture
def ima(user_factory):
    return _client(user_factory("ivan.identity", roles=["identity-management-administrator"]))


def test_n1a_only_a_cloud_admin_makes_a_directory_authoritative_for_passwords(
        ima, admin_client, user_factory, slapd_server, ou, root_org, test_pki):
    """N1 step 1: an IMA may create an (unmanaged) directory, but not with password sign-in, nor turn
    it on later; once a Cloud Admin has, the IMA may not repoint its connection (URLs, CA bundle)."""
    add = reverse("provisioning:directory_add")
    refused = ima.post(add, _form(slapd_server, ou, test_pki))
    assert refused.status_code == 200 and 'data-code="password_sign_in_needs_cloud_admin"' in refused.content.decode()
    assert not Directory.objects.exists()
    assert ima.post(add, _form(slapd_server, ou, test_pki, password_sign_in=None)).status_code == 302
    directory = Directory.objects.get()
    edit = reverse("provisioning:directory_edit", args=[directory.source_id])
    refused = ima.post(edit, _form(slapd_server, ou, test_pki))
    assert 'data-code="password_sign_in_needs_cloud_admin"' in refused.content.decode()
    directory.refresh_from_db()
    assert directory.password_sign_in is False
    assert admin_client.post(edit, _form(slapd_server, ou, test_pki)).status_code == 302
    directory.refresh_from_db()
    assert directory.password_sign_in is True
    other_ca = "\n".join([Path(test_pki.ca_file).read_text()] * 2)
    # From now on the directory holds the power to reset its users' passwords (source_powers): the IMA,
    # who holds no reset_passwords, neither repoints its connection nor changes its other settings.
    for change in ({"ca_bundle": other_ca}, {"urls": slapd_server.ldap_uri.replace("127.0.0.1", "localhost")},
                   {"page_size": "250"}):
        html = ima.post(edit, _form(slapd_server, ou, test_pki, **change)).content.decode()
        assert re.search(r'data-code="(password_sign_in_needs_cloud_admin|source_more_privileged)"', html), change
    directory.refresh_from_db()
    assert (directory.page_size, directory.urls) == (500, [slapd_server.ldap_uri])
    # An admin holding every power of the directory (Cross Org Admin: resets everywhere) still may not
    # repoint it: which server is authoritative for passwords is the Cloud Admin's choice.
    cross = _client(user_factory("carl.cross", roles=["identity-management-administrator", "cross-org-admin"]))
    html = cross.post(edit, _form(slapd_server, ou, test_pki, ca_bundle=other_ca)).content.decode()
    assert 'data-code="password_sign_in_needs_cloud_admin"' in html
    assert cross.post(edit, _form(slapd_server, ou, test_pki, page_size="250")).status_code == 302
    assert admin_client.post(edit, _form(slapd_server, ou, test_pki, ca_bundle=other_ca)).status_code == 302


def test_n1_garbage_ca_bundle_is_a_form_error(admin_client, slapd_server, ou, test_pki):
    response = admin_client.post(reverse("provisioning:directory_add"),
                                 _form(slapd_server, ou, test_pki, ca_bundle="-----BEGIN CERTIFICATE-----\nnope\n"
                                       "-----END CERTIFICATE-----\n"))
    assert response.status_code == 200 and 'data-code="ca_bundle_invalid"' in response.content.decode()
    assert not Directory.objects.exists()


def _link(client, directory, action: str = "link"):
    return client.post(reverse("provisioning:directory_link", args=[directory.source_id]),
                       {"match_by": "username", "action": action})


def _decisions(html: str) -> dict[str, str]:
    return {name: code for code, name in re.findall(r'<tr data-decision="(\w+)"><td>([\w.]+)', html)}


def test_n1b_linking_needs_manage_users_and_with_password_sign_in_reset_passwords(
        ima, user_factory, org_factory, slapd_server, ou, test_pki):
    """N1 step 3: an IMA links nobody into its own unmanaged directory (preview and apply alike); an
    Org Manager of Sales (manage_users, no reset_passwords) links Sales users only into a directory
    without password sign-in; an Org Admin of Sales (also reset_passwords) links them into one with it."""
    sales, eng = org_factory("Sales"), org_factory("Engineering")
    sara = user_factory("sara.sales", org=sales, email="sara@corp.example")
    user_factory("priya.platform", org=eng)
    slapd_server.ldapadd(people(ou, "sara.sales", "priya.platform", password="Attacker-Pass-1!"))
    directory = directory_create(actor=ACTOR, name="Own LDAP", data=directory_settings(slapd_server, ou, test_pki),
                                 bind_password=slapd_server.root_pw)  # unmanaged, password sign-in on
    assert _decisions(_link(ima, directory, "preview").content.decode()) == {
        "sara.sales": "out_of_scope", "priya.platform": "out_of_scope"}
    _link(ima, directory)
    manager = _client(user_factory("mo.manager", org=sales, roles=["identity-management-administrator",
                                                                    "org-manager"]))
    html = _link(manager, directory, "preview").content.decode()
    assert _decisions(html) == {"sara.sales": "out_of_scope", "priya.platform": "out_of_scope"}
    assert "reset passwords" in html
    _link(manager, directory)
    sara.profile.refresh_from_db()
    assert sara.profile.owner_source_id is None
    attacker = Client()
    assert sign_in(attacker, "sara.sales", "Attacker-Pass-1!").status_code == 400
    assert "_auth_user_id" not in attacker.session

    admin = _client(user_factory("olga.admin", org=sales, roles=["identity-management-administrator", "org-admin"]))
    assert _decisions(_link(admin, directory, "preview").content.decode()) == {
        "sara.sales": "adopt", "priya.platform": "out_of_scope"}
    _link(admin, directory)
    sara.profile.refresh_from_db()
    assert sara.profile.owner_source_id == directory.source_id
    assert User.objects.get(username="priya.platform").profile.owner_source_id is None

    # Without password sign-in, manage_users is enough.
    Directory.objects.filter(pk=directory.pk).update(password_sign_in=False)
    user_factory("steve.sales", org=sales)
    slapd_server.ldapadd(people(ou, "steve.sales"))
    assert _decisions(_link(manager, directory, "preview").content.decode())["steve.sales"] == "adopt"


def test_n10_linked_user_signs_in_only_through_the_directory(client, slapd_server, ou, root_org, test_pki):
    """N10: a user a password-sign-in directory owns keeps no working local password (also while the
    directory is switched off), and "forgot password" mails them nothing, answering as for anyone."""
    directory = synced_directory(slapd_server, ou, root_org, test_pki, "sara")
    sara = User.objects.get(username="sara")
    sara.set_password(LOCAL_PASSWORD)  # the password she had before the directory took her over
    sara.save(update_fields=["password"])
    local = sign_in(client, "sara", LOCAL_PASSWORD)
    assert local.status_code == 400 and "_auth_user_id" not in client.session
    assert sign_in(client, "sara").status_code == 302  # the directory password works
    client.logout()
    directory.source.enabled = False
    directory.source.save(update_fields=["enabled"])
    assert sign_in(client, "sara", LOCAL_PASSWORD).status_code == 400

    forgot = client.post(reverse("accounts:password_forgot"), {"identifier": "sara"})
    unknown = client.post(reverse("accounts:password_forgot"), {"identifier": "nobody.here"})
    assert forgot.status_code == unknown.status_code == 200
    assert forgot.content.decode().replace("sara", "") == unknown.content.decode().replace("nobody.here", "")
    assert mail.outbox == []
    event = AuditEvent.objects.get(action="auth.password_reset_requested", target_id=str(sara.pk))
    assert (event.new_value["sent"], event.new_value["reason"]) == (False, "directory")
    # Nor does an admin send her a link or set a temporary password: the directory holds it.
    for action in (lambda: credentials.send_reset_link(actor=ACTOR, user=sara, base_url="http://testserver"),
                   lambda: credentials.set_temporary_password(actor=ACTOR, user=sara)):
        with pytest.raises(ValidationFailed) as info:
            action()
        assert info.value.code == "directory_user"
    assert mail.outbox == []


def test_invitation_of_a_user_a_password_directory_took_over_is_refused_and_void(
        client, slapd_server, ou, root_org, test_pki):
    """A local user invited before a password-sign-in directory took them over: accepting the
    invitation would set a local password beside the directory's. The admin cannot send a new one,
    and the link already sent no longer works (the invitation page refuses it, no password is set)."""
    from accounts.credentials.tokens import encode_uid, invitation_tokens
    from accounts.models import UserState

    synced_directory(slapd_server, ou, root_org, test_pki, "sara")
    sara = User.objects.select_related("profile").get(username="sara")
    sara.set_unusable_password()
    sara.save(update_fields=["password"])
    sara.profile.state = UserState.INVITED  # as it was when the invitation went out
    sara.profile.save(update_fields=["state"])
    token = invitation_tokens.make_token(sara)
    assert not credentials.is_waiting_for_invitation(sara)
    assert not credentials.link_is_valid(sara, token, "invitation")
    with pytest.raises(ValidationFailed) as info:
        credentials.invite(actor=ACTOR, user=sara, base_url="http://testserver", email=True)
    assert info.value.code == "directory_user"
    assert mail.outbox == []

    url = reverse("accounts:invitation_accept", kwargs={"uidb64": encode_uid(sara), "token": token})
    page = client.post(url, {"password1": LOCAL_PASSWORD, "password2": LOCAL_PASSWORD}, follow=True)
    assert page.status_code in (200, 400, 404)
    sara.refresh_from_db()
    assert not sara.has_usable_password()
    assert sign_in(client, "sara", LOCAL_PASSWORD).status_code == 400
