"""Pages: the second sign-in step (code, or enrolment), own 2FA on "My account", admin reset.

Thin: the rules and every write are in ``accounts.mfa.flow``.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST

from accounts.access import Access
from accounts.decorators import requires
from accounts.exceptions import PolicyDenied
from accounts.identity.types import Actor
from accounts.mfa import flow, totp
from accounts.mfa.models import TotpDevice
from accounts.views import _visible_user

SIGNIN = "accounts:login"
INVALID = "That code is not valid, or it was already used. Enter the current code from your app."


def _setup_context(device: TotpDevice, username: str) -> dict:
    secret = device.secret
    uri = totp.provisioning_uri(secret, username)
    return {"secret_groups": " ".join(secret[i:i + 4] for i in range(0, len(secret), 4)), "uri": uri,
            "qr_svg": mark_safe(totp.qr_svg(uri))}  # noqa: S308 - SVG made by segno from our own URI


def _second_step(request: HttpRequest, *, enrol: bool) -> HttpResponse:
    state, reason = flow.pending(request)
    if state is None:
        if reason == "expired":
            messages.error(request, "Your sign-in took too long. Enter your username and password again.")
        return redirect(SIGNIN)
    has_device = flow.confirmed_device(state.user) is not None
    if enrol and has_device:
        return redirect("accounts:mfa_verify")
    if not enrol and not has_device:
        return redirect("accounts:mfa_enrol")
    template = "accounts/mfa_enrol.html" if enrol else "accounts/mfa_verify.html"
    context: dict = {"username": state.user.get_username()}
    status = 200
    if request.method == "POST":
        outcome = flow.submit_code(request, state, request.POST.get("code"), enrol=enrol)
        if outcome == "ok":
            if enrol:  # just enrolled: ten recovery codes, shown once, then on to where they were going
                return _show_new_recovery_codes(request, state.user, next_path=state.next_path)
            return redirect(state.next_path)
        if outcome == "locked":
            messages.error(request, "Too many wrong codes. Enter your username and password again.")
            return redirect(SIGNIN)
        context["error"] = INVALID
        status = 400
    if enrol:
        device = TotpDevice.objects.filter(user=state.user).first()
        if device is None:  # removed meanwhile (an admin reset): a new secret
            device = flow.begin_enrolment(actor=flow._actor(request, state.user), user=state.user)
        context |= _setup_context(device, state.user.get_username())
    return render(request, template, context, status=status)


@csrf_protect
@never_cache
def verify(request: HttpRequest) -> HttpResponse:
    """Sign-in, second step: the code from the user's authenticator app."""
    return _second_step(request, enrol=False)


@csrf_protect
@never_cache
def enrol(request: HttpRequest) -> HttpResponse:
    """Sign-in, second step without a device: scan the QR code, confirm with one code."""
    return _second_step(request, enrol=True)


# --------------------------------------------------------------------------------------------
# My account


def _show_new_recovery_codes(request: HttpRequest, user, *, next_path: str) -> HttpResponse:
    from accounts.credentials.middleware import NEXT_KEY, RECOVERY_CODES_KEY
    from accounts.credentials.service import generate_recovery_codes

    request.session[RECOVERY_CODES_KEY] = generate_recovery_codes(actor=Actor.for_user(user, request=request),
                                                                  user=user)
    request.session[NEXT_KEY] = next_path
    return redirect("accounts:recovery_codes")


@requires("console_access")
@never_cache
def account_setup(request: HttpRequest) -> HttpResponse:
    """Set up two-factor authentication from "My account".

    GET only explains (no secret is made, nothing is audited); POST ``start`` makes a new secret and
    shows the QR code; POST ``code`` confirms it, then the recovery codes are shown once.
    """
    user = request.user
    actor = Actor.for_user(user, request=request)
    if flow.confirmed_device(user) is not None:
        messages.info(request, "Two-factor authentication is already on.")
        return redirect("accounts:account")
    context: dict = {"username": user.get_username(), "account": True}
    if request.method != "POST":
        return render(request, "accounts/mfa_start.html", context)
    device = TotpDevice.objects.filter(user=user).first()
    status = 200
    if "start" in request.POST or device is None:
        device = flow.begin_enrolment(actor=actor, user=user)
    elif flow.check_code(actor=actor, user=user, code=request.POST.get("code"), confirm=True, context="account"):
        messages.success(request, "Two-factor authentication is on. You will need a code at every sign-in.")
        return _show_new_recovery_codes(request, user, next_path=reverse("accounts:account"))
    else:
        context["error"] = INVALID
        status = 400
    return render(request, "accounts/mfa_enrol.html", context | _setup_context(device, user.get_username()),
                  status=status)


@requires("console_access")
@require_POST
def account_disable(request: HttpRequest) -> HttpResponse:
    """Turn off one's own two-factor authentication with a current code (not when the org requires it)."""
    user = request.user
    if flow.org_requires(user):
        messages.error(request, "Your organization requires two-factor authentication: it cannot be turned off.")
        return redirect("accounts:account")
    actor = Actor.for_user(user, request=request)
    if not flow.check_code(actor=actor, user=user, code=request.POST.get("code"), confirm=False, context="disable"):
        messages.error(request, INVALID)
        return redirect("accounts:account")
    flow.remove_device(actor=actor, user=user, action="auth.mfa_disabled")
    messages.success(request, "Two-factor authentication is off.")
    return redirect("accounts:account")


# --------------------------------------------------------------------------------------------
# Console: reset a user's two-factor authentication


@requires("manage_mfa")
@require_POST
def user_reset(request: HttpRequest, pk: int) -> HttpResponse:
    """Remove a user's device (lost phone): they enrol again at their next sign-in if required."""
    user = _visible_user(request, pk)
    if not Access.of(request.user).can("manage_mfa", user.profile.org):
        raise PermissionDenied("missing permission manage_mfa")
    try:
        removed = flow.remove_device(actor=Actor.for_user(request.user, request=request), user=user,
                                     action="user.mfa_reset")
    except PolicyDenied as exc:
        messages.error(request, f"{exc.message} ({exc.code})")
        return redirect("accounts:user_detail", pk=user.pk)
    if removed:
        messages.success(request, f"Two-factor authentication of {user.username} was reset.")
    else:
        messages.info(request, f"{user.username} has no two-factor device.")
    return redirect("accounts:user_detail", pk=user.pk)
