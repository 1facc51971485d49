"""The second sign-in step and every TOTP device write, each with its audit record.

Password sign-in (``sso.views.SignInView``) calls ``start`` after ``authenticate``: when the user's org
requires two-factor authentication (inherited setting) or the user has a confirmed device, the user is
*not* signed in yet. The session holds a pending state (user id, backend, next path, start time,
failures) under a fresh session key, and the user goes to ``/sign-in/verify/`` or, without a device,
``/sign-in/enrol/``. Only a valid code calls ``auth.login``. The pending state lasts ``PENDING_TTL``
seconds and ``MAX_FAILURES`` wrong codes; then the user starts over with the password.

SSO sign-ins never come here: the identity provider does its own MFA. Device writes are
authentication data, not identity changes, so they do not go through ``accounts.identity.service``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import auth
from django.db import transaction
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from accounts.identity.audit import record_event
from accounts.identity.privilege import check_may_change_user
from accounts.identity.types import Actor
from accounts.mfa import totp
from accounts.mfa.models import TotpDevice

PENDING_KEY = "_idm_mfa_pending"
PENDING_TTL = 5 * 60
MAX_FAILURES = 5


# --------------------------------------------------------------------------------------------
# Who needs a second factor


def confirmed_device(user) -> TotpDevice | None:
    return TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).first()


def org_requires(user) -> bool:
    """Does the user's org (itself or by inheritance) require two-factor authentication?"""
    from accounts.identity.orgs import effective_settings

    profile = getattr(user, "profile", None)
    return profile is not None and effective_settings(profile.org).two_factor_required


def enrolment_required(user) -> bool:
    """An admin asked this user to set up two-factor authentication at their next sign-in."""
    from accounts.credentials.models import RequiredAction

    return RequiredAction.objects.filter(user=user, kind=RequiredAction.Kind.ENROL_MFA).exists()


def second_factor_needed(user) -> bool:
    return org_requires(user) or confirmed_device(user) is not None or enrolment_required(user)


# --------------------------------------------------------------------------------------------
# Audit


def _actor(request: HttpRequest | None, user) -> Actor:
    return Actor(label=user.get_username(), type="user", user=user,
                 request_id=getattr(request, "request_id", "") if request else "",
                 ip=getattr(request, "client_ip", None) if request else None)


def _audit(action: str, *, actor: Actor, user, new: dict[str, Any] | None = None) -> None:
    record_event(actor=actor, action=action, target_type="user", target_id=user.pk,
                 target_label=user.get_username(), new=new)


# --------------------------------------------------------------------------------------------
# Device writes


def begin_enrolment(*, actor: Actor, user) -> TotpDevice:
    """A fresh secret on the user's unconfirmed device (refused when a confirmed one exists).

    Every enrolment gets a new secret, so a secret shown earlier (to whoever saw that page) is never
    the one confirmed later.
    """
    with transaction.atomic():
        device = TotpDevice.objects.select_for_update().filter(user=user).first()
        if device is not None and device.is_confirmed:
            raise ValueError("two-factor authentication is already set up")
        device = device or TotpDevice(user=user)
        device.secret = totp.new_secret()
        device.last_used_step = None
        device.save()
        _audit("auth.mfa_enrolment_started", actor=actor, user=user)
    return device


def check_code(*, actor: Actor, user, code: str | None, confirm: bool, context: str) -> bool:
    """Accept ``code`` from the user's device, once: the step must be later than the last one used.

    ``confirm``: the code confirms an enrolment (unconfirmed device), else it must come from a confirmed
    device. Audits ``auth.mfa_succeeded`` / ``auth.mfa_failed`` (and ``auth.mfa_enrolled``).
    """
    with transaction.atomic():
        device = TotpDevice.objects.select_for_update().filter(user=user).first()
        reason = ""
        if device is None or device.is_confirmed == confirm:
            reason = "no_device"
        else:
            step = totp.matching_step(device.secret, code)
            if step is None:
                reason = "invalid_code"
            elif device.last_used_step is not None and step <= device.last_used_step:
                reason = "replayed"
        if reason:
            _audit("auth.mfa_failed", actor=actor, user=user, new={"reason": reason, "context": context})
            return False
        device.last_used_step = step
        fields = ["last_used_step"]
        if confirm:
            device.confirmed_at = timezone.now()
            fields.append("confirmed_at")
        device.save(update_fields=fields)
        if confirm:
            _audit("auth.mfa_enrolled", actor=actor, user=user, new={"context": context})
            from accounts.credentials.service import complete_action

            complete_action(actor=actor, user=user, kind="enrol_mfa")
        _audit("auth.mfa_succeeded", actor=actor, user=user, new={"context": context})
    return True


