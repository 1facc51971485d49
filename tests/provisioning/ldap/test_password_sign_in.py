"""Console sign-in with the directory password (``provisioning.ldap.backends.IdmLDAPBackend``) against a
real slapd over StartTLS, through the real sign-in page: who may sign in, what is refused, the throttle,
two-factor step and audit, an unreachable directory, filter escaping, and no password kept anywhere."""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path

import ldap
import pytest
from django.apps import apps
from django.contrib.auth import BACKEND_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.core import serializers
from django.core.management import CommandError, call_command
from django.test import RequestFactory
from django.urls import reverse
from django_auth_ldap.backend import _LDAPUser

from accounts.credentials.views import SIGN_IN_FAILED
from accounts.exceptions import ValidationFailed
from accounts.identity.orgs import org_update_settings
from accounts.identity.types import Actor, AuthMethod, UserState
from accounts.mfa import flow, totp
from accounts.models import AuditEvent
from provisioning.ldap.backends import (
    UNREACHABLE_MESSAGE,
    IdmLDAPBackend,
    directory_ldap_settings,
    sends_passwords_over_verified_tls,
)
from provisioning.ldap.directories import (
    DirectorySettings,
    ca_bundle_file,
    directory_create,
    directory_update,
)
from provisioning.ldap.sync import sync_directory
from provisioning.models import Directory, Source
from sso.models import IdentityProvider
from sso.services import break_glass_set
from tests.directory_servers import TestSlapd, free_port

pytestmark = pytest.mark.django_db(transaction=True)
ACTOR = Actor.system("test")
BACKEND = "provisioning.ldap.backends.IdmLDAPBackend"
DIRECTORY_PASSWORD = "Dir-Only-Pw-7f3c!"  # noqa: S105 - a throwaway test directory


def people(ou: str, *names: str, password: str = DIRECTORY_PASSWORD) -> str:
    """LDIF for inetOrgPerson users with a directory password."""
    return "\n".join(
        f"dn: uid={name},{ou}\nobjectClass: inetOrgPerson\nuid: {name}\ncn: {name.title()}\nsn: {name.title()}son\n"
        f"givenName: {name.title()}\nmail: {name}@example.org\nuserPassword: {password}\n"
        for name in names
    )


def directory_settings(server, ou: str, test_pki, **overrides) -> DirectorySettings:
    values = {"urls": (server.ldap_uri,), "base_dns": (ou,), "preset": "openldap", "bind_dn": server.root_dn,
              "tls_mode": "starttls", "ca_bundle": Path(test_pki.ca_file).read_text(), "password_sign_in": True}
    return DirectorySettings(**(values | overrides))


def synced_directory(server, ou: str, org, test_pki, *names: str, **overrides) -> Directory:
    """A directory over StartTLS with password sign-in on (unless overridden), its users synced."""
    server.ldapadd(people(ou, *names))
    directory = directory_create(actor=ACTOR, name=f"Corp {ou}", data=directory_settings(server, ou, test_pki,
                                                                                         **overrides),
                                 bind_password=server.root_pw, org=org)
    run = sync_directory(directory)
    assert run.status == "succeeded", run.error
    return directory


def sign_in(client, username: str, password: str = DIRECTORY_PASSWORD):
    return client.post(reverse("accounts:login"), {"username": username, "password": password, "next": "/orgs/"})


def admin(server) -> ldap.ldapobject.LDAPObject:
    conn = ldap.initialize(server.ldap_uri)
    conn.simple_bind_s(server.root_dn, server.root_pw)
    return conn


@pytest.fixture
def limits(settings):
    settings.IDM_SIGNIN_MAX_FAILURES = 3
    settings.IDM_SIGNIN_MAX_FAILURES_PER_IP = 50
    settings.IDM_SIGNIN_LOCKOUT_SECONDS = 60


