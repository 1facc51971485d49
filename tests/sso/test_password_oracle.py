"""Issue 7 §5: for a user of an SSO org the password step answers a right and a wrong local password alike,
and SSO users have no usable local password unless they are break-glass users."""

from __future__ import annotations

from django.contrib.auth import SESSION_KEY, authenticate, get_user_model
from django.test import Client

from accounts.models import AuditEvent
from sso.services import break_glass_set
from tests.conftest import TEST_PASSWORD
from tests.sso.test_acs import signed_in

User = get_user_model()


def _answer(username: str, password: str):
    client = Client()
    resp = client.post("/sso/signin/", {"username": username, "password": password, "next": "/account/"})
    return client, resp


def test_right_and_wrong_password_of_sso_user_get_the_same_answer(sso_user, provider):
    assert sso_user.check_password(TEST_PASSWORD)  # a usable local password, e.g. from before the org used SSO
    right_client, right = _answer("alice", TEST_PASSWORD)
    wrong_client, wrong = _answer("alice", "Wrong-Horse-42")
    assert right.status_code == wrong.status_code == 302
    assert right["Location"] == wrong["Location"] == f"/sso/{provider.pk}/login/?next=%2Faccount%2F"
    assert right.content == wrong.content
    assert SESSION_KEY not in right_client.session and SESSION_KEY not in wrong_client.session
    # Case does not open another path: the org method is checked on the case-insensitive username.
    _, upper = _answer("ALICE", TEST_PASSWORD)
    assert upper["Location"] == right["Location"]


def test_backend_refuses_sso_user_before_looking_at_the_password(sso_user, rf):
    for password in (TEST_PASSWORD, "Wrong-Horse-42", ""):
        request = rf.post("/")
        assert authenticate(request, username="alice", password=password) is None
        assert not hasattr(request, "idm_password_refused")
    assert Client().login(username="alice", password=TEST_PASSWORD) is False


def test_no_login_failure_event_differs_between_right_and_wrong(sso_user):
    _answer("alice", TEST_PASSWORD)
    after_right = list(AuditEvent.objects.values_list("action", flat=True))
    _answer("alice", "Wrong-Horse-42")
    after_wrong = list(AuditEvent.objects.values_list("action", flat=True))
    assert after_right == after_wrong


def test_break_glass_user_keeps_a_password_that_is_checked(sso_user, provider, system_actor):
    break_glass_set(actor=system_actor, provider=provider, users=[sso_user])
    _, wrong = _answer("alice", "Wrong-Horse-42")
    assert wrong.status_code == 400 and b"The username or password is not correct." in wrong.content
    client, right = _answer("alice", TEST_PASSWORD)
    assert right.status_code == 302 and str(client.session[SESSION_KEY]) == str(sso_user.pk)


def test_local_user_wrong_password_message_unchanged(user_factory):
    user_factory("bob")
    _, resp = _answer("bob", "nope")
    assert resp.status_code == 400 and b"The username or password is not correct." in resp.content


def test_jit_user_gets_an_unusable_password(acs, provider, sso_org):
    provider.jit_enabled = True
    provider.jit_org = sso_org
    provider.save()
    resp = acs.login(name_id="newbie", attributes={"mail": ["newbie@example.com"]})
    user = User.objects.get(username="newbie")
    signed_in(resp, user)
    assert not user.has_usable_password()
