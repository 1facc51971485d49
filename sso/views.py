"""SAML endpoints and the two-step sign-in page. Thin: rules live in ``sso.signin`` / ``sso.validation``.

Per provider (``/sso/<id>/...``): ``login/`` (SP-initiated AuthnRequest), ``acs/`` (assertion consumer),
``metadata/`` (our SP metadata), ``logout/`` (SP-initiated SLO) and ``slo/`` (IdP logout requests and
responses). Shared: ``signin/`` (username first, then password or the org's IdP) and ``signout/``.

djangosaml2 keeps SAML state in ``request.saml_session`` (its own SameSite=None cookie). We point it
at the ordinary session instead and keep what must survive the IdP's cross-site POST (outstanding
request ids) server-side in ``sso.replay``.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import time
from urllib.parse import urlencode

import saml2
from django.conf import settings
from django.contrib import auth
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from djangosaml2.cache import IdentityCache
from djangosaml2.overrides import Saml2Client
from djangosaml2.views import (
    AssertionConsumerServiceView,
    LogoutInitView,
    LogoutView,
    _get_subject_id,
    _set_subject_id,
)
from saml2 import time_util
from saml2.response import StatusError, UnsolicitedResponse
from saml2.sigver import MissingKey, SignatureError
from saml2.validate import ResponseLifetimeExceed, ToEarly

from accounts.identity.audit import record_event
from accounts.identity.types import Actor, Source
from accounts.redirects import local_path
from sso import binding as browser_binding
from sso import replay, setup_test
from sso.authn import AuthnStartFailed, start_authn_request
from sso.config import acs_url, sp_config
from sso.logout import handle_logout_request, remember_session
from sso.models import IdentityProvider
from sso.signin import SignInRefused, sso_provider_for
from sso.validation import ResponseRejected, decode, inspect, lifetime_problem

logger = logging.getLogger(__name__)

SESSION_PROVIDER_KEY = "_idm_sso_provider"
BACKEND_PATH = "sso.backends.IdmSaml2Backend"

# What the user reads for each refusal; admins see the code and detail in the audit log.
_UNVERIFIABLE = "The sign-in response from your identity provider could not be verified."
MESSAGES = {
    "provider_unknown": "This sign-in method does not exist.",
    "provider_disabled": "This sign-in method is turned off. Contact your administrator.",
    "provider_not_configured": "This sign-in method is not set up yet. Contact your administrator.",
    "provider_unusable": "This sign-in method cannot be used right now (its identity provider settings are out of "
                         "date or not supported). Contact your administrator.",
    "missing_response": "No sign-in response was received. Start again from the sign-in page.",
    "malformed": "The sign-in response could not be read.",
    "unsolicited": "This sign-in did not start at idm. Start again from the sign-in page.",
    "unknown_in_response_to": "This sign-in did not start here, or it was already used. Start again from the "
                              "sign-in page.",
    "in_response_to_mismatch": "This sign-in response does not match a sign-in started here. Start again from "
                               "the sign-in page.",
    "replayed": "This sign-in response was already used. Start again from the sign-in page.",
    "other_browser": "This sign-in was started in another browser (or your browser did not keep idm's sign-in "
                     "cookie). Start again from the sign-in page in this browser.",
    "expired": "The sign-in response has expired. Start again from the sign-in page.",
    "not_yet_valid": "The sign-in response is not valid yet (check the clocks of idm and your identity provider).",
    "idp_error": "Your identity provider did not sign you in.",
    "method_not_allowed": "This address does not take that kind of request. Start again from the sign-in page.",
    "request_too_large": "The message from your identity provider was too large to read.",
}


def reference_id(request) -> str:
    """The id shown on error pages and stored on the audit event (the request id)."""
    return getattr(request, "request_id", "")[:16].upper() or "-"


def safe_next(value: str | None, default: str | None = None) -> str:
    """A local path to return to: never another host or scheme (no open redirect)."""
    return local_path(value, default or resolve_url(settings.LOGIN_REDIRECT_URL))


def audit_sign_in(request, *, provider: IdentityProvider | None, username: str, ok: bool, reason: str = "",
                  detail: str = "", user=None, extra: dict | None = None) -> None:
    """One audit event per SSO sign-in attempt: provider, username, reason."""
    actor = Actor(label=(username or "(unknown)")[:150], type="user" if user else "anonymous", user=user,
                  source=Source.SAML, provider=provider.provider_key if provider else "",
                  request_id=getattr(request, "request_id", ""), ip=getattr(request, "client_ip", None))
    new = {"method": "sso", "provider": provider.name if provider else None,
           "provider_id": provider.pk if provider else None}
    if not ok:
        new |= {"reason": reason, "reference": reference_id(request)} | (extra or {})
    record_event(actor=actor, action="auth.sso_login_succeeded" if ok else "auth.sso_login_failed",
                 target_type="user", target_id=user.pk if user else "", target_label=username[:150],
                 new=new, message=detail[:1000])


def error_page(request, *, code: str, status: int = 400, message: str = "", provider=None,
               title: str = "") -> HttpResponse:
    return render(request, "sso/error.html", {
        "message": message or MESSAGES.get(code, _UNVERIFIABLE), "code": code,
        "reference": reference_id(request), "provider": provider,
        "signin_url": reverse("sso:signin"), "title": title,
    }, status=status)


def _provider(provider_id) -> IdentityProvider | None:
    return IdentityProvider.objects.filter(pk=provider_id).first()


class FriendlyErrorsMixin:
    """Refusals Django makes before our code runs get the friendly page too, not a bare 400/405.

    An oversized body or too many fields (``DATA_UPLOAD_MAX_*``, raised on first access to ``request.POST``)
    and a method the endpoint does not take (405, with ``Allow``).
    """

    def dispatch(self, request, *args, **kwargs):
        try:
            return super().dispatch(request, *args, **kwargs)
        except (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent) as exc:
            logger.info("SAML endpoint refused an oversized request: %s", type(exc).__name__)
            return error_page(request, code="request_too_large", status=413)

    def http_method_not_allowed(self, request, *args, **kwargs):
        response = error_page(request, code="method_not_allowed", status=405)
        response["Allow"] = ", ".join(self._allowed_methods())
        return response


class SamlSessionMixin:
    """Use the ordinary session as djangosaml2's ``saml_session`` and bind the provider to the request."""

    def dispatch(self, request, *args, **kwargs):
        request.saml_session = request.session
        return super().dispatch(request, *args, **kwargs)