def test_right_directory_password_signs_in_audited_and_changes_nothing_on_the_user(
        client, slapd_server, ou, root_org, test_pki):
    directory = synced_directory(slapd_server, ou, root_org, test_pki, "alice")
    alice = User.objects.get(username="alice")
    assert not alice.has_usable_password()
    # The directory renames her; sign-in must not copy it (the sync does that).
    admin(slapd_server).modify_s(f"uid=alice,{ou}", [(ldap.MOD_REPLACE, "givenName", [b"Alicia"])])
    before = User.objects.filter(pk=alice.pk).values().get()

    response = sign_in(client, "alice")

    assert response.status_code == 302 and response["Location"] == "/orgs/"
    assert str(client.session[SESSION_KEY]) == str(alice.pk)
    assert client.session[BACKEND_SESSION_KEY] == BACKEND
    assert client.get(reverse("accounts:home")).status_code == 200  # the session holds (get_user)
    after = User.objects.filter(pk=alice.pk).values().get()
    assert after["last_login"] is not None
    assert {k: v for k, v in after.items() if k != "last_login"} == {k: v for k, v in before.items()
                                                                      if k != "last_login"}
    event = AuditEvent.objects.get(action="auth.login_succeeded", target_id=str(alice.pk))
    assert event.new_value == {"method": "directory", "directory": directory.source.name,
                               "directory_id": directory.source_id}
    assert event.message == f"signed in via directory {directory.source.name}"


def test_wrong_password_is_refused_with_the_one_message_and_counted_by_the_throttle(
        client, slapd_server, ou, root_org, test_pki, limits):
    synced_directory(slapd_server, ou, root_org, test_pki, "bob")
    for _ in range(3):
        response = sign_in(client, "bob", "Not-The-Password-1")
        assert response.status_code == 400
        assert response.context["error"] == SIGN_IN_FAILED
    assert AuditEvent.objects.filter(action="auth.login_failed", target_label="bob",
                                     new_value__reason="invalid_credentials").count() == 3
    locked = sign_in(client, "bob")  # the right password, but the username is locked now
    assert locked.status_code == 429
    assert SESSION_KEY not in client.session


def test_look_alike_spelling_meets_the_same_lock(client, slapd_server, ou, root_org, test_pki, limits):
    """Review 3 M2: "ｚoe" (fullwidth z) finds zoe, and slapd matches it too; it must not get fresh tries."""
    synced_directory(slapd_server, ou, root_org, test_pki, "zoe")
    assert sign_in(client, "\uff5aoe").status_code == 302  # the premise: the look-alike signs zoe in
    client.post(reverse("accounts:logout"))
    for _ in range(3):
        assert sign_in(client, "zoe", "Not-The-Password-1").status_code == 400
    assert sign_in(client, "\uff5aoe").status_code == 429
    assert sign_in(client, "ZOE").status_code == 429
    assert SESSION_KEY not in client.session


def test_user_not_owned_by_the_directory_cannot_use_a_directory_password(
        client, slapd_server, ou, root_org, test_pki, user_factory, fast_hasher):
    synced_directory(slapd_server, ou, root_org, test_pki, "carol")
    # A local user whose username also exists in the directory keeps her local password only.
    slapd_server.ldapadd(people(ou, "dan"))
    user_factory("dan", password="Local-Pass-123")
    assert sign_in(client, "dan").status_code == 400
    assert sign_in(client, "dan", "Local-Pass-123").status_code == 302  # ModelBackend, unchanged
    client.logout()

    # carol's entry is replaced by another person's entry with the same uid (a new entryUUID): the
    # directory accepts that password, but the entry is not the one carol is linked to.
    conn = admin(slapd_server)
    conn.delete_s(f"uid=carol,{ou}")
    slapd_server.ldapadd(people(ou, "carol", password="Impostor-Pass-9"))
    assert sign_in(client, "carol", "Impostor-Pass-9").status_code == 400
    assert SESSION_KEY not in client.session
    assert AuditEvent.objects.filter(action="auth.login_failed", target_label="carol",
                                     new_value__reason="directory_entry_not_linked").exists()


def test_directory_with_the_setting_off_is_not_asked(client, slapd_server, ou, root_org, test_pki):
    directory = synced_directory(slapd_server, ou, root_org, test_pki, "erin", password_sign_in=False)
    assert sign_in(client, "erin").status_code == 400
    directory_update(actor=ACTOR, directory=directory, data=directory_settings(slapd_server, ou, test_pki))
    assert sign_in(client, "erin").status_code == 302  # turned on: the same password works


