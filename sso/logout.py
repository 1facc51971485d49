"""Single logout started by the IdP: end the user's idm sessions server-side, answer with a signed LogoutResponse.

An IdP-initiated LogoutRequest usually reaches us as a cross-site POST or a redirect chain that does
not carry idm's ``SameSite=Lax`` session cookie, so the session cannot be found through the browser.
``remember_session`` records (provider, NameID, SessionIndex) -> session key at sign-in, and a valid,
signed LogoutRequest deletes the matching sessions from the session store (issue 4).

Trust: the request must be signed by a key in the provider's metadata (enveloped signature for
HTTP-POST; query-string signature for HTTP-Redirect, checked here over the raw query so an IdP's
percent-encoding choices do not matter), be issued by the provider, be addressed to our SLO URL,
and be used once.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
from dataclasses import dataclass
from importlib import import_module
from urllib.parse import unquote_plus

import saml2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from django.conf import settings
from django.utils import timezone
from saml2.client import Saml2Client
from saml2.request import LogoutRequest
from saml2.s_utils import status_message_factory
from saml2.samlp import STATUS_SUCCESS

from sso import replay
from sso.config import slo_url, sp_config
from sso.models import IdentityProvider, SsoSession
from sso.validation import LEGACY_ALGORITHMS, ResponseRejected, inspect_logout_request

logger = logging.getLogger(__name__)

# SigAlg of the HTTP-Redirect binding -> hash (RSA PKCS#1 v1.5 or ECDSA).
_REDIRECT_SIG_HASHES = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": hashes.SHA256,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": hashes.SHA384,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": hashes.SHA512,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": hashes.SHA256,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": hashes.SHA384,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": hashes.SHA512,
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1": hashes.SHA1,  # legacy opt-in only
}
# A LogoutRequest's IssueInstant may be up to a day off (pysaml2), so its id is remembered for two.
_LOGOUT_ID_TTL = 2 * 24 * 3600


def _session_store():
    return import_module(settings.SESSION_ENGINE).SessionStore


# --- bookkeeping at sign-in -------------------------------------------------------------------------


def remember_session(*, request, provider: IdentityProvider, user, name_id: str, session_index: str) -> None:
    """Record the session an SSO sign-in just started (call after ``auth.login``)."""
    key = request.session.session_key
    if not key:
        request.session.save()
        key = request.session.session_key
    cutoff = timezone.now() - dt.timedelta(seconds=settings.SESSION_COOKIE_AGE)
    SsoSession.objects.filter(created_at__lt=cutoff).delete()  # expired sessions; keeps the table small
    SsoSession.objects.update_or_create(session_key=key, defaults={
        "provider": provider, "user": user, "name_id": name_id[:1000], "session_index": (session_index or "")[:1000],
    })


def forget_session(session_key: str | None) -> None:
    """Drop the record of a session that ended locally (``user_logged_out``)."""
    if session_key:
        SsoSession.objects.filter(session_key=session_key).delete()


def end_sessions(*, provider: IdentityProvider, name_id: str, session_indexes: tuple[str, ...]) -> list[SsoSession]:
    """Delete the idm sessions of ``name_id`` at ``provider`` (only the named SessionIndexes, if any)."""
    rows = SsoSession.objects.select_related("user").filter(provider=provider, name_id=name_id[:1000])
    if session_indexes:
        # A session we recorded without an index (the IdP sent none at sign-in) still matches the subject.
        rows = rows.filter(session_index__in=[*session_indexes, ""])
    ended = list(rows)
    store = _session_store()
    for row in ended:
        store(session_key=row.session_key).delete()
    SsoSession.objects.filter(pk__in=[r.pk for r in ended]).delete()
    return ended


# --- the LogoutRequest ----------------------------------------------------------------------------------


@dataclass
class LogoutOutcome:
    """A verified LogoutRequest, the sessions it ended, and the HTTP answer to the IdP (pysaml2 http_info)."""

    name_id: str
    session_indexes: tuple[str, ...]
    ended: list[SsoSession]
    http_info: dict


def _raw_params(query_string: str) -> dict[str, str]:
    """The still-encoded query parameters; duplicates of the signed ones are refused (parser confusion)."""
    params: dict[str, str] = {}
    for piece in query_string.split("&"):
        name, _, value = piece.partition("=")
        if name in params and name in ("SAMLRequest", "RelayState", "SigAlg", "Signature"):
            raise ResponseRejected("malformed", f"parameter {name} given twice")
        params[name] = value
    return params


def _metadata_certs(client: Saml2Client, provider: IdentityProvider) -> list[x509.Certificate]:
    certs = []
    for _name, body in client.metadata.certs(provider.entity_id, "idpsso", "signing"):
        try:
            certs.append(x509.load_der_x509_certificate(base64.b64decode("".join(body.split()))))
        except (ValueError, binascii.Error):
            continue
    return certs


def verify_redirect_signature(query_string: str, certs: list[x509.Certificate], *, allow_legacy: bool) -> None:
    """Check the HTTP-Redirect binding signature (SAML bindings §3.4.4.1) over the raw query string."""
    params = _raw_params(query_string)
    if "Signature" not in params or "SigAlg" not in params:
        raise ResponseRejected("unsigned_logout_request", "no Signature/SigAlg in the query string")
    sigalg = unquote_plus(params["SigAlg"])
    hash_cls = _REDIRECT_SIG_HASHES.get(sigalg)
    if hash_cls is None or (sigalg in LEGACY_ALGORITHMS and not allow_legacy):
        code = "weak_algorithm" if sigalg in LEGACY_ALGORITHMS or "md5" in sigalg.lower() else "unsupported_algorithm"
        raise ResponseRejected(code, f"SigAlg {sigalg[:100]} is not accepted")
    signed = "&".join(f"{k}={params[k]}" for k in ("SAMLRequest", "RelayState", "SigAlg") if k in params).encode()
    try:
        signature = base64.b64decode(unquote_plus(params["Signature"]), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ResponseRejected("malformed", "Signature is not base64") from exc
    for cert in certs:
        key = cert.public_key()
        try:
            if isinstance(key, rsa.RSAPublicKey) and "rsa" in sigalg:
                key.verify(signature, signed, padding.PKCS1v15(), hash_cls())
            elif isinstance(key, ec.EllipticCurvePublicKey) and "ecdsa" in sigalg:
                key.verify(signature, signed, ec.ECDSA(hash_cls()))
            else:
                continue
        except InvalidSignature:
            continue
        return
    raise ResponseRejected("bad_signature", "the query-string signature matches no key in the IdP metadata")


def handle_logout_request(*, provider: IdentityProvider, data, binding: str, query_string: str = "") -> LogoutOutcome:
    """Verify an IdP's LogoutRequest, end the subject's sessions and build the signed LogoutResponse.

    Raises ``ResponseRejected`` (with a code for the audit record and the error page) when the request
    is not acceptable; nothing is ended then.
    """
    raw = data.get("SAMLRequest", "")
    conf = sp_config(provider)  # with our key: the LogoutResponse is signed
    client = Saml2Client(conf)
    try:
        xml = client.unravel(raw, binding, LogoutRequest.msgtype)
    except Exception as exc:  # bad base64 / deflate
        raise ResponseRejected("malformed", f"SAMLRequest could not be decoded: {type(exc).__name__}") from exc
    xml_bytes = xml.encode() if isinstance(xml, str) else xml
    facts = inspect_logout_request(xml_bytes, slo_url=slo_url(provider),
                                   allow_legacy_algorithms=provider.allow_legacy_algorithms,
                                   require_xml_signature=binding == saml2.BINDING_HTTP_POST)
    if facts.issuer != provider.entity_id:
        raise ResponseRejected("wrong_issuer", f"issuer {facts.issuer[:200]!r}")
    if binding == saml2.BINDING_HTTP_REDIRECT:
        verify_redirect_signature(query_string, _metadata_certs(client, provider),
                                  allow_legacy=provider.allow_legacy_algorithms)

    # pysaml2: the enveloped signature (required for POST; verified when present on Redirect) against the
    # metadata's keys only, version, Destination and IssueInstant.
    receivers = conf.endpoint("single_logout_service", binding, "sp")
    request = LogoutRequest(client.sec, receivers, conf.attribute_converters, timeslack=conf.accepted_time_diff or 0)
    try:
        request.loads(xml, binding, origdoc=raw, must=binding == saml2.BINDING_HTTP_POST)
        valid = request.verify()
    except Exception as exc:  # pysaml2 raises many types; each is a refusal
        code = "bad_signature" if "sign" in str(exc).lower() else "invalid_request"
        raise ResponseRejected(code, repr(exc)[:500]) from exc
    if not valid:
        raise ResponseRejected("invalid_request", "IssueInstant out of range")

    if not replay.remember_message(kind="logout", provider_id=provider.pk, message_id=facts.request_id,
                                   ttl=_LOGOUT_ID_TTL + provider.clock_skew_seconds):
        raise ResponseRejected("replayed", "LogoutRequest id seen before")

    # Success even when no session was left: the principal is signed out of idm either way. Built
    # before anything is ended, so a failure here leaves no half-done logout.
    http_info = _logout_response(client, provider, request.message, binding, data.get("RelayState", ""))
    ended = end_sessions(provider=provider, name_id=facts.name_id, session_indexes=facts.session_indexes)
    return LogoutOutcome(name_id=facts.name_id, session_indexes=facts.session_indexes, ended=ended,
                         http_info=http_info)


def _logout_response(client: Saml2Client, provider: IdentityProvider, message, binding: str,
                     relay_state: str) -> dict:
    """A signed LogoutResponse, by the binding the request came with when the IdP offers it, else the other."""
    status = status_message_factory("", STATUS_SUCCESS)
    others = [b for b in (saml2.BINDING_HTTP_REDIRECT, saml2.BINDING_HTTP_POST) if b != binding]
    last_error: Exception | None = None
    for response_binding in [binding, *others]:
        try:
            rinfo = client.response_args(message, [response_binding])
        except Exception as exc:  # the IdP has no SLO endpoint for this binding
            last_error = exc
            continue
        if not rinfo.get("destination"):
            continue
        on_redirect = rinfo["binding"] == saml2.BINDING_HTTP_REDIRECT
        try:
            response = client.create_logout_response(
                message, bindings=[rinfo["binding"]], status=status, sign=not on_redirect,
                sign_alg=provider.signature_algorithm, digest_alg=provider.digest_algorithm,
            )
        except Exception as exc:
            raise ResponseRejected("logout_response_failed", repr(exc)[:500], status=409) from exc
        try:
            return client.apply_binding(rinfo["binding"], str(response), rinfo["destination"], relay_state,
                                        response=True, sign=on_redirect, sigalg=provider.signature_algorithm)
        except Exception as exc:  # e.g. xmlsec1 failing: refuse rather than answer unsigned
            raise ResponseRejected("logout_response_failed", repr(exc)[:500], status=409) from exc
    raise ResponseRejected("no_slo_endpoint", f"the IdP metadata has no usable SLO endpoint ({last_error!r})")
