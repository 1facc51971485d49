"""Issue 7 §5 "password oracle": a user who signs in through single sign-on has no usable idm password
unless they are a break-glass user of the provider. Created in or moved into an SSO org, the identity
service leaves them none and refuses to set one (``sso_user``); moved out, they get a reset link."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts import console_actions
from accounts.credentials import service as credentials
from accounts.exceptions import IdentityError
from accounts.identity.orgs import org_update_settings
from accounts.identity.service import apply_identity_change
from accounts.identity.types import Actor, AuthMethod, IdentityChange, Mode
from accounts.models import AuditEvent
from sso.models import IdentityProvider
from sso.services import break_glass_set
from tests.accounts.bulk_support import media, upload_text  # noqa: F401
from tests.accounts.link_support import submit_link
from tests.conftest import TEST_PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_hasher")]
NEW_PASSWORD = "Fresh-Horse-42"
SSO_USER_MESSAGE = ("{} signs in with Okta: passwords do not apply. Make them a break-glass user of Okta first if "
                    "they need password sign-in.")


@pytest.fixture
def okta():
    return IdentityProvider.objects.create(name="Okta")


@pytest.fixture
def sso_org(org_factory, system_actor, okta):
    org = org_factory("SSO Corp")
    org_update_settings(actor=system_actor, org=org, auth_method=AuthMethod.SSO, auth_provider=okta)
    return org


@pytest.fixture
def local_org(org_factory):
    return org_factory("Local Corp")


@pytest.fixture
def sso_person(user_factory, sso_org):
    return user_factory("sso.person", org=sso_org, password=None, state="active", email="sso.person@example.com")


def refusal(change: IdentityChange, actor: Actor) -> IdentityError:
    with pytest.raises(IdentityError) as err:
        apply_identity_change(actor=actor, change=change)
    return err.value


def test_creating_a_user_in_an_sso_org_with_a_password_is_refused(sso_org, org_factory, system_actor, admin_actor):
    child = org_factory("Child", parent=sso_org)  # inherits single sign-on
    for actor in (system_actor, admin_actor):
        for org in (sso_org, child):
            for secret in ({"password": TEST_PASSWORD}, {"password_hash": make_password(TEST_PASSWORD)}):
                err = refusal(IdentityChange(username="newbie", org_id=org.pk, mode=Mode.CREATE, **secret), actor)
                assert (err.code, err.field, err.message) == ("sso_user", "password",
                                                              SSO_USER_MESSAGE.format("newbie"))
    assert not User.objects.filter(username="newbie").exists()
    assert not AuditEvent.objects.filter(action="user.created", target_label="newbie").exists()

    user = apply_identity_change(actor=admin_actor, change=IdentityChange(
        username="newbie", org_id=sso_org.pk, mode=Mode.CREATE)).user
    user.refresh_from_db()
    assert not user.has_usable_password()


def test_setting_the_password_of_an_sso_user_is_refused_unless_break_glass(sso_person, okta, admin_actor,
                                                                          system_actor):
    before = AuditEvent.objects.count()
    for actor in (admin_actor, system_actor):
        with pytest.raises(IdentityError) as err:
            console_actions.user_set_password(actor=actor, user=sso_person, password=NEW_PASSWORD)
        assert (err.value.code, err.value.message) == ("sso_user", SSO_USER_MESSAGE.format("sso.person"))
    sso_person.refresh_from_db()
    assert not sso_person.has_usable_password()
    assert AuditEvent.objects.count() == before

    break_glass_set(actor=system_actor, provider=okta, users=[sso_person])
    console_actions.user_set_password(actor=admin_actor, user=sso_person, password=NEW_PASSWORD)
    sso_person.refresh_from_db()
    assert sso_person.check_password(NEW_PASSWORD)


def test_moving_into_an_sso_org_removes_the_password(local_org, sso_org, user_factory, admin_actor):
    user = user_factory("mover", org=local_org)
    assert user.check_password(TEST_PASSWORD)
    result = apply_identity_change(actor=admin_actor, change=IdentityChange(user_id=user.pk, org_id=sso_org.pk))
    assert result.changed_fields == ["org", "password"]
    user.refresh_from_db()
    assert not user.has_usable_password() and not user.check_password(TEST_PASSWORD)
    event = AuditEvent.objects.get(action="user.password_removed")
    assert (event.target_id, event.field, event.target_label) == (str(user.pk), "password", "mover")

    # A new password in the same change as the move is refused, and the move with it.
    other = user_factory("mover2", org=local_org)
    err = refusal(IdentityChange(user_id=other.pk, org_id=sso_org.pk, password=NEW_PASSWORD), admin_actor)
    assert err.code == "sso_user"
    other.refresh_from_db()
    assert other.profile.org_id == local_org.pk and other.check_password(TEST_PASSWORD)


def test_a_break_glass_user_moved_into_the_sso_org_keeps_the_password(local_org, sso_org, okta, user_factory,
                                                                     admin_actor, system_actor):
    user = user_factory("keeper", org=local_org)
    break_glass_set(actor=system_actor, provider=okta, users=[user])
    result = apply_identity_change(actor=admin_actor, change=IdentityChange(user_id=user.pk, org_id=sso_org.pk))
    assert result.changed_fields == ["org"]
    user.refresh_from_db()
    assert user.check_password(TEST_PASSWORD)
    assert not AuditEvent.objects.filter(action="user.password_removed").exists()


def test_moving_out_of_sso_leaves_no_password_until_a_reset(sso_person, local_org, admin_user, client):
    result = apply_identity_change(actor=Actor.for_user(admin_user), change=IdentityChange(
        user_id=sso_person.pk, org_id=local_org.pk))
    assert result.warnings == ["sso.person has no password for local sign-in in Local Corp: send them a password "
                               "reset link or an invitation."]
    sso_person.refresh_from_db()
    assert not sso_person.has_usable_password()
    signin = Client().post("/sso/signin/", {"username": "sso.person", "password": TEST_PASSWORD})
    assert signin.status_code == 400 and b"The username or password is not correct." in signin.content

    client.force_login(admin_user)
    assert client.post(reverse("accounts:user_reset_link", args=[sso_person.pk])).status_code == 302
    assert len(mail.outbox) == 1
    path = urlsplit(re.search(r"https?://\S+", mail.outbox[0].body).group(0)).path
    done = submit_link(Client(), path, NEW_PASSWORD)
    assert done.status_code == 200 and done.context["done"]
    user_client = Client()
    signin = user_client.post("/sso/signin/", {"username": "sso.person", "password": NEW_PASSWORD})
    assert signin.status_code == 302 and str(user_client.session[SESSION_KEY]) == str(sso_person.pk)


def test_upload_passwords_for_sso_users_are_refused_on_their_lines(sso_person, sso_org, local_org, admin_user,
                                                                   media):  # noqa: F811
    upload, _ = upload_text(
        "username,org,password\n"
        f"sso.person,SSO Corp,{NEW_PASSWORD}\n"
        f"newbie,SSO Corp,{NEW_PASSWORD}\n"
        f"local.new,Local Corp,{NEW_PASSWORD}\n"
        "sso.new,SSO Corp,\n",
        user=admin_user)
    errors = [(e["line"], e["column"], e["code"]) for e in upload.preview["errors"]]
    assert errors == [(2, "password", "sso_user"), (3, "password", "sso_user")]
    assert upload.preview["counts"]["create"] == 2


def test_admin_may_end_the_sessions_of_an_sso_user(sso_person, admin_actor, user_factory, local_org):
    """Credential actions other than passwords still apply to SSO users: the guard is scope + privilege,
    not a dry-run password change (which the service now refuses for them)."""
    credentials.check_may_change(actor=admin_actor, user=sso_person)
    assert credentials.sign_out_everywhere(actor=admin_actor, user=sso_person, keep_session_key=None) == 0
    local_admin = user_factory("local.admin", org=local_org, roles=["org-admin"])
    with pytest.raises(IdentityError) as err:
        credentials.check_may_change(actor=Actor.for_user(local_admin), user=sso_person)
    assert err.value.code == "out_of_scope"