def test_blocked_and_disabled_users_are_refused(client, slapd_server, ou, root_org, test_pki):
    synced_directory(slapd_server, ou, root_org, test_pki, "gina", "hank")
    # Disabled in the directory but not yet synced: the entry itself says no.
    admin(slapd_server).modify_s(f"uid=gina,{ou}", [(ldap.MOD_ADD, "objectClass", [b"shadowAccount"]),
                                                     (ldap.MOD_ADD, "shadowExpire", [b"1"])])
    assert sign_in(client, "gina").status_code == 400
    assert AuditEvent.objects.filter(action="auth.login_failed", target_label="gina",
                                     new_value__reason="directory_account_expired").exists()
    # After the sync gina is blocked in idm: refused before the directory is asked.
    sync_directory(Directory.objects.get(), full=True)
    assert User.objects.get(username="gina").profile.state == UserState.BLOCKED
    assert sign_in(client, "gina").status_code == 400
    assert AuditEvent.objects.filter(action="auth.login_failed", target_label="gina",
                                     new_value__reason="user_inactive").exists()
    # An open session ends once the user is blocked.
    assert sign_in(client, "hank").status_code == 302
    admin(slapd_server).delete_s(f"uid=hank,{ou}")
    sync_directory(Directory.objects.get(), full=True)
    assert User.objects.get(username="hank").profile.state == UserState.BLOCKED
    assert client.get(reverse("accounts:home")).status_code == 302  # back to the sign-in page


def test_stopped_directory_gives_a_friendly_failure_not_counted_against_the_user(
        client, test_pki, root_org, limits, caplog):
    server = TestSlapd(pki=test_pki)
    server.start()
    try:
        ou = server.fresh_ou()
        synced_directory(server, ou, root_org, test_pki, "ivan")
    finally:
        server.stop()
    caplog.set_level(logging.DEBUG)
    for _ in range(4):  # more than the username limit: an outage locks nobody out
        response = sign_in(client, "ivan")
        assert response.status_code == 503
        assert response.context["error"] == UNREACHABLE_MESSAGE
    assert SESSION_KEY not in client.session
    event = AuditEvent.objects.filter(action="auth.login_failed", target_label="ivan").last()
    assert event.new_value["reason"] == "directory_unreachable"
    assert event.new_value["error"] == "server_unreachable"
    assert DIRECTORY_PASSWORD not in caplog.text
    assert "Traceback" not in caplog.text


def test_second_server_is_used_when_the_first_does_not_answer(client, slapd_server, ou, root_org, test_pki):
    dead = f"ldap://127.0.0.1:{free_port()}/"
    synced_directory(slapd_server, ou, root_org, test_pki, "judy", urls=(dead, slapd_server.ldap_uri))
    assert sign_in(client, "judy").status_code == 302


def test_wrong_ca_is_refused_not_downgraded(client, slapd_server, ou, root_org, test_pki):
    directory = synced_directory(slapd_server, ou, root_org, test_pki, "kim")
    Directory.objects.filter(pk=directory.pk).update(ca_bundle=Path(test_pki.other_ca_file).read_text())
    response = sign_in(client, "kim")
    assert response.status_code == 503 and SESSION_KEY not in client.session
    # A row that lost certificate verification behind the validation's back is refused too.
    Directory.objects.filter(pk=directory.pk).update(ca_bundle=Path(test_pki.ca_file).read_text(), verify_tls=False)
    assert sign_in(client, "kim").status_code == 400
    assert AuditEvent.objects.filter(action="auth.login_failed", target_label="kim",
                                     new_value__reason="directory_insecure").exists()