@method_decorator(never_cache, name="dispatch")
class SsoLoginView(FriendlyErrorsMixin, SamlSessionMixin, View):
    """SP-initiated sign-in: a signed AuthnRequest to the provider; its id is kept server-side."""

    def get(self, request, provider_id: int):
        provider = _provider(provider_id)
        if provider is None:
            return error_page(request, code="provider_unknown", status=404)
        if not provider.enabled:
            return error_page(request, code="provider_disabled", status=403, provider=provider)
        if not provider.metadata_xml:
            return error_page(request, code="provider_not_configured", status=409, provider=provider)
        next_path = safe_next(request.GET.get("next"))
        try:
            _request_id, response = start_authn_request(request, provider, relay_state=next_path)
        except AuthnStartFailed:  # metadata pysaml2 cannot use (expired validUntil, no supported binding...)
            logger.warning("SSO sign-in could not start: provider=%s ref=%s", provider.pk, reference_id(request),
                           exc_info=True)
            return error_page(request, code="provider_unusable", status=409, provider=provider)
        return response


def _not_on_or_after(assertion) -> dt.datetime | None:
    """The latest expiry an assertion carries (conditions and bearer confirmations)."""
    stamps = []
    if assertion.conditions is not None and assertion.conditions.not_on_or_after:
        stamps.append(assertion.conditions.not_on_or_after)
    for sc in assertion.subject.subject_confirmation if assertion.subject else []:
        data = sc.subject_confirmation_data
        if data is not None and data.not_on_or_after:
            stamps.append(data.not_on_or_after)
    if not stamps:
        return None
    latest = max(calendar.timegm(time_util.str_to_time(s)) for s in stamps)
    return dt.datetime.fromtimestamp(latest, dt.UTC)


