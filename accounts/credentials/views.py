"""Credential pages: admin resets and invitations on the user page, "forgot password", links from
email, the required password change at sign-in, recovery codes, unlock. Thin: the work is in
``accounts.credentials.service``.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST

from accounts.access import Access
from accounts.credentials import service
from accounts.credentials.middleware import NEXT_KEY, RECOVERY_CODES_KEY, REQUIRED_KEY
from accounts.credentials.models import RequiredAction
from accounts.credentials.tokens import decode_uid, reset_tokens
from accounts.decorators import requires
from accounts.exceptions import IdentityError
from accounts.identity.types import Actor
from accounts.redirects import local_path
from accounts.views import _visible_user

CREDENTIAL_PERMS = ("reset_passwords", "manage_users")


def _actor(request: HttpRequest) -> Actor:
    return Actor.for_user(request.user, request=request)


def _base_url(request: HttpRequest) -> str:
    """Links in emails use the configured public URL (never the request's Host header)."""
    return settings.IDM_BASE_URL


def may_manage_credentials(access: Access, user: User) -> bool:
    org = user.profile.org
    return any(access.can(perm, org) for perm in CREDENTIAL_PERMS)


def _target(request: HttpRequest, pk: int) -> User:
    user = _visible_user(request, pk)
    if not may_manage_credentials(Access.of(request.user), user):
        raise PermissionDenied("missing permission reset_passwords")
    return user


def _refused(request: HttpRequest, exc: IdentityError) -> None:
    messages.error(request, f"{exc.message} ({exc.code})")


def _any_credential_perm(view):
    """Signed in and holding reset_passwords or manage_users somewhere (403 otherwise)."""
    from functools import wraps

    from django.contrib.auth.decorators import login_required

    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        access = Access.of(request.user)
        if not any(access.has(p) for p in CREDENTIAL_PERMS):
            raise PermissionDenied("missing permission reset_passwords")
        return view(request, *args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------------------------
# Admin actions on the user page


@_any_credential_perm
@require_POST
def reset_link(request: HttpRequest, pk: int) -> HttpResponse:
    """Email the user a single-use reset link; their sessions end."""
    user = _target(request, pk)
    try:
        service.send_reset_link(actor=_actor(request), user=user, base_url=_base_url(request))
    except IdentityError as exc:
        _refused(request, exc)
    else:
        messages.success(request, f"A password reset link was emailed to {user.email}. It works once, for "
                         f"{service._minutes(reset_tokens.timeout)}. {user.username} was signed out.")
    return redirect("accounts:user_detail", pk=user.pk)


@_any_credential_perm
@never_cache
def temporary_password(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation; POST sets a generated password, shown once, to change at next sign-in."""
    user = _target(request, pk)
    if request.method == "POST":
        try:
            password = service.set_temporary_password(actor=_actor(request), user=user)
        except IdentityError as exc:
            _refused(request, exc)
            return redirect("accounts:user_detail", pk=user.pk)
        return render(request, "credentials/temporary_password.html", {"subject": user, "password": password})
    return render(request, "credentials/temporary_password.html", {"subject": user})


@_any_credential_perm
@never_cache
def invitation(request: HttpRequest, pk: int) -> HttpResponse:
    """An invited user's invitation: when it was sent and expires; send it by email or copy the link."""
    user = _target(request, pk)
    context = {"subject": user, "invitation": getattr(user, "invitation", None),
               "waiting": service.is_waiting_for_invitation(user)}
    if request.method == "POST":
        by_email = request.POST.get("how") == "email"
        try:
            link, inv = service.invite(actor=_actor(request), user=user, base_url=_base_url(request), email=by_email)
        except IdentityError as exc:
            _refused(request, exc)
            return redirect("accounts:user_invitation", pk=user.pk)
        if by_email:
            messages.success(request, f"Invitation emailed to {user.email}. It expires "
                             f"{inv.expires_at:%Y-%m-%d %H:%M} UTC; earlier links no longer work.")
            return redirect("accounts:user_detail", pk=user.pk)
        context |= {"link": link, "invitation": inv}
    return render(request, "credentials/invitation.html", context)


class RequiredActionsForm(forms.Form):
    kinds = forms.MultipleChoiceField(label="At the next sign-in, the user must", required=False,
                                      choices=RequiredAction.Kind.choices, widget=forms.CheckboxSelectMultiple)


@_any_credential_perm
@require_POST
def required_actions(request: HttpRequest, pk: int) -> HttpResponse:
    user = _target(request, pk)
    form = RequiredActionsForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose from the listed actions. (unknown_action)")
        return redirect("accounts:user_detail", pk=user.pk)
    try:
        added, removed = service.set_required_actions(actor=_actor(request), user=user,
                                                      kinds=set(form.cleaned_data["kinds"]))
    except IdentityError as exc:
        _refused(request, exc)
    else:
        messages.success(request, "Required actions saved." if added or removed else "Required actions unchanged.")
    return redirect("accounts:user_detail", pk=user.pk)


@_any_credential_perm
@require_POST
def unlock(request: HttpRequest, pk: int) -> HttpResponse:
    user = _target(request, pk)
    try:
        done = service.unlock(actor=_actor(request), user=user)
    except IdentityError as exc:
        _refused(request, exc)
    else:
        if done:
            messages.success(request, f"Unlocked {user.username}: they can sign in again.")
        else:
            messages.info(request, f"{user.username} is not locked.")
    return redirect("accounts:user_detail", pk=user.pk)


# --------------------------------------------------------------------------------------------
# Sign-in page: what a refused sign-in says, forgot password, links from email


def lock_message(until) -> str:
    """The sign-in page's lock message, with how long it lasts."""
    if until is None:
        return "Too many failed sign-in attempts. Wait a few minutes, then try again."
    from django.utils import timezone

    minutes = max(1, -(-int((until - timezone.now()).total_seconds()) // 60))
    return (f"Too many failed sign-in attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''} "
            f"(at {until:%H:%M} UTC), or ask an administrator to unlock your account.")


SIGN_IN_FAILED = ("The username or password is not correct. Invited and no password yet? "
                  "Use the link in your invitation email, or ask your administrator to send a new one.")
"""The password step's one answer to every failure, so it does not reveal who exists or is invited."""



class ForgotForm(forms.Form):
    identifier = forms.CharField(label="Username or email", max_length=254)


@csrf_protect
@never_cache
def forgot_password(request: HttpRequest) -> HttpResponse:
    """Ask for a reset link. The answer is the same whether or not the account exists."""
    form = ForgotForm(request.POST or None, initial={"identifier": request.GET.get("username", "")[:150]})
    if request.method == "POST" and form.is_valid():
        result = service.request_password_reset(identifier=form.cleaned_data["identifier"], request=request,
                                                base_url=_base_url(request))
        if result.throttled:
            return render(request, "credentials/forgot.html", {"form": form, "throttled": True}, status=429)
        return render(request, "credentials/forgot.html", {"done": True,
                                                           "lifetime": service._minutes(reset_tokens.timeout)})
    return render(request, "credentials/forgot.html", {"form": form})


class NewPasswordForm(forms.Form):
    password1 = forms.CharField(label="New password", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
                                strip=False)
    password2 = forms.CharField(label="Repeat the password",
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}), strip=False)

    def clean(self):
        data = super().clean()
        if data.get("password1") and data.get("password2") and data["password1"] != data["password2"]:
            self.add_error("password2", forms.ValidationError("The passwords differ.", code="password_mismatch"))
        return data


def _link_user(uidb64: str, token: str, kind: str) -> User | None:
    uid = decode_uid(uidb64)
    user = User.objects.select_related("profile").filter(pk=uid).first() if uid is not None else None
    return user if service.link_is_valid(user, token, kind) else None


# Django's PasswordResetConfirmView pattern (review 3 L1): the emailed URL carries the token once; a
# valid token moves into the session and the browser is sent on to the same URL with this word in
# its place, where the form lives. So form errors (400s that django.request logs), the access log
# lines of the form's requests and the Referer of anything the page loads never hold the token.
LINK_TOKEN_SEGMENT = "set-password"  # noqa: S105 - a URL word, not a secret
LINK_SESSION_KEY = "_idm_set_password_link"


def _invalid_link(request: HttpRequest, kind: str) -> HttpResponse:
    return render(request, "credentials/set_password.html", {"kind": kind, "invalid": True}, status=400)


def _set_password_page(request: HttpRequest, uidb64: str, token: str, kind: str) -> HttpResponse:
    url_name = "accounts:invitation_accept" if kind == "invitation" else "accounts:password_reset_confirm"
    if token != LINK_TOKEN_SEGMENT:
        if _link_user(uidb64, token, kind) is None:
            return _invalid_link(request, kind)
        request.session[LINK_SESSION_KEY] = {"kind": kind, "uid": uidb64, "token": token}
        return redirect(url_name, uidb64=uidb64, token=LINK_TOKEN_SEGMENT)
    link = request.session.get(LINK_SESSION_KEY) or {}
    if link.get("kind") != kind or link.get("uid") != uidb64:
        return _invalid_link(request, kind)  # no link opened in this browser (or another one since)
    token = link["token"]
    user = _link_user(uidb64, token, kind)
    if user is None:
        request.session.pop(LINK_SESSION_KEY, None)
        return _invalid_link(request, kind)
    context: dict = {"kind": kind}
    form = NewPasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            service.set_password_from_link(user=user, password=form.cleaned_data["password1"], request=request,
                                           kind=kind, token=token)
        except IdentityError as exc:
            if exc.code == "link_used":  # another request used the link first
                request.session.pop(LINK_SESSION_KEY, None)
                return _invalid_link(request, kind)
            form.add_error("password1", forms.ValidationError(exc.message, code=exc.code))
        else:
            request.session.pop(LINK_SESSION_KEY, None)
            return render(request, "credentials/set_password.html", context | {"done": True})
    return render(request, "credentials/set_password.html", context | {"form": form, "link_user": user},
                  status=400 if form.errors else 200)


@csrf_protect
@never_cache
def password_reset_confirm(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    return _set_password_page(request, uidb64, token, "reset")


@csrf_protect
@never_cache
def invitation_accept(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    return _set_password_page(request, uidb64, token, "invitation")


# --------------------------------------------------------------------------------------------
# Signed in: the required password change, recovery codes


@requires("console_access")
@never_cache
def required_password(request: HttpRequest) -> HttpResponse:
    """The password change a required action (temporary or generated password) asks for at sign-in."""
    form = NewPasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            service.change_own_password(user=request.user, password=form.cleaned_data["password1"], request=request)
        except IdentityError as exc:
            form.add_error("password1", forms.ValidationError(exc.message, code=exc.code))
        else:
            request.user.refresh_from_db()
            update_session_auth_hash(request, request.user)
            request.session.pop(REQUIRED_KEY, None)
            messages.success(request, "Your password has been changed.")
            return redirect(local_path(request.session.pop(NEXT_KEY, None), reverse("accounts:home")))
    return render(request, "credentials/required_password.html", {"form": form},
                  status=400 if form.errors else 200)


@requires("console_access")
@never_cache
def recovery_codes(request: HttpRequest) -> HttpResponse:
    """GET shows new codes once (right after enrolment) or how many are left; POST makes ten new ones."""
    from accounts.mfa import flow

    user = request.user
    if flow.confirmed_device(user) is None:
        messages.info(request, "Set up two-factor authentication first.")
        return redirect("accounts:account")
    codes = request.session.pop(RECOVERY_CODES_KEY, None)
    if request.method == "POST":
        codes = service.generate_recovery_codes(actor=_actor(request), user=user)
    return render(request, "credentials/recovery_codes.html", {
        "codes": codes, "left": service.recovery_codes_left(user),
        "next": local_path(request.session.pop(NEXT_KEY, None), reverse("accounts:home")) if codes else None,
    })


# --------------------------------------------------------------------------------------------
# Sessions on the user page


def _session_target(request: HttpRequest, pk: int) -> User:
    """The user whose sessions are ended: oneself, or a user one may manage credentials of."""
    user = _visible_user(request, pk)
    if user.pk != request.user.pk and not may_manage_credentials(Access.of(request.user), user):
        raise PermissionDenied("missing permission reset_passwords")
    return user


@requires("view_directory")
@require_POST
def session_end(request: HttpRequest, pk: int, session_id: int) -> HttpResponse:
    user = _session_target(request, pk)
    try:
        ended = service.sign_out_session(actor=_actor(request), user=user, session_id=session_id)
    except IdentityError as exc:
        _refused(request, exc)
    else:
        if ended:
            messages.success(request, f"Signed {user.username} out of that session.")
        else:
            messages.info(request, "That session had already ended.")
    return redirect("accounts:user_detail", pk=user.pk)


@requires("view_directory")
@require_POST
def sessions_end_all(request: HttpRequest, pk: int) -> HttpResponse:
    user = _session_target(request, pk)
    try:
        ended = service.sign_out_everywhere(actor=_actor(request), user=user,
                                            keep_session_key=request.session.session_key)
    except IdentityError as exc:
        _refused(request, exc)
    else:
        keep = " (your current session stays)" if user.pk == request.user.pk else ""
        messages.success(request, f"Ended {ended} session{'s' if ended != 1 else ''} of {user.username}{keep}.")
    return redirect("accounts:user_detail", pk=user.pk)