@pytest.mark.parametrize("typed", ["*", "a*", "*)(uid=alice", "\\61lice", "alice)(|(uid=*", "alic\\65"])
def test_filter_metacharacters_in_the_username_match_no_other_entry(slapd_server, ou, root_org, test_pki, typed):
    slapd_server.ldapadd(people(ou, "alice"))
    directory = directory_create(actor=ACTOR, name=f"Corp {ou}", data=directory_settings(slapd_server, ou, test_pki),
                                 bind_password=slapd_server.root_pw, org=root_org)
    backend = IdmLDAPBackend()
    with ca_bundle_file(directory) as ca_file:
        backend.settings = directory_ldap_settings(directory, ca_file=ca_file)
        assert _LDAPUser(backend, username="alice").dn == f"uid=alice,{ou}".lower()  # the search works
        # Unescaped, each of these would select alice's entry (the only one under the OU).
        assert _LDAPUser(backend, username=typed).dn is None


def test_metacharacter_usernames_sign_nobody_in(client, slapd_server, ou, root_org, test_pki):
    synced_directory(slapd_server, ou, root_org, test_pki, "leo")
    for typed in ("*", "l*", "*)(uid=leo", "\\6ceo"):
        assert sign_in(client, typed).status_code == 400
    assert SESSION_KEY not in client.session


def test_two_factor_step_is_still_asked_when_enrolled(client, slapd_server, ou, root_org, test_pki):
    synced_directory(slapd_server, ou, root_org, test_pki, "mia")
    mia = User.objects.get(username="mia")
    device = flow.begin_enrolment(actor=flow._actor(None, mia), user=mia)
    assert flow.check_code(actor=flow._actor(None, mia), user=mia, code=totp.totp(device.secret, at=time.time() - 30),
                           confirm=True, context="test")
    response = sign_in(client, "mia")
    assert response.status_code == 302 and response["Location"] == "/sign-in/verify/"
    assert SESSION_KEY not in client.session
    response = client.post("/sign-in/verify/", {"code": totp.totp(device.secret)})
    assert response.status_code == 302
    assert str(client.session[SESSION_KEY]) == str(mia.pk)
    assert client.session[BACKEND_SESSION_KEY] == BACKEND
    event = AuditEvent.objects.get(action="auth.login_succeeded", target_id=str(mia.pk))
    assert event.new_value["method"] == "directory"


def test_password_is_in_no_log_and_no_table(client, slapd_server, ou, root_org, test_pki, caplog):
    synced_directory(slapd_server, ou, root_org, test_pki, "nina")
    caplog.set_level(logging.DEBUG)
    assert sign_in(client, "nina", DIRECTORY_PASSWORD + "-wrong").status_code == 400
    assert sign_in(client, "nina").status_code == 302
    assert "nina" in caplog.text  # the library did log the attempts (so the check below means something)
    assert DIRECTORY_PASSWORD not in caplog.text
    for model in apps.get_models():
        dump = serializers.serialize("json", model._default_manager.all())
        assert DIRECTORY_PASSWORD not in dump, model
    for session in Session.objects.all():
        assert DIRECTORY_PASSWORD not in str(session.get_decoded())


def test_directory_password_sign_in_needs_verified_tls(slapd_server, ou, root_org, test_pki):
    mixed = (slapd_server.ldap_uri, slapd_server.ldaps_uri)
    for overrides in ({"tls_mode": "none"}, {"verify_tls": False}, {"urls": mixed}):
        with pytest.raises(ValidationFailed) as caught:
            directory_create(actor=ACTOR, name="Plain", data=directory_settings(slapd_server, ou, test_pki,
                                                                                **overrides))
        assert (caught.value.code, caught.value.field) == ("password_sign_in_needs_tls", "password_sign_in")
    assert not Directory.objects.exists()


def test_console_form_turns_the_setting_on_only_with_verified_tls(admin_client, slapd_server, ou, test_pki):
    form = {"name": "Corp LDAP", "urls": slapd_server.ldap_uri, "tls_mode": "none", "verify_tls": "on",
            "bind_dn": slapd_server.root_dn, "bind_password": slapd_server.root_pw, "base_dns": ou,
            "preset": "openldap", "user_filter": "", "group_filter": "", "attribute_map": "", "page_size": "500",
            "interval_hours": "12", "deactivation_threshold_percent": "10", "deactivation_threshold_min": "50",
            "password_sign_in": "on"}
    refused = admin_client.post(reverse("provisioning:directory_add"), form)
    assert refused.status_code == 200 and not Directory.objects.exists()
    assert "password_sign_in_needs_tls" in refused.content.decode()
    form |= {"tls_mode": "starttls", "ca_bundle": Path(test_pki.ca_file).read_text()}
    created = admin_client.post(reverse("provisioning:directory_add"), form)
    directory = Directory.objects.get()
    assert created.status_code == 302 and directory.password_sign_in
    page = admin_client.get(reverse("provisioning:source_detail", args=[directory.source_id])).content.decode()
    assert "the users it manages may sign in with their directory password" in page
    event = AuditEvent.objects.get(action="directory_created")
    assert event.new_value["password_sign_in"] is True


