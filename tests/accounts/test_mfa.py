"""Two-factor authentication (TOTP) for password sign-in: the algorithm, the sign-in second step
through the real pages, the org setting (inherited), limits, replay, own-account and admin actions."""

from __future__ import annotations

import base64
import time

import pytest
from django.contrib.auth import SESSION_KEY

from accounts.identity.orgs import org_update_settings
from accounts.mfa import flow, totp
from accounts.mfa.models import TotpDevice
from accounts.models import AuditEvent
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.usefixtures("fast_hasher")

RFC_KEY = b"12345678901234567890"


# --------------------------------------------------------------------------------------------
# The algorithm


@pytest.mark.parametrize(("at", "expected"), [
    (59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"),
    (1234567890, "89005924"), (2000000000, "69279037"), (20000000000, "65353130"),
])
def test_rfc6238_sha1_vectors(at, expected):
    assert totp.hotp(RFC_KEY, at // 30, digits=8) == expected
    assert totp.totp(base64.b32encode(RFC_KEY).decode(), at=at, digits=8) == expected
    assert totp.totp(base64.b32encode(RFC_KEY).decode(), at=at) == expected[-6:]


def test_window_is_one_step_each_side():
    secret = base64.b32encode(RFC_KEY).decode()
    now = 1_700_000_000
    assert totp.matching_step(secret, totp.totp(secret, at=now), at=now) == now // 30
    assert totp.matching_step(secret, totp.totp(secret, at=now - 30), at=now) == now // 30 - 1
    assert totp.matching_step(secret, totp.totp(secret, at=now + 30), at=now) == now // 30 + 1
    assert totp.matching_step(secret, totp.totp(secret, at=now + 60), at=now) is None
    assert totp.matching_step(secret, totp.totp(secret, at=now - 60), at=now) is None
    assert totp.matching_step(secret, "12345", at=now) is None
    assert totp.matching_step(secret, "abcdef", at=now) is None
    code = totp.totp(secret, at=now)
    assert totp.matching_step(secret, f"{code[:3]} {code[3:]}", at=now) == now // 30


def test_secret_is_160_bits_and_uri_shape():
    secret = totp.new_secret()
    assert len(base64.b32decode(secret)) == 20
    assert totp.provisioning_uri(secret, "bob") == f"otpauth://totp/idm:bob?secret={secret}&issuer=idm"
    assert totp.qr_svg(totp.provisioning_uri(secret, "bob")).startswith("<svg")


def test_secret_is_encrypted_at_rest(user_factory):
    user = user_factory("bob")
    device = flow.begin_enrolment(actor=flow._actor(None, user), user=user)
    raw = TotpDevice.objects.filter(pk=device.pk).values_list("encrypted_secret", flat=True).get()
    assert device.secret not in raw and len(device.secret) == 32
    assert TotpDevice.objects.get(pk=device.pk).secret == device.secret


# --------------------------------------------------------------------------------------------
# Sign-in through the pages


def password_step(client, username: str, next_path: str = "/orgs/"):
    client.post("/sign-in/", {"username": username, "next": next_path})
    return client.post("/sign-in/", {"username": username, "password": TEST_PASSWORD, "next": next_path})


def wrong_code(secret: str) -> str:
    valid = {totp.totp(secret, at=time.time() + d) for d in (-60, -30, 0, 30, 60)}
    return next(c for c in ("000000", "111111", "222222", "333333", "444444", "555555") if c not in valid)


def actions(user) -> list[str]:
    return list(AuditEvent.objects.filter(target_type="user", target_id=str(user.pk))
                .order_by("id").values_list("action", flat=True))


@pytest.fixture
def strict_orgs(org_factory, system_actor):
    """Parent requires two-factor authentication; its child inherits (setting left at None)."""
    parent = org_factory("Strict")
    child = org_factory("Strict Child", parent=parent)
    org_update_settings(actor=system_actor, org=parent, two_factor_required=True)
    return parent, child


def enrolled(user) -> str:
    """Give ``user`` a confirmed device; return its secret."""
    device = flow.begin_enrolment(actor=flow._actor(None, user), user=user)
    assert flow.check_code(actor=flow._actor(None, user), user=user, code=totp.totp(device.secret, at=time.time() - 30),
                           confirm=True, context="test")
    return device.secret


def test_not_required_and_no_device_signs_in_directly(client, user_factory):
    user = user_factory("bob")
    resp = password_step(client, "bob")
    assert resp.status_code == 302 and resp["Location"] == "/orgs/"
    assert str(client.session[SESSION_KEY]) == str(user.pk)
    assert not TotpDevice.objects.exists()


def test_inherited_requirement_enrol_then_verify(client, user_factory, strict_orgs):
    _, child = strict_orgs
    user = user_factory("carol", org=child)
    key_before = client.session.session_key
    resp = password_step(client, "carol")
    assert resp.status_code == 302 and resp["Location"] == "/sign-in/enrol/"
    assert SESSION_KEY not in client.session
    assert client.session.session_key != key_before  # rotated at the password step

    page = client.get("/sign-in/enrol/")
    assert page.status_code == 200 and b"<svg" in page.content
    secret = page.context["secret_groups"].replace(" ", "")
    assert page.context["uri"] == f"otpauth://totp/idm:carol?secret={secret}&issuer=idm"
    assert client.get("/orgs/").status_code == 302  # still not signed in

    resp = client.post("/sign-in/enrol/", {"code": wrong_code(secret)})
    assert resp.status_code == 400 and SESSION_KEY not in client.session
    resp = client.post("/sign-in/enrol/", {"code": totp.totp(secret)})
    # Signed in; the ten recovery codes are shown once, then on to where the user was going.
    assert resp.status_code == 302 and resp["Location"] == "/account/two-factor/recovery-codes/"
    assert str(client.session[SESSION_KEY]) == str(user.pk)
    codes_page = client.get(resp["Location"])
    assert len(codes_page.context["codes"]) == 10 and codes_page.context["next"] == "/orgs/"
    assert client.get(resp["Location"]).context["codes"] is None  # shown once
    assert TotpDevice.objects.get(user=user).is_confirmed
    assert flow.PENDING_KEY not in client.session
    log = actions(user)
    assert log[-5:] == ["auth.mfa_failed", "auth.mfa_enrolled", "auth.mfa_succeeded", "auth.login_succeeded",
                        "auth.recovery_codes_generated"]

    # Next sign-in: the code page, not the enrolment page; the next step's code is accepted (window).
    client.post("/sign-out/")
    resp = password_step(client, "carol", next_path="/")
    assert resp["Location"] == "/sign-in/verify/"
    assert client.get("/sign-in/enrol/")["Location"] == "/sign-in/verify/"
    resp = client.post("/sign-in/verify/", {"code": totp.totp(secret, at=time.time() + 30)})
    assert resp.status_code == 302 and resp["Location"] == "/"
    assert str(client.session[SESSION_KEY]) == str(user.pk)


def test_requirement_on_parent_applies_to_child_users_not_elsewhere(client, user_factory, strict_orgs, org_factory):
    _, child = strict_orgs
    user_factory("inner", org=child)
    user_factory("outer", org=org_factory("Relaxed"))
    assert password_step(client, "inner")["Location"] == "/sign-in/enrol/"
    client.logout()
    client.cookies.clear()
    assert password_step(client, "outer")["Location"] == "/orgs/"


def test_child_can_override_parent(client, user_factory, strict_orgs, system_actor):
    _, child = strict_orgs
    org_update_settings(actor=system_actor, org=child, two_factor_required=False)
    user_factory("free", org=child)
    assert password_step(client, "free")["Location"] == "/orgs/"


def test_own_device_needs_a_code_even_when_org_does_not_require(client, user_factory):
    user = user_factory("bob")
    enrolled(user)
    resp = password_step(client, "bob")
    assert resp["Location"] == "/sign-in/verify/" and SESSION_KEY not in client.session


def test_replayed_code_refused(client, user_factory):
    user = user_factory("bob")
    secret = enrolled(user)
    code = totp.totp(secret)
    password_step(client, "bob")
    assert client.post("/sign-in/verify/", {"code": code}).status_code == 302
    client.post("/sign-out/")
    password_step(client, "bob")
    resp = client.post("/sign-in/verify/", {"code": code})
    assert resp.status_code == 400 and SESSION_KEY not in client.session
    failed = AuditEvent.objects.filter(action="auth.mfa_failed", target_id=str(user.pk)).latest("id")
    assert failed.new_value["reason"] == "replayed"
    # An older code (previous step) is refused too once a later one was used.
    assert client.post("/sign-in/verify/", {"code": totp.totp(secret, at=time.time() - 30)}).status_code == 400


def test_five_wrong_codes_end_the_pending_sign_in(client, user_factory):
    user = user_factory("bob")
    secret = enrolled(user)
    password_step(client, "bob")
    bad = wrong_code(secret)
    for _ in range(flow.MAX_FAILURES - 1):
        assert client.post("/sign-in/verify/", {"code": bad}).status_code == 400
    resp = client.post("/sign-in/verify/", {"code": bad})
    assert resp.status_code == 302 and resp["Location"] == "/sign-in/"
    assert flow.PENDING_KEY not in client.session
    # Even the right code no longer helps: start over with the password.
    resp = client.post("/sign-in/verify/", {"code": totp.totp(secret)})
    assert resp["Location"] == "/sign-in/" and SESSION_KEY not in client.session
    reasons = [e.new_value["reason"] for e in AuditEvent.objects.filter(action="auth.mfa_failed")]
    assert reasons.count("invalid_code") == flow.MAX_FAILURES and "too_many_attempts" in reasons


def test_expired_pending_state(client, user_factory):
    user = user_factory("bob")
    secret = enrolled(user)
    password_step(client, "bob")
    session = client.session
    session[flow.PENDING_KEY] = dict(session[flow.PENDING_KEY], started=time.time() - flow.PENDING_TTL - 1)
    session.save()
    resp = client.post("/sign-in/verify/", {"code": totp.totp(secret)})
    assert resp.status_code == 302 and resp["Location"] == "/sign-in/"
    assert SESSION_KEY not in client.session and flow.PENDING_KEY not in client.session
    assert AuditEvent.objects.filter(action="auth.mfa_failed", target_id=str(user.pk)).latest("id").new_value == {
        "reason": "expired", "method": "two_factor"}


def test_second_step_pages_without_pending_state(client, db):
    assert client.get("/sign-in/verify/")["Location"] == "/sign-in/"
    assert client.post("/sign-in/enrol/", {"code": "123456"})["Location"] == "/sign-in/"


def test_blocked_during_pending_state_is_refused(client, user_factory, system_actor):
    from accounts import console_actions

    user = user_factory("bob")
    secret = enrolled(user)
    password_step(client, "bob")
    console_actions.user_block(actor=system_actor, user=user)
    resp = client.post("/sign-in/verify/", {"code": totp.totp(secret)})
    assert resp["Location"] == "/sign-in/" and SESSION_KEY not in client.session


def test_sso_sign_in_does_not_use_the_flow(monkeypatch, rf, user_factory, strict_orgs):
    """The ACS view signs the user in itself (the IdP does MFA); the TOTP flow is never consulted."""
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.middleware import SessionMiddleware
    from saml2.saml import NameID

    from sso.views import AcsView

    _, child = strict_orgs
    user = user_factory("sam", org=child)

    def boom(*args, **kwargs):
        raise AssertionError("the TOTP flow must not run for SSO sign-ins")

    for name in ("start", "second_factor_needed", "org_requires", "confirmed_device"):
        monkeypatch.setattr(flow, name, boom)
    monkeypatch.setattr("sso.backends.IdmSaml2Backend.authenticate", lambda self, request, **kw: user)
    monkeypatch.setattr("sso.views.remember_session", lambda **kw: None)
    request = rf.post("/sso/1/acs/")
    SessionMiddleware(lambda r: None).process_request(request)
    request.user = AnonymousUser()
    request.saml_session = request.session
    provider = type("P", (), {"pk": 1})()
    AcsView().authenticate_user(request, {"name_id": NameID(text="sam"), "session_index": ""}, provider)
    assert str(request.session[SESSION_KEY]) == str(user.pk)


# --------------------------------------------------------------------------------------------
# My account


def test_voluntary_setup_and_turn_off(client, user_factory):
    user = user_factory("bob")
    client.force_login(user)
    assert b"Set up two-factor authentication" in client.get("/account/").content
    # GET only explains: no secret, no audit event (issue 7 §5). POST "start" makes the secret.
    page = client.get("/account/two-factor/")
    assert page.status_code == 200 and b"Start set-up" in page.content
    assert not TotpDevice.objects.filter(user=user).exists() and "auth.mfa_enrolment_started" not in actions(user)
    page = client.post("/account/two-factor/", {"start": "1"})
    secret = page.context["secret_groups"].replace(" ", "")
    assert actions(user).count("auth.mfa_enrolment_started") == 1
    assert client.post("/account/two-factor/", {"code": wrong_code(secret)}).status_code == 400
    code = totp.totp(secret)
    assert client.post("/account/two-factor/", {"code": code})["Location"] == "/account/two-factor/recovery-codes/"
    assert TotpDevice.objects.get(user=user).is_confirmed
    assert b"Turn off" in client.get("/account/").content
    # Turning off needs a fresh code (the one just used is refused as a replay).
    client.post("/account/two-factor/off/", {"code": code})
    assert TotpDevice.objects.filter(user=user).exists()
    client.post("/account/two-factor/off/", {"code": totp.totp(secret, at=time.time() + 30)})
    assert not TotpDevice.objects.filter(user=user).exists()
    assert {"auth.mfa_enrolled", "auth.mfa_disabled"} <= set(actions(user))


def test_cannot_turn_off_when_org_requires(client, user_factory, strict_orgs):
    user = user_factory("carol", org=strict_orgs[1])
    secret = enrolled(user)
    client.force_login(user)
    assert b"Turn off" not in client.get("/account/").content
    client.post("/account/two-factor/off/", {"code": totp.totp(secret, at=time.time() + 30)})
    assert TotpDevice.objects.get(user=user).is_confirmed


# --------------------------------------------------------------------------------------------
# Console: reset


def test_reset_by_mfa_admin(client, user_factory, strict_orgs):
    user = user_factory("carol", org=strict_orgs[1])
    enrolled(user)
    mfa_admin = user_factory("mfa.admin", roles=["multi-factor-auth-admin"])
    client.force_login(mfa_admin)
    assert b"Reset two-factor" in client.get(f"/users/{user.pk}/").content
    resp = client.post(f"/users/{user.pk}/reset-two-factor/")
    assert resp.status_code == 302 and not TotpDevice.objects.filter(user=user).exists()
    event = AuditEvent.objects.get(action="user.mfa_reset")
    assert event.actor == mfa_admin and event.target_id == str(user.pk)
    # Next sign-in: enrol again (the org requires it).
    client.logout()
    assert password_step(client, "carol")["Location"] == "/sign-in/enrol/"


def test_reset_refused_without_manage_mfa(client, user_factory, strict_orgs):
    parent, child = strict_orgs
    user = user_factory("carol", org=child)
    enrolled(user)
    manager = user_factory("org.manager", org=parent, roles=["org-manager"])
    client.force_login(manager)
    assert b"Reset two-factor" not in client.get(f"/users/{user.pk}/").content
    assert client.post(f"/users/{user.pk}/reset-two-factor/").status_code == 403
    assert TotpDevice.objects.get(user=user).is_confirmed
    assert not AuditEvent.objects.filter(action="user.mfa_reset").exists()


def test_django_admin_login_goes_through_the_console_sign_in(client, user_factory):
    resp = client.get("/django-admin/login/?next=/django-admin/")
    assert resp.status_code == 302 and resp["Location"] == "/sign-in/?next=/django-admin/"
    resp = client.post("/django-admin/login/", {"username": "x", "password": "y"})
    assert resp.status_code == 302 and SESSION_KEY not in client.session


def test_wrong_codes_count_across_restarts_towards_the_sign_in_lock(client, user_factory, settings):
    settings.IDM_SIGNIN_MAX_FAILURES = 6
    user = user_factory("guesser")
    secret = enrolled(user)
    bad = wrong_code(secret)
    password_step(client, "guesser")
    for _ in range(flow.MAX_FAILURES):
        client.post("/sign-in/verify/", {"code": bad})
    password_step(client, "guesser")  # restarting with the right password does not reset the count
    client.post("/sign-in/verify/", {"code": bad})
    client.post("/sign-in/", {"username": "guesser"})
    response = client.post("/sign-in/", {"username": "guesser", "password": TEST_PASSWORD})
    assert response.status_code == 429 and SESSION_KEY not in client.session
