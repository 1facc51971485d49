"""The "test sign-in" of the guided identity provider setup.

An admin with ``manage_identity`` starts one SP-initiated sign-in whose outstanding request returns
to ``test_result_path(provider)``. When the IdP's response comes back, the ACS view validates it
exactly as for a real sign-in (signature, audience, replay…) and then, instead of signing anyone
in, calls ``finish``: it records what the IdP asserted (NameID, attributes) and how idm maps it
(username, email, names; which idm user that would be, or why it would be refused) for the admin's
result page, and writes an ``sso.test_sign_in`` audit event. The admin's own session is untouched.

Results live in the cache for ``RESULT_TTL`` seconds under the request id; the result page shows
only the request this admin started (its id is in their session).
"""

from __future__ import annotations

from django.core.cache import caches
from django.urls import reverse

from accounts.identity.audit import record_event
from accounts.identity.types import Actor
from sso.attributes import Mapping, MappingFailed, map_identity
from sso.models import IdentityProvider

RESULT_TTL = 600
SESSION_KEY = "idm_sso_test_request"
MAX_VALUES = 20


def test_result_path(provider: IdentityProvider) -> str:
    return reverse("sso:provider_test_result", args=[provider.pk])


def is_test_return(provider: IdentityProvider, next_path: str | None) -> bool:
    """Whether a validated response answers a test sign-in (its request returns to the result page)."""
    return bool(next_path) and next_path == test_result_path(provider)


def _cache():
    return caches["default"]


def _key(provider_id: int, request_id: str) -> str:
    return f"idm:sso-test:{provider_id}:{request_id}"


def _would_sign_in(provider: IdentityProvider, identity) -> dict:
    """Which idm user the assertion would sign in, or why not, without linking or creating anyone."""
    from accounts.identity.types import Source
    from accounts.models import ExternalIdentity
    from accounts.selectors import user_by_username
    from sso.signin import SignInRefused, _check_state, _check_trust, _check_uses_provider

    linked = ExternalIdentity.objects.select_related("user").filter(
        source=Source.SAML, provider=provider.provider_key, external_id=identity.name_id).first()
    user = linked.user if linked else user_by_username(identity.username)
    if user is None:
        if provider.jit_enabled and provider.jit_org_id:
            from sso.policy import jit_powers

            try:
                _check_trust(provider, username=identity.username, target=jit_powers(provider))
            except SignInRefused as exc:
                return {"ok": False, "outcome": f"A new user {identity.username} would not be created: {exc.message}",
                        "code": exc.code}
            return {"ok": True, "outcome": f"A new user {identity.username} would be created in {provider.jit_org}."}
        return {"ok": False, "outcome": f"No idm user is named {identity.username}, and creating users on first "
                "sign-in is off: the sign-in would be refused.", "code": "unknown_user"}
    try:
        _check_state(user, identity.username)
        _check_uses_provider(user, provider, identity.username)
        _check_trust(provider, username=identity.username, user=user)
    except SignInRefused as exc:
        return {"ok": False, "outcome": f"{user.username} exists, but the sign-in would be refused: {exc.message}",
                "code": exc.code}
    how = "already linked to this provider" if linked else "found by username and would be linked"
    return {"ok": True, "outcome": f"{user.username} would be signed in ({how}).", "user_id": user.pk}


def finish(request, *, provider: IdentityProvider, request_id: str, session_info: dict) -> str:
    """Record the test result for ``request_id``; returns the result page URL. Signs no one in."""
    name_id = session_info.get("name_id")
    name_id_text = (getattr(name_id, "text", None) or str(name_id or "")).strip()
    attributes = {str(k)[:200]: [str(v)[:500] for v in (vals or [])][:MAX_VALUES]
                  for k, vals in list((session_info.get("ava") or {}).items())[:100]}
    mapping = Mapping.of(provider)
    result: dict = {"provider_id": provider.pk, "name_id": name_id_text[:500],
                    "name_id_format": str(getattr(name_id, "format", "") or "")[:200],
                    "attributes": sorted(attributes.items()),
                    "mapping": {"username": mapping.username or "NameID", "email": mapping.email or "—",
                                "first_name": mapping.first_name or "—", "last_name": mapping.last_name or "—"}}
    try:
        identity = map_identity(name_id=name_id_text, attributes=session_info.get("ava") or {}, mapping=mapping)
    except MappingFailed as exc:
        result |= {"mapped": None, "ok": False, "code": exc.code,
                   "outcome": f"The assertion cannot be mapped: {exc.message}"}
    else:
        result["mapped"] = {"username": identity.username, "email": identity.email,
                            "first_name": identity.first_name, "last_name": identity.last_name}
        result |= _would_sign_in(provider, identity)
    _cache().set(_key(provider.pk, request_id), result, timeout=RESULT_TTL)
    actor = Actor(label=f"SSO test: {provider.name}"[:255], type="system", source="system", enforce_scope=False,
                  request_id=getattr(request, "request_id", ""), ip=getattr(request, "client_ip", None))
    record_event(actor=actor, action="sso.test_sign_in", target_type="identity_provider", target_id=provider.pk,
                 target_label=provider.name, new={"name_id": result["name_id"], "ok": result.get("ok"),
                                                  "code": result.get("code", "")})
    return test_result_path(provider)


def result_for(request, provider: IdentityProvider) -> dict | None:
    """The result of the test this admin started for ``provider`` (``None`` if none or expired)."""
    started = request.session.get(SESSION_KEY) or {}
    request_id = started.get(str(provider.pk))
    if not request_id:
        return None
    return _cache().get(_key(provider.pk, request_id))


def remember_started(request, provider: IdentityProvider, request_id: str) -> None:
    started = dict(request.session.get(SESSION_KEY) or {})
    started[str(provider.pk)] = request_id
    request.session[SESSION_KEY] = started


def start(request, provider: IdentityProvider):
    """Send the admin's browser to the IdP with an AuthnRequest that returns to the test result page.

    Built like ``sso.views.SsoLoginView`` (same client, signing and request store); raises
    ``ValueError`` with a plain sentence when the provider cannot start a sign-in yet.
    """
    from sso.authn import AuthnStartFailed, start_authn_request

    if not provider.metadata_xml:
        raise ValueError("Load the identity provider's metadata first.")
    if not provider.enabled:
        raise ValueError("The provider is turned off: turn it on to test a sign-in.")
    try:
        request_id, response = start_authn_request(request, provider, relay_state=test_result_path(provider))
    except AuthnStartFailed as exc:  # metadata pysaml2 cannot use: say so plainly
        raise ValueError("idm cannot start a sign-in with this metadata (no usable sign-in endpoint or an "
                         "expired metadata document). Load current metadata from the identity provider.") from exc
    remember_started(request, provider, request_id)
    return response


def return_page(request, url: str):
    """The ACS answer to a test sign-in: a page that moves on to the result by itself.

    Not a redirect, and no new session cookie: the IdP's POST to the ACS is cross-site, and a redirect from it is cross-site too,
    so the browser would withhold the admin's SameSite=Lax session cookie and the result page would
    ask them to sign in. A navigation started by this page (meta refresh, or the link) is same-site.
    """
    from django.shortcuts import render

    if getattr(request, "user", None) is None or not request.user.is_authenticated:
        # pysaml2's identity cache wrote into a fresh session (the cross-site POST carried no cookie):
        # do not save it, or its cookie would replace the admin's session cookie and sign them out.
        request.session.modified = False
    return render(request, "sso/test_return.html", {"url": url})
