"""Starting an SP-initiated sign-in: one signed AuthnRequest, remembered server-side and bound to the
browser that asked (``sso.binding``). Shared by the sign-in view and the console's test sign-in."""

from __future__ import annotations

import saml2
from django.http import HttpResponse, HttpResponseRedirect
from djangosaml2.overrides import Saml2Client

from sso import binding as browser_binding
from sso import replay
from sso.config import sp_config


class AuthnStartFailed(Exception):
    """pysaml2 could not build a request from the provider's metadata (expired, no usable endpoint)."""


def start_authn_request(request, provider, *, relay_state: str) -> tuple[str, HttpResponse]:
    """Build the AuthnRequest (Redirect binding when the IdP offers it, else POST), remember its id
    with the browser's binding hash, and return ``(request_id, response)`` carrying the binding cookie."""
    bindings = {s["binding"] for s in provider.metadata_summary.get("sso", [])}
    binding = saml2.BINDING_HTTP_REDIRECT if saml2.BINDING_HTTP_REDIRECT in bindings else saml2.BINDING_HTTP_POST
    kwargs = {}
    if provider.sign_authn_requests:
        kwargs = {"sigalg": provider.signature_algorithm, "digest_alg": provider.digest_algorithm}
    try:
        client = Saml2Client(sp_config(provider))
        request_id, info = client.prepare_for_authenticate(
            entityid=provider.entity_id, relay_state=relay_state, binding=binding,
            sign=provider.sign_authn_requests, **kwargs,
        )
    except Exception as exc:  # anything pysaml2 raises on metadata it cannot use
        raise AuthnStartFailed(str(exc)) from exc
    token = browser_binding.browser_token(request)
    replay.remember_request(provider_id=provider.pk, request_id=request_id, next_path=relay_state,
                            browser_hash=browser_binding.token_hash(token))
    if binding == saml2.BINDING_HTTP_REDIRECT:
        response = HttpResponseRedirect(dict(info["headers"])["Location"])
    else:
        response = HttpResponse(info["data"])
    browser_binding.set_cookie(response, token)
    return request_id, response