def _code_for(exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, ResponseLifetimeExceed):
        return "expired"
    if isinstance(exc, ToEarly):
        return "not_yet_valid"
    if isinstance(exc, UnsolicitedResponse):
        return "unsolicited"
    if isinstance(exc, (SignatureError, MissingKey)) or "signature" in text.lower():
        return "bad_signature"
    if isinstance(exc, StatusError):
        return "idp_error"
    if "AudienceRestrictions" in text:
        return "wrong_audience"
    if "recipient" in text.lower():
        return "wrong_recipient"
    return "invalid_response"


def _timing_refusal(exc: Exception, facts, provider: IdentityProvider) -> Exception:
    """``expired`` / ``not_yet_valid`` with the clock difference when the response's times explain
    pysaml2's refusal (its own messages vary, or it just returns ``None``); else ``exc`` unchanged.
    A signature failure stays one: the times of an unverified response prove nothing."""
    if isinstance(exc, (SignatureError, MissingKey)):
        return exc
    timing = lifetime_problem(facts, now=time.time(), skew_seconds=provider.clock_skew_seconds)
    return timing or exc


@method_decorator([csrf_exempt, never_cache], name="dispatch")
class AcsView(FriendlyErrorsMixin, SamlSessionMixin, AssertionConsumerServiceView):
    """Assertion consumer: our checks, then pysaml2's, then replay protection, then the backend.

    Every refusal goes through ``handle_acs_failure``: an audit event and a friendly page with a
    reference id, status 4xx, no session.
    """

    def handle_acs_failure(self, request, exception=None, status=403, **kwargs):
        provider = kwargs.get("provider")
        if isinstance(exception, (ResponseRejected, SignInRefused)):
            code, status = exception.code, exception.status
            detail = getattr(exception, "detail", "") or getattr(exception, "message", "")
        else:
            code, detail = _code_for(exception) if exception else "invalid_response", repr(exception)[:500]
        username = kwargs.get("username", "") or getattr(exception, "username", "")
        audit_sign_in(request, provider=provider, username=username, ok=False, reason=code, detail=detail,
                      extra=getattr(exception, "extra", None))
        logger.info("SSO sign-in refused: provider=%s code=%s ref=%s", getattr(provider, "pk", None), code,
                    reference_id(request))
        message = exception.message if isinstance(exception, SignInRefused) else ""
        return error_page(request, code=code, status=status if 400 <= status < 500 else 400,
                          message=message, provider=provider)

    def get(self, request, provider_id: int):
        return error_page(request, code="missing_response", status=405)

    def post(self, request, provider_id: int):
        provider = _provider(provider_id)
        if provider is None:
            return error_page(request, code="provider_unknown", status=404)
        request.idm_sso_provider = provider
        facts = None
        try:
            if not provider.enabled:
                raise ResponseRejected("provider_disabled", status=403)
            if not provider.metadata_xml:
                raise ResponseRejected("provider_not_configured", status=409)
            raw = request.POST.get("SAMLResponse", "")
            if not raw:
                raise ResponseRejected("missing_response")
            facts = inspect(decode(raw), acs_url=acs_url(provider),
                            allow_legacy_algorithms=provider.allow_legacy_algorithms)
            if facts.issuer != provider.entity_id:
                raise ResponseRejected("wrong_issuer", f"issuer {facts.issuer[:200]!r}")
            outstanding = {}
            if facts.in_response_to:
                pending = replay.consume_request(provider_id=provider.pk, request_id=facts.in_response_to)
                if pending is None:
                    raise ResponseRejected("unknown_in_response_to")
                if not browser_binding.same_browser(request, pending.get("browser")):
                    # Login CSRF: a response to a request another browser started (issue 7 §4).
                    raise ResponseRejected("other_browser", "the request was started in another browser "
                                           "(browser token missing or different)", status=403)
                outstanding = {facts.in_response_to: pending["next"]}
            elif not provider.allow_idp_initiated:
                raise ResponseRejected("unsolicited", "IdP-initiated sign-in is off for this provider")
        except ResponseRejected as exc:
            return self.handle_acs_failure(request, exc, provider=provider,
                                           username=facts.claimed_name_id if facts else "")

        conf = sp_config(provider, signing_key=False)  # verify only: no private key to load
        client = Saml2Client(conf, identity_cache=IdentityCache(request.saml_session))
        try:
            response = client.parse_authn_request_response(raw, saml2.BINDING_HTTP_POST, outstanding)
        except Exception as exc:  # pysaml2 raises many types; each is a refusal, never a 500
            return self.handle_acs_failure(request, _timing_refusal(exc, facts, provider), provider=provider,
                                           username=facts.claimed_name_id)
        # pysaml2 answers None for a wrong Destination or status, and a response without an assertion
        # for an IssueInstant outside its window: refusals, named by the response's times if they explain it.
        if response is None or getattr(response, "assertion", None) is None:
            refusal = _timing_refusal(ResponseRejected("wrong_destination_or_status"), facts, provider)
            return self.handle_acs_failure(request, refusal, provider=provider, username=facts.claimed_name_id)

        assertion = response.assertion
        try:
            fresh = replay.remember_assertion(provider_id=provider.pk, assertion_id=assertion.id,
                                              not_on_or_after=_not_on_or_after(assertion),
                                              skew_seconds=provider.clock_skew_seconds)
        except Exception as exc:  # cache down: fail closed, a replay check we cannot make is a refusal
            logger.exception("SSO replay cache unavailable")
            return self.handle_acs_failure(request, ResponseRejected("replay_cache_unavailable", repr(exc)[:300]),
                                           provider=provider, username=facts.claimed_name_id)
        if not fresh:
            return self.handle_acs_failure(request, ResponseRejected("replayed"), provider=provider,
                                           username=facts.claimed_name_id)

        session_info = response.session_info()
        if facts.in_response_to and setup_test.is_test_return(provider, outstanding.get(facts.in_response_to)):
            # The console's "test sign-in": show what the IdP asserted and how it maps; sign no one in.
            return setup_test.return_page(request, setup_test.finish(
                request, provider=provider, request_id=facts.in_response_to, session_info=session_info))
        try:
            user = self.authenticate_user(request, session_info, provider)
        except SignInRefused as exc:
            return self.handle_acs_failure(request, exc, provider=provider,
                                           username=exc.username or facts.claimed_name_id)
        audit_sign_in(request, provider=provider, username=user.get_username(), ok=True, user=user)
        next_path = outstanding.get(facts.in_response_to) if facts.in_response_to else None
        if not next_path:  # IdP-initiated: RelayState may name a local path, nothing else
            next_path = safe_next(request.POST.get("RelayState"))
        return HttpResponseRedirect(safe_next(next_path))

    def authenticate_user(self, request, session_info, provider):  # noqa: D401 (djangosaml2 hook)
        """Authenticate through ``IdmSaml2Backend`` and start the session (djangosaml2 hook)."""
        from sso.backends import IdmSaml2Backend

        user = IdmSaml2Backend().authenticate(request, session_info=session_info, idm_provider=provider)
        auth.login(request, user, backend=BACKEND_PATH)
        _set_subject_id(request.saml_session, session_info["name_id"])
        request.session[SESSION_PROVIDER_KEY] = provider.pk
        # So an IdP-initiated LogoutRequest can end this session without the browser's cookie.
        name_id = session_info["name_id"]
        remember_session(request=request, provider=provider, user=user,
                         name_id=(getattr(name_id, "text", None) or str(name_id or "")).strip(),
                         session_index=session_info.get("session_index") or "")
        return user


