"""Issue 7 §5: for a user of an SSO org the password step answers a right and a wrong local password alike,
and SSO users have no usable local password unless they are break-glass users."""

from __future__ import annotations

from django.contrib.auth import SESSION_KEY, authenticate, get_user_model
from django.test import Client

from accounts.models import AuditEvent
from tests.conftest import TEST_PASSWORD
from tests.sso.test_acs import signed_in

User = get_user_model()


def _answer(username: str, password: str):
    client = Client()
    resp = client.post("/sso/signin/", {"username": username, "password": password, "next": "/account/"})
    return client, resp


def test_right_and_wrong_password_of_sso_user_get_the_same_answer(sso_user, provider, user_factory, org_factory,
                                                                  system_actor):
    # The strongest case: the user had a real password before the move into the SSO org.
    from accounts.identity.service import apply_identity_change
    from accounts.identity.types import IdentityChange

    mover = user_factory("mover", org=org_factory("Local Org"))
    assert mover.check_password(TEST_PASSWORD)
    apply_identity_change(actor=system_actor, change=IdentityChange(user_id=mover.pk, org_id=sso_user.profile.org_id))
    mover.refresh_from_db()
    assert not mover.has_usable_password() and not mover.check_password(TEST_PASSWORD)
    for username in ("alice", "mover"):
        right_client, right = _answer(username, TEST_PASSWORD)
        wrong_client, wrong = _answer(username, "Wrong-Horse-42")
        assert right.status_code == wrong.status_code == 302
        assert right["Location"] == wrong["Location"] == f"/sso/{provider.pk}/login/?next=%2Faccount%2F"
        assert right.content == wrong.content
        assert SESSION_KEY not in right_client.session and SESSION_KEY not in wrong_client.session
    # Case does not open another path: the org method is checked on the case-insensitive username.
    _, upper = _answer("ALICE", TEST_PASSWORD)
    assert upper["Location"] == right["Location"]


def test_sso_user_has_no_usable_password(sso_user):
    assert not sso_user.has_usable_password()


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


def test_break_glass_user_keeps_a_password_that_is_checked(sso_user, make_break_glass):
    make_break_glass(sso_user)
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
