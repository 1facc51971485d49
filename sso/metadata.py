"""IdP metadata: fetch (URL), parse (entity id, endpoints, signing certificates) and store.

Federation metadata (InCommon, Shibboleth federations) holds many entities; we keep only the chosen
IdP's ``EntityDescriptor`` so the per-request configuration stays small. The metadata document is the
trust anchor for signature checks, which is why TLS verification is on by default for https URLs.
"""

from __future__ import annotations

import base64
import calendar
import datetime as dt
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element, tostring  # noqa: S405 (serialising only; parsing is defusedxml)

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from defusedxml import ElementTree as SafeET
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, time_util

from sso import outbound
from sso.app_settings import app_settings

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
MAX_ENTITY_ID = 1000  # IdentityProvider.entity_id's max_length
# The SingleSignOnService bindings idm sends AuthnRequests by (sso.views.SsoLoginView).
SSO_BINDINGS = (BINDING_HTTP_REDIRECT, BINDING_HTTP_POST)


class MetadataError(Exception):
    """Metadata could not be fetched or used; ``message`` says how to fix it (shown to admins)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class CertInfo:
    fingerprint: str
    subject: str
    not_after: dt.datetime
    pem: str

    def as_dict(self) -> dict:
        return {"fingerprint": self.fingerprint, "subject": self.subject,
                "not_after": self.not_after.isoformat()}


@dataclass
class IdpMetadata:
    """What the console shows and the config loader needs about one IdP."""

    entity_id: str
    xml: str
    sso: list[dict] = field(default_factory=list)
    slo: list[dict] = field(default_factory=list)
    certs: list[CertInfo] = field(default_factory=list)
    valid_until: dt.datetime | None = None  # the EntityDescriptor's validUntil, as pysaml2 reads it

    def summary(self) -> dict:
        return {"sso": self.sso, "slo": self.slo, "certs": [c.as_dict() for c in self.certs],
                "valid_until": self.valid_until.isoformat() if self.valid_until else None}


def fetch(url: str, *, verify_tls: bool = True) -> str:
    """GET a metadata document (size-limited, TLS verified unless turned off for the provider).

    Only from public addresses, each redirect hop checked too (``sso.outbound``: SSRF, issue 7 §5).
    """
    if not url.lower().startswith(("https://", "http://")):
        raise MetadataError("metadata_url_scheme", "The metadata URL must start with https://.")
    try:
        with outbound.open_checked(
            url, timeout=app_settings.METADATA_TIMEOUT, verify_tls=verify_tls,
            headers={"Accept": "application/samlmetadata+xml, application/xml, text/xml"},
            allow_private=app_settings.METADATA_ALLOW_PRIVATE,
            allowed_networks=app_settings.METADATA_ALLOWED_NETWORKS,
        ) as resp:
            resp.raise_for_status()
            chunks, size = [], 0
            for chunk in resp.iter_content(65536):
                size += len(chunk)
                if size > app_settings.METADATA_MAX_BYTES:
                    raise MetadataError("metadata_too_large", "The metadata document is too large.")
                chunks.append(chunk)
    except outbound.AddressRefused as exc:
        raise MetadataError(exc.code, exc.message) from exc
    except requests.exceptions.SSLError as exc:
        raise MetadataError("metadata_tls", f"The IdP's TLS certificate could not be verified: {exc}. "
                            "Fix the IdP certificate (it must chain to a trusted CA).") from exc
    except requests.RequestException as exc:
        raise MetadataError("metadata_fetch", f"Could not download the metadata: {exc}. Check the URL and "
                            "that idm can reach the IdP.") from exc
    return b"".join(chunks).decode("utf-8", errors="replace")


def _cert_info(b64: str) -> CertInfo | None:
    try:
        der = base64.b64decode("".join(b64.split()))
        cert = x509.load_der_x509_certificate(der)
    except (ValueError, TypeError):
        return None
    pem = "-----BEGIN CERTIFICATE-----\n" + "\n".join(
        base64.b64encode(der).decode()[i:i + 64] for i in range(0, len(base64.b64encode(der)), 64)
    ) + "\n-----END CERTIFICATE-----\n"
    return CertInfo(fingerprint=cert.fingerprint(hashes.SHA256()).hex(), subject=cert.subject.rfc4514_string(),
                    not_after=cert.not_valid_after_utc, pem=pem)


def _valid_until(value: str | None) -> dt.datetime | None:
    """A ``validUntil`` read the way pysaml2 reads it when it loads the metadata for sign-in (UTC, optional
    fraction). A value pysaml2 cannot read (a timezone offset, say) is ignored by pysaml2, so by us too."""
    if not value:
        return None
    try:
        stamp = time_util.str_to_time(value)
    except (AttributeError, ValueError):
        return None
    return dt.datetime.fromtimestamp(calendar.timegm(stamp), dt.UTC)


def _idp_entities(root: Element) -> list[Element]:
    if root.tag == f"{{{MD}}}EntityDescriptor":
        candidates = [root]
    elif root.tag == f"{{{MD}}}EntitiesDescriptor":
        candidates = list(root.iter(f"{{{MD}}}EntityDescriptor"))
    else:
        raise MetadataError("metadata_not_saml", "This is not SAML 2.0 metadata (no EntityDescriptor).")
    return [e for e in candidates if e.find(f"{{{MD}}}IDPSSODescriptor") is not None]


def parse(xml: str, *, entity_id: str = "") -> IdpMetadata:
    """Parse IdP metadata; with several IdPs in the document ``entity_id`` picks one."""
    try:
        root = SafeET.fromstring(xml.encode() if isinstance(xml, str) else xml)
    except Exception as exc:  # defusedxml raises several types for malformed or hostile XML
        raise MetadataError("metadata_malformed", f"The metadata is not well-formed XML: {exc}.") from exc
    entities = _idp_entities(root)
    if not entities:
        raise MetadataError("metadata_no_idp", "The metadata describes no identity provider (IDPSSODescriptor).")
    if entity_id:
        entities = [e for e in entities if e.get("entityID") == entity_id]
        if not entities:
            raise MetadataError("metadata_entity_missing", f"The metadata has no IdP with entity id {entity_id!r}.")
    if len(entities) > 1:
        raise MetadataError("metadata_ambiguous", "The metadata lists several identity providers; enter the "
                            "entity id of yours.")
    entity = entities[0]
    idp = entity.find(f"{{{MD}}}IDPSSODescriptor")
    out = IdpMetadata(entity_id=entity.get("entityID", ""),
                      xml=xml if entity is root else tostring(entity, encoding="unicode"),
                      valid_until=_valid_until(entity.get("validUntil")))
    for svc in idp.findall(f"{{{MD}}}SingleSignOnService"):
        out.sso.append({"binding": svc.get("Binding", ""), "location": svc.get("Location", "")})
    for svc in idp.findall(f"{{{MD}}}SingleLogoutService"):
        out.slo.append({"binding": svc.get("Binding", ""), "location": svc.get("Location", "")})
    for kd in idp.findall(f"{{{MD}}}KeyDescriptor"):
        if kd.get("use", "signing") != "signing":
            continue
        for cert_el in kd.iter(f"{{{DS}}}X509Certificate"):
            info = _cert_info(cert_el.text or "")
            if info:
                out.certs.append(info)
    if not out.entity_id:
        raise MetadataError("metadata_no_entity_id", "The IdP's EntityDescriptor has no entityID.")
    if len(out.entity_id) > MAX_ENTITY_ID:
        raise MetadataError("metadata_entity_id_too_long", f"The IdP's entityID is longer than {MAX_ENTITY_ID} "
                            "characters; idm cannot store it.")
    if not out.sso:
        raise MetadataError("metadata_no_sso", "The IdP metadata lists no SingleSignOnService endpoint.")
    if not out.certs:
        raise MetadataError("metadata_no_cert", "The IdP metadata has no signing certificate; idm only "
                            "accepts signed assertions.")
    return out


def expiring_certs(summary: dict, *, days: int | None = None, now: dt.datetime | None = None) -> list[dict]:
    """Certificates of a stored summary that expire within ``days`` (default: the warning window)."""
    days = app_settings.CERT_EXPIRY_WARNING_DAYS if days is None else days
    now = now or dt.datetime.now(dt.UTC)
    out = []
    for cert in (summary or {}).get("certs", []):
        not_after = dt.datetime.fromisoformat(cert["not_after"])
        if not_after - now <= dt.timedelta(days=days):
            out.append({**cert, "expired": not_after <= now, "days_left": (not_after - now).days})
    return out


def _stored_valid_until(summary: dict, xml: str) -> dt.datetime | None:
    if "valid_until" in summary:
        return dt.datetime.fromisoformat(summary["valid_until"]) if summary["valid_until"] else None
    try:  # a summary stored before it recorded validUntil: read the stored EntityDescriptor
        return _valid_until(SafeET.fromstring(xml.encode()).get("validUntil"))
    except Exception:  # noqa: BLE001 (stored by parse(), so well-formed; never break a console page)
        return None


def _in_days(delta: dt.timedelta) -> str:
    return "less than a day" if delta.days < 1 else "1 day" if delta.days == 1 else f"{delta.days} days"


def metadata_warnings(summary: dict, xml: str = "", *, days: int | None = None,
                      now: dt.datetime | None = None) -> list[dict]:
    """Why sign-in with a provider's stored metadata is refused, or soon will be (console warnings).

    pysaml2 ignores an EntityDescriptor past its ``validUntil``, and idm can only send an AuthnRequest
    by HTTP-Redirect or HTTP-POST, so such metadata is stored (upload, refresh) but unusable. Each
    warning is ``{"code", "badge", "summary", "advice"}`` with code ``metadata_expired``,
    ``metadata_expiring`` (within ``days``, default ``IDM_SSO_CERT_EXPIRY_WARNING_DAYS``) or
    ``metadata_no_binding``.
    """
    summary = summary or {}
    if not summary and not xml:
        return []  # no metadata loaded yet
    days = app_settings.CERT_EXPIRY_WARNING_DAYS if days is None else days
    now = now or dt.datetime.now(dt.UTC)
    advice = "Ask the IdP administrator for current metadata, then refresh or re-upload it."
    out = []
    valid_until = _stored_valid_until(summary, xml)
    if valid_until is not None:
        when = valid_until.strftime("%Y-%m-%d %H:%M UTC")
        left = valid_until - now
        if left <= dt.timedelta(0):
            out.append({"code": "metadata_expired", "badge": "Metadata expired", "advice": advice,
                        "summary": f"This metadata expired on {when}; sign-in with this provider is refused "
                                   "until it is refreshed."})
        elif left <= dt.timedelta(days=days):
            out.append({"code": "metadata_expiring", "badge": f"Metadata expires in {_in_days(left)}",
                        "advice": advice,
                        "summary": f"This metadata expires on {when} (in {_in_days(left)}); after that, sign-in "
                                   "with this provider is refused until it is refreshed."})
    if not any(s.get("binding") in SSO_BINDINGS for s in summary.get("sso", [])):
        out.append({"code": "metadata_no_binding", "badge": "No supported sign-in binding",
                    "advice": "Ask the IdP administrator to enable an HTTP-Redirect or HTTP-POST "
                              "SingleSignOnService endpoint, then refresh or re-upload the metadata.",
                    "summary": "This metadata has no supported sign-in binding (idm signs in by HTTP-Redirect "
                               "or HTTP-POST); sign-in with this provider is refused until it is refreshed."})
    return out