class MetadataView(FriendlyErrorsMixin, View):
    """Our SP metadata for one provider, at a stable URL (also the SP entity id)."""

    def get(self, request, provider_id: int):
        provider = _provider(provider_id)
        if provider is None:
            return error_page(request, code="provider_unknown", status=404)
        from sso.sp_metadata import sp_metadata_xml

        response = HttpResponse(sp_metadata_xml(provider), content_type="application/samlmetadata+xml")
        if request.GET.get("download"):
            response["Content-Disposition"] = f'attachment; filename="idm-sp-{provider.pk}.xml"'
        return response


@method_decorator(never_cache, name="dispatch")
class SsoLogoutView(FriendlyErrorsMixin, SamlSessionMixin, LogoutInitView):
    """SP-initiated single logout (signed LogoutRequest); local sign-out when the IdP has no SLO.

    POST only signs out (CSRF-protected); a GET shows a confirmation page, so an ``<img>`` on another
    site cannot sign the user out (logout CSRF, issue 7 §5).
    """

    def get(self, request, *args, **kwargs):
        return signout_confirmation(request, action=request.path)

    def post(self, request, *args, **kwargs):
        signed_out = HttpResponseRedirect(resolve_url(settings.LOGOUT_REDIRECT_URL))
        provider = _provider(kwargs.get("provider_id"))
        if (provider is None or not provider.supports_slo or not provider.enabled
                or _get_subject_id(request.saml_session) is None):  # no SSO sign-in here: nothing to tell the IdP
            auth.logout(request)
            return signed_out
        request.idm_sso_provider = provider
        try:
            response = super().get(request)  # djangosaml2's LogoutInitView builds and sends the LogoutRequest
        except Exception as exc:  # pysaml2 cannot build the LogoutRequest: still end the local session
            logger.info("SP-initiated SLO failed: provider=%s %r", provider.pk, exc)
            response = None
        if response is None or response.status_code >= 400:  # djangosaml2's bare "not logged in any IdP" etc.
            auth.logout(request)
            return signed_out
        return response

    def handle_no_permission(self):  # signed out already: no sign-in detour (LoginRequiredMixin)
        return HttpResponseRedirect(resolve_url(settings.LOGOUT_REDIRECT_URL))