def remove_device(*, actor: Actor, user, action: str) -> bool:
    """Delete the user's device (``auth.mfa_disabled`` by the user, ``user.mfa_reset`` by an admin).

    An admin reset obeys the privilege rule: ``PolicyDenied("target_more_privileged")`` when the user
    holds more than the admin (issue 7 §1).
    """
    if actor.user is None or actor.user.pk != user.pk:
        check_may_change_user(actor, user)
    with transaction.atomic():
        device = TotpDevice.objects.select_for_update().filter(user=user).first()
        if device is None:
            return False
        was_confirmed = device.is_confirmed
        device.delete()
        from accounts.credentials.service import delete_recovery_codes

        delete_recovery_codes(user)  # they belong to the device's protection
        _audit(action, actor=actor, user=user, new={"had_confirmed_device": was_confirmed})
    return True


# --------------------------------------------------------------------------------------------
# The pending sign-in


def start(request: HttpRequest, user, *, next_path: str) -> HttpResponseRedirect | None:
    """After a successful password check: ``None`` when no second factor is needed (the caller signs
    the user in), else a redirect to the code or enrolment page with the pending state stored."""
    if not second_factor_needed(user):
        return None
    request.session.cycle_key()
    request.session[PENDING_KEY] = {"user_id": user.pk, "backend": user.backend, "next": next_path,
                                    "started": time.time(), "failures": 0}
    if confirmed_device(user) is not None:
        return HttpResponseRedirect(reverse("accounts:mfa_verify"))
    begin_enrolment(actor=_actor(request, user), user=user)
    return HttpResponseRedirect(reverse("accounts:mfa_enrol"))


@dataclass
class Pending:
    user: Any
    backend: str
    next_path: str
    failures: int


def pending(request: HttpRequest) -> tuple[Pending | None, str]:
    """The pending sign-in of this session, or ``(None, reason)``: "none" or "expired"."""
    data = request.session.get(PENDING_KEY)
    if not isinstance(data, dict):
        return None, "none"
    backend_path = data.get("backend", "")
    user = None
    if backend_path in settings.AUTHENTICATION_BACKENDS:
        # get_user refuses users who may no longer sign in (blocked, deactivated meanwhile).
        user = auth.load_backend(backend_path).get_user(data.get("user_id"))
    if user is None:
        clear(request)
        return None, "none"
    if time.time() - float(data.get("started", 0)) > PENDING_TTL:
        _audit("auth.mfa_failed", actor=_actor(request, user), user=user, new={"reason": "expired"})
        clear(request)
        return None, "expired"
    return Pending(user=user, backend=backend_path, next_path=data.get("next") or "/",
                   failures=int(data.get("failures", 0))), ""


def clear(request: HttpRequest) -> None:
    request.session.pop(PENDING_KEY, None)


def submit_code(request: HttpRequest, state: Pending, code: str | None, *, enrol: bool) -> str:
    """Check a code for the pending sign-in: "ok" (signed in), "retry" or "locked" (start over)."""
    from accounts.throttle import SignInThrottle

    actor = _actor(request, state.user)
    throttle = SignInThrottle(username=state.user.get_username(), ip=getattr(request, "client_ip", None))
    if throttle.blocked():
        _audit("auth.mfa_failed", actor=actor, user=state.user, new={"reason": "throttled"})
        clear(request)
        return "locked"
    from accounts.credentials.service import normalise_recovery_code, use_recovery_code

    if not enrol and normalise_recovery_code(code) is not None:  # a recovery code in place of a TOTP code
        accepted = use_recovery_code(actor=actor, user=state.user, code=code)
    else:
        accepted = check_code(actor=actor, user=state.user, code=code, confirm=enrol, context="sign_in")
    if accepted:
        clear(request)
        throttle.success()
        auth.login(request, state.user, backend=state.backend)
        return "ok"
    throttle.failure()  # counts with wrong passwords: restarting the sign-in does not reset it
    failures = state.failures + 1
    if failures >= MAX_FAILURES:
        _audit("auth.mfa_failed", actor=actor, user=state.user, new={"reason": "too_many_attempts"})
        clear(request)
        return "locked"
    data = dict(request.session[PENDING_KEY], failures=failures)
    request.session[PENDING_KEY] = data
    return "retry"