def test_manage_py_directory_add_password_sign_in(tmp_path, test_pki):
    secret = tmp_path / "pw"
    secret.write_text("file-secret\n")
    common = ["directory", "add", "HQ", "--url", "ldap://127.0.0.1:3899/", "--bind-password-file", str(secret),
              "--base-dn", "dc=example,dc=org", "--preset", "openldap", "--password-sign-in"]
    with pytest.raises(CommandError) as caught:
        call_command(*common)
    assert str(caught.value).startswith("password_sign_in_needs_tls: ")
    call_command(*common, "--tls", "starttls", "--ca-file", test_pki.ca_file, stdout=io.StringIO())
    assert Directory.objects.get().password_sign_in


def test_users_of_an_sso_org_never_sign_in_with_the_directory_password(client, slapd_server, ou, test_pki,
                                                                       org_factory):
    sso_org = org_factory("SSO Org")
    synced_directory(slapd_server, ou, sso_org, test_pki, "olga", "pete")
    provider = IdentityProvider.objects.create(name="Corp IdP", entity_id="https://idp.example.org/")
    org_update_settings(actor=ACTOR, org=sso_org, auth_method=AuthMethod.SSO, auth_provider=provider)
    break_glass_set(actor=ACTOR, provider=provider, users=[User.objects.get(username="pete")])

    # olga goes to her IdP from the password step, whatever password she sent.
    response = sign_in(client, "olga")
    assert response.status_code == 302 and response["Location"].startswith(f"/sso/{provider.pk}/login/")
    # pete (break-glass) gets the password step, but only his local password counts: he has none.
    assert sign_in(client, "pete").status_code == 400
    assert SESSION_KEY not in client.session
    assert AuditEvent.objects.filter(action="auth.login_failed", target_label="pete",
                                     new_value__reason="org_uses_sso").exists()
    request = RequestFactory().post("/sign-in/")
    assert IdmLDAPBackend().authenticate(request, username="olga", password=DIRECTORY_PASSWORD) is None


def test_switched_off_directory_is_not_asked(client, slapd_server, ou, root_org, test_pki):
    directory = synced_directory(slapd_server, ou, root_org, test_pki, "quinn")
    Source.objects.filter(pk=directory.source_id).update(enabled=False)
    assert sign_in(client, "quinn").status_code == 400
    Source.objects.filter(pk=directory.source_id).update(enabled=True)
    assert sign_in(client, "quinn").status_code == 302


def test_ldaps_directory_signs_in(client, slapd_server, ou, root_org, test_pki):
    synced_directory(slapd_server, ou, root_org, test_pki, "rita", urls=(slapd_server.ldaps_uri,), tls_mode="ldaps")
    assert sign_in(client, "rita").status_code == 302


@pytest.mark.parametrize(("urls", "tls_mode", "verify", "safe"), [
    (("ldaps://a/",), "ldaps", True, True),
    (("ldap://a/", "ldap://b/"), "starttls", True, True),
    (("ldaps://a/", "ldaps://b/"), "starttls", True, True),
    (("ldap://a/", "ldaps://b/"), "starttls", True, False),  # StartTLS is one switch for whichever URL answers
    (("ldap://a/",), "none", True, False),
    (("ldaps://a/",), "ldaps", False, False),
])
def test_passwords_go_only_over_verified_tls_on_every_url(urls, tls_mode, verify, safe):
    directory = Directory(urls=list(urls), tls_mode=tls_mode, verify_tls=verify)
    assert sends_passwords_over_verified_tls(directory) is safe