LOGOUT_MESSAGES = {
    "unsigned_logout_request": "This sign-out request was not signed by your identity provider.",
    "bad_signature": "This sign-out request could not be verified.",
    "wrong_issuer": "This sign-out request did not come from this identity provider.",
    "wrong_destination": "This sign-out request was meant for another service.",
    "replayed": "This sign-out request was already used.",
    "provider_disabled": "This sign-in method is turned off. Contact your administrator.",
    "provider_unknown": "This sign-in method does not exist.",
    "missing_message": "No sign-out message was received from your identity provider.",
}


def audit_logout(request, *, provider: IdentityProvider | None, ok: bool, name_id: str = "", user=None,
                 reason: str = "", detail: str = "", new: dict | None = None) -> None:
    """``auth.sso_logout`` (one per user whose sessions an IdP ended) or ``auth.sso_logout_failed``."""
    actor = Actor(label=f"SSO: {provider.name}"[:150] if provider else "(unknown IdP)", type="provider",
                  source=Source.SAML, provider=provider.provider_key if provider else "",
                  request_id=getattr(request, "request_id", ""), ip=getattr(request, "client_ip", None))
    payload = {"provider": provider.name if provider else None, "provider_id": provider.pk if provider else None,
               "name_id": name_id[:150]} | (new or {})
    if not ok:
        payload |= {"reason": reason, "reference": reference_id(request)}
    record_event(actor=actor, action="auth.sso_logout" if ok else "auth.sso_logout_failed",
                 target_type="user", target_id=user.pk if user else "",
                 target_label=(user.get_username() if user else name_id)[:150], new=payload, message=detail[:1000])


@method_decorator([csrf_exempt, never_cache], name="dispatch")
class SsoSloView(FriendlyErrorsMixin, SamlSessionMixin, LogoutView):
    """IdP-initiated logout requests (HTTP-Redirect or POST) and the IdP's responses to ours.

    A LogoutRequest ends the subject's sessions server-side (``sso.logout``): it works without the
    browser's session cookie, which a cross-site POST does not carry (SameSite=Lax).
    """

    def do_logout_service(self, request, data, binding, *args, **kwargs):
        provider = _provider(kwargs.get("provider_id"))
        if provider is None or not provider.enabled or not provider.metadata_xml:
            code = "provider_disabled" if provider is not None and not provider.enabled else "provider_unknown"
            if "SAMLRequest" in data:
                audit_logout(request, provider=provider, ok=False, reason=code)
            return self._refused(request, code, status=404 if code == "provider_unknown" else 403,
                                 provider=provider)
        request.idm_sso_provider = provider
        if "SAMLRequest" in data:
            return self._logout_request(request, provider, data, binding)
        if "SAMLResponse" not in data:  # djangosaml2 would answer a bare 400
            return self._refused(request, "missing_message", status=400, provider=provider)
        try:
            return super().do_logout_service(request, data, binding)
        except Exception as exc:  # a bad logout message must not become a 500
            logger.info("SLO message refused: %r", exc)
            auth.logout(request)
            return self._refused(request, "malformed", status=400, provider=provider)

    def _logout_request(self, request, provider, data, binding):
        try:
            outcome = handle_logout_request(provider=provider, data=data, binding=binding,
                                            query_string=request.META.get("QUERY_STRING", ""))
        except ResponseRejected as exc:
            audit_logout(request, provider=provider, ok=False, reason=exc.code, detail=exc.detail)
            logger.info("SLO request refused: provider=%s code=%s ref=%s", provider.pk, exc.code,
                        reference_id(request))
            return self._refused(request, exc.code, status=exc.status, provider=provider)
        ended_keys = {row.session_key for row in outcome.ended}
        users = {row.user_id: row.user for row in outcome.ended}
        for user in users.values() or [None]:
            audit_logout(request, provider=provider, ok=True, name_id=outcome.name_id, user=user, new={
                "binding": binding.rsplit(":", 1)[-1], "session_index": list(outcome.session_indexes),
                "sessions_ended": sum(1 for row in outcome.ended if user is None or row.user_id == user.pk),
            })
        if request.session.session_key in ended_keys:  # same-site request: drop the browser's copy too
            auth.logout(request)
        info = outcome.http_info
        if info.get("method") == "POST":  # an auto-submitting form carrying the signed LogoutResponse
            return HttpResponse(info["data"])
        return HttpResponseRedirect(dict(info["headers"])["Location"])

    @staticmethod
    def _refused(request, code: str, *, status: int, provider=None):
        return error_page(request, code=code, status=status if 400 <= status < 500 else 400, provider=provider,
                          message=LOGOUT_MESSAGES.get(code, "This sign-out request could not be accepted."),
                          title="Sign-out failed")


def signout_confirmation(request, *, action: str) -> HttpResponse:
    """The page a GET on a sign-out URL shows: one button that POSTs (with the CSRF token) to ``action``."""
    if not request.user.is_authenticated:
        return HttpResponseRedirect(resolve_url(settings.LOGOUT_REDIRECT_URL))
    return render(request, "sso/signout_confirm.html", {"action": action})


@method_decorator(never_cache, name="dispatch")
class SignOutView(View):
    """Sign out (POST only): through the IdP (SLO) after an SSO sign-in when it supports it, else locally.

    A GET shows a confirmation page with a POST form (logout CSRF, issue 7 §5).
    """

    def get(self, request):
        return signout_confirmation(request, action=reverse("sso:signout"))

    def post(self, request):
        provider_id = request.session.get(SESSION_PROVIDER_KEY)
        provider = _provider(provider_id) if provider_id else None
        if provider is not None and provider.supports_slo and provider.enabled:
            # The CSRF check of this POST covers the SLO too: no redirect to a URL a GET could trigger.
            return SsoLogoutView.as_view()(request, provider_id=provider.pk)
        auth.logout(request)
        return HttpResponseRedirect(resolve_url(settings.LOGOUT_REDIRECT_URL))


@method_decorator([csrf_protect, never_cache], name="dispatch")
class SignInView(View):
    """Two-step sign-in: username, then the password (local orgs, break-glass users) or the org's IdP.

    After the password, a TOTP code when required (``accounts.mfa.flow``); SSO users never get here.

    Unknown usernames also get the password step, so the page does not reveal who exists.
    """

    template_name = "sso/signin.html"

    def get(self, request):
        next_path = safe_next(request.GET.get("next"))
        if request.user.is_authenticated:
            return HttpResponseRedirect(next_path)
        return render(request, self.template_name, {"step": "username", "next": next_path})

    def post(self, request):
        from accounts.selectors import user_by_username

        next_path = safe_next(request.POST.get("next"))
        username = (request.POST.get("username") or "").strip()[:150]
        if not username:
            return render(request, self.template_name, {"step": "username", "next": next_path,
                                                        "error": "Enter your username."}, status=400)
        # The org's method decides before any password is looked at: a user who must sign in through their
        # IdP goes there from either step, whatever password was sent, so the password step cannot tell
        # a right local password from a wrong one (password oracle, issue 7 §5).
        # No username holds a NUL byte, and PostgreSQL refuses one in a query: treat it as unknown.
        user = user_by_username(username)  # None for NUL, nobody, or several legacy rows (review F9)
        provider = sso_provider_for(user) if user is not None else None
        if provider is not None:
            if not provider.enabled:
                return error_page(request, code="provider_disabled", status=403, provider=provider)
            return HttpResponseRedirect(f"{reverse('sso:login', args=[provider.pk])}?{urlencode({'next': next_path})}")
        if "password" not in request.POST:
            return render(request, self.template_name, {"step": "password", "username": username,
                                                        "next": next_path})
        from accounts.throttle import SignInThrottle

        throttle = SignInThrottle(username=username, ip=getattr(request, "client_ip", None))
        if throttle.blocked():
            refused = throttle.refused()  # one event per lock and per 100 refusals, not one per request
            if refused is not None:
                record_event(actor=Actor(label=username, type="anonymous",
                                         request_id=getattr(request, "request_id", ""),
                                         ip=getattr(request, "client_ip", None)),
                             action="auth.login_throttled", target_type="user", target_label=username,
                             new={"refused_attempts": refused, "locked": throttle.blocked_by()})
            from accounts.credentials.views import lock_message

            return render(request, self.template_name, {
                "step": "password", "username": username, "next": next_path,
                "error": lock_message(throttle.locked_until())}, status=429)
        user = auth.authenticate(request, username=username, password=request.POST.get("password", ""))
        if user is None:
            from accounts.backends import sign_in_failure

            failure = sign_in_failure(request)
            if failure is not None and not failure.password_checked:
                # The password could not be checked (the user's directory did not answer): say so, and
                # do not count it against the username.
                throttle.failure(count_username=False)
                return render(request, self.template_name, {"step": "password", "username": username,
                                                            "next": next_path, "error": failure.message},
                              status=503)
            throttle.failure()
            from accounts.credentials.views import SIGN_IN_FAILED

            # The same answer for every failure (unknown, wrong password, invited without a password):
            # it names the invitation for those who have one without telling anyone who they are.
            error = SIGN_IN_FAILED
            return render(request, self.template_name, {"step": "password", "username": username,
                                                        "next": next_path, "error": error}, status=400)
        from accounts.access import Access

        if not Access(user).has("console_access"):
            return render(request, self.template_name, {
                "step": "password", "username": username, "next": next_path,
                "error": "Your roles do not include console access. Ask an administrator."}, status=403)
        from accounts.mfa.flow import start as start_second_factor

        second_step = start_second_factor(request, user, next_path=next_path)  # org requires 2FA, or own device
        if second_step is not None:
            return second_step  # the failure counter is cleared only once the code is right too
        throttle.success()
        auth.login(request, user)
        return HttpResponseRedirect(next_path)
