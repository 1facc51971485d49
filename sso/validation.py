"""Checks on a SAMLResponse before pysaml2 sees it: encoding, structure, algorithms, comments.

pysaml2 verifies signatures, conditions, audience, recipient and destination. These stricter,
cheap checks close classes of attack the library alone leaves to configuration:

* XML signature wrapping: exactly one ``Assertion``, a direct child of the ``Response``; signatures
  only on the Response and the Assertion, each referencing its own parent's ID; IDs unique.
* Weak algorithms: SHA-1 refused unless the provider opts in for a legacy IdP; MD5 always refused.
* Comments or processing instructions inside the assertion (NameID comment injection), DTDs and
  entities (defusedxml).
"""

from __future__ import annotations

import base64
import binascii
import calendar
import time
from dataclasses import dataclass
from xml.etree.ElementTree import Comment, ProcessingInstruction, TreeBuilder  # noqa: S405

from defusedxml import ElementTree as SafeET
from saml2 import time_util

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"

# What idm accepts in an IdP's signatures; SP metadata advertises exactly these (sso.sp_metadata).
ACCEPTED_SIGNATURE_METHODS = (
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
    "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1",
)
ACCEPTED_DIGEST_METHODS = (
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
)
# SHA-1: only for a provider whose legacy switch is on. MD5: never.
LEGACY_SIGNATURE_METHODS = ("http://www.w3.org/2000/09/xmldsig#rsa-sha1",)
LEGACY_DIGEST_METHODS = ("http://www.w3.org/2000/09/xmldsig#sha1",)
STRONG_ALGORITHMS = frozenset(ACCEPTED_SIGNATURE_METHODS + ACCEPTED_DIGEST_METHODS)
LEGACY_ALGORITHMS = frozenset(LEGACY_SIGNATURE_METHODS + LEGACY_DIGEST_METHODS)
# Canonicalisation and transforms a SAML signature may use (no XSLT/XPath transforms).
ALLOWED_TRANSFORMS = frozenset({
    "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
})


class ResponseRejected(Exception):
    """A response refused before or during validation; ``code`` names the reason (audit, error page)."""

    def __init__(self, code: str, detail: str = "", *, status: int = 400, extra: dict | None = None):
        super().__init__(detail or code)
        self.code = code
        self.detail = detail or code
        self.status = status
        self.extra = extra or {}  # structured facts for the audit event (e.g. the clock difference)


@dataclass(frozen=True)
class ResponseFacts:
    """What the checks learnt about the (not yet trusted) response."""

    response_id: str
    in_response_to: str
    issuer: str
    assertion_id: str
    claimed_name_id: str  # unverified, for the audit record of a failure only
    issue_instant: str = ""
    not_on_or_after: tuple[str, ...] = ()  # Conditions and bearer SubjectConfirmationData
    not_before: tuple[str, ...] = ()


def decode(saml_response: str, *, max_bytes: int = 1_000_000) -> bytes:
    """Strict base64 decoding of the POSTed SAMLResponse."""
    if not saml_response or len(saml_response) > max_bytes * 4 // 3 + 8:
        raise ResponseRejected("malformed", "empty or oversized SAMLResponse")
    try:
        return base64.b64decode("".join(saml_response.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ResponseRejected("malformed", "SAMLResponse is not valid base64") from exc


def _parse(xml: bytes):
    parser = SafeET.XMLParser(target=TreeBuilder(insert_comments=True, insert_pis=True), forbid_dtd=True)
    try:
        parser.feed(xml)
        return parser.close()
    except Exception as exc:  # ParseError, DTDForbidden, EntitiesForbidden...
        raise ResponseRejected("malformed", f"SAMLResponse is not acceptable XML: {type(exc).__name__}") from exc


def _check_signature(sig, parent_id: str, allow_legacy: bool) -> None:
    refs = sig.findall(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
    if len(refs) != 1 or refs[0].get("URI") != f"#{parent_id}":
        raise ResponseRejected("signature_wrapping", "signature does not reference its own element")
    for tag in ("SignatureMethod", "DigestMethod"):
        for el in sig.iter(f"{{{DS}}}{tag}"):
            alg = el.get("Algorithm", "")
            if alg in STRONG_ALGORITHMS or (allow_legacy and alg in LEGACY_ALGORITHMS):
                continue
            code = "weak_algorithm" if alg in LEGACY_ALGORITHMS or "md5" in alg.lower() else "unsupported_algorithm"
            raise ResponseRejected(code, f"{tag} {alg} is not accepted")
    for el in sig.iter(f"{{{DS}}}Transform"):
        if el.get("Algorithm", "") not in ALLOWED_TRANSFORMS:
            raise ResponseRejected("unsupported_algorithm", f"transform {el.get('Algorithm')} is not accepted")
    if sig.find(f"{{{DS}}}Object") is not None:
        raise ResponseRejected("signature_wrapping", "ds:Object inside a signature")


def inspect(xml: bytes, *, acs_url: str, allow_legacy_algorithms: bool = False) -> ResponseFacts:
    """Run the structural checks; raise ``ResponseRejected`` or return what the response claims.

    ``acs_url`` is where this response must be addressed: the Response ``Destination`` (when present)
    and every bearer ``SubjectConfirmationData/@Recipient`` must equal it. pysaml2 checks the
    destination but not the recipient unless given conversation info, so both are checked here.
    """
    root = _parse(xml)
    if root.tag != f"{{{SAMLP}}}Response":
        raise ResponseRejected("malformed", "not a samlp:Response")
    destination = root.get("Destination")
    if destination is not None and destination != acs_url:
        raise ResponseRejected("wrong_destination", f"Destination {destination[:200]!r}")

    ids: set[str] = set()
    for el in root.iter():
        if el.tag in (Comment, ProcessingInstruction):
            continue
        value = el.get("ID")
        if value is not None:
            if value in ids:
                raise ResponseRejected("signature_wrapping", "duplicate ID attribute")
            ids.add(value)

    if root.find(f".//{{{SAML}}}EncryptedAssertion") is not None:
        raise ResponseRejected("encrypted_assertion", "encrypted assertions are not supported")
    assertions = list(root.iter(f"{{{SAML}}}Assertion"))
    if not assertions:
        raise ResponseRejected("no_assertion", "the response carries no assertion")
    direct = root.findall(f"{{{SAML}}}Assertion")
    if len(assertions) != 1 or len(direct) != 1:
        raise ResponseRejected("signature_wrapping", "more than one assertion, or an assertion out of place")
    assertion = direct[0]

    for el in assertion.iter():
        if el.tag in (Comment, ProcessingInstruction):
            raise ResponseRejected("comment_in_assertion", "comment or processing instruction inside the assertion")

    # Signatures only where SAML puts them, each signing its own parent.
    allowed_sigs = {id(s) for s in root.findall(f"{{{DS}}}Signature")} | {
        id(s) for s in assertion.findall(f"{{{DS}}}Signature")}
    for sig in root.iter(f"{{{DS}}}Signature"):
        if id(sig) not in allowed_sigs:
            raise ResponseRejected("signature_wrapping", "signature in an unexpected place")
    response_sigs = root.findall(f"{{{DS}}}Signature")
    assertion_sigs = assertion.findall(f"{{{DS}}}Signature")
    if len(response_sigs) > 1 or len(assertion_sigs) > 1:
        raise ResponseRejected("signature_wrapping", "several signatures on one element")
    if not assertion_sigs:
        raise ResponseRejected("unsigned_assertion", "the assertion is not signed")
    for sig in response_sigs:
        _check_signature(sig, root.get("ID", ""), allow_legacy_algorithms)
    _check_signature(assertion_sigs[0], assertion.get("ID", ""), allow_legacy_algorithms)

    confirmations = assertion.findall(f"{{{SAML}}}Subject/{{{SAML}}}SubjectConfirmation")
    bearer = [c for c in confirmations if c.get("Method") == "urn:oasis:names:tc:SAML:2.0:cm:bearer"]
    if not bearer:
        raise ResponseRejected("no_bearer_confirmation", "the assertion has no bearer subject confirmation")
    in_response_to = root.get("InResponseTo", "")
    for conf in bearer:
        data = conf.find(f"{{{SAML}}}SubjectConfirmationData")
        recipient = data.get("Recipient") if data is not None else None
        if recipient != acs_url:
            raise ResponseRejected("wrong_recipient", f"Recipient {str(recipient)[:200]!r}")
        # The unsigned Response's InResponseTo must name the request the signed assertion answers: a
        # response to another browser's request with the Response's InResponseTo removed must not pass
        # as IdP-initiated (and skip the browser binding, issue 7 §4).
        if (data.get("InResponseTo") or "") != in_response_to:
            raise ResponseRejected("in_response_to_mismatch", "the Response and its assertion answer "
                                   "different requests (or only one of them names a request)")

    issuer = root.findtext(f"{{{SAML}}}Issuer") or assertion.findtext(f"{{{SAML}}}Issuer") or ""
    name_id = assertion.findtext(f"{{{SAML}}}Subject/{{{SAML}}}NameID") or ""
    timed = [el for el in (assertion.find(f"{{{SAML}}}Conditions"),
                           *(c.find(f"{{{SAML}}}SubjectConfirmationData") for c in bearer)) if el is not None]
    return ResponseFacts(
        response_id=root.get("ID", ""), in_response_to=in_response_to, issuer=issuer.strip(),
        assertion_id=assertion.get("ID", ""), claimed_name_id=name_id.strip()[:150],
        issue_instant=root.get("IssueInstant", ""),
        not_on_or_after=tuple(el.get("NotOnOrAfter") for el in timed if el.get("NotOnOrAfter")),
        not_before=tuple(el.get("NotBefore") for el in timed if el.get("NotBefore")),
    )


# pysaml2 refuses a Response issued more than a day away from its clock (``issue_instant_ok``).
ISSUE_INSTANT_WINDOW = 24 * 3600


def _epoch(value: str) -> int | None:
    try:
        return calendar.timegm(time_util.str_to_time(value))
    except (AttributeError, TypeError, ValueError):
        return None


def lifetime_problem(facts: ResponseFacts, *, now: float, skew_seconds: int) -> ResponseRejected | None:
    """Name a timing refusal so clock problems can be diagnosed (issue 7 §4): ``expired`` or
    ``not_yet_valid``, with the clock difference in seconds, or ``None`` when the times are fine.

    Run on a response pysaml2 refused (after its signature check), so the times are the IdP's.
    """
    def stamp(seconds: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))

    expiries = [e for e in map(_epoch, facts.not_on_or_after) if e is not None]
    issued = _epoch(facts.issue_instant) if facts.issue_instant else None
    if expiries and now > min(expiries) + skew_seconds:
        late = int(now - min(expiries))
        return ResponseRejected("expired", f"the assertion expired at {stamp(min(expiries))}; idm's clock reads "
                                f"{stamp(now)}, {late} s later (allowed clock skew {skew_seconds} s)",
                                extra={"clock_difference_seconds": late, "not_on_or_after": stamp(min(expiries)),
                                       "idm_time": stamp(now), "clock_skew_seconds": skew_seconds})
    if issued is not None and now - issued > ISSUE_INSTANT_WINDOW + skew_seconds:
        late = int(now - issued)
        return ResponseRejected("expired", f"the response was issued at {stamp(issued)}; idm's clock reads "
                                f"{stamp(now)}, {late} s later (at most {ISSUE_INSTANT_WINDOW} s accepted)",
                                extra={"clock_difference_seconds": late, "issue_instant": stamp(issued),
                                       "idm_time": stamp(now), "clock_skew_seconds": skew_seconds})
    starts = [e for e in map(_epoch, facts.not_before) if e is not None and e - now > skew_seconds]
    if issued is not None and issued - now > ISSUE_INSTANT_WINDOW + skew_seconds:
        starts.append(issued)
    if starts:
        ahead = int(max(starts) - now)
        return ResponseRejected("not_yet_valid", f"the response is valid from {stamp(max(starts))}; idm's clock "
                                f"reads {stamp(now)}, {ahead} s earlier (allowed clock skew {skew_seconds} s)",
                                extra={"clock_difference_seconds": -ahead, "not_before": stamp(max(starts)),
                                       "idm_time": stamp(now), "clock_skew_seconds": skew_seconds})
    return None


@dataclass(frozen=True)
class LogoutRequestFacts:
    """What an IdP's (not yet trusted) LogoutRequest claims."""

    request_id: str
    issuer: str
    name_id: str
    session_indexes: tuple[str, ...]
    signed: bool  # carries an enveloped XML signature (POST binding)


def inspect_logout_request(xml: bytes, *, slo_url: str, allow_legacy_algorithms: bool = False,
                           require_xml_signature: bool) -> LogoutRequestFacts:
    """Structural checks on a LogoutRequest before pysaml2 verifies it.

    The HTTP-POST binding carries the signature inside the message (required then); the HTTP-Redirect
    binding signs the query string instead (checked by ``sso.logout``), so an enveloped signature is
    optional there but, when present, must sign the request itself with an accepted algorithm.
    ``Destination`` is required and must be our SLO URL (SAML bindings §3.4.5.2, §3.5.5.2).
    """
    root = _parse(xml)
    if root.tag != f"{{{SAMLP}}}LogoutRequest":
        raise ResponseRejected("malformed", "not a samlp:LogoutRequest")
    for el in root.iter():
        if el.tag in (Comment, ProcessingInstruction):
            raise ResponseRejected("comment_in_message", "comment or processing instruction in the request")
    if root.get("Destination") != slo_url:
        raise ResponseRejected("wrong_destination", f"Destination {str(root.get('Destination'))[:200]!r}")
    sigs = list(root.iter(f"{{{DS}}}Signature"))
    direct = root.findall(f"{{{DS}}}Signature")
    if len(sigs) > 1 or len(sigs) != len(direct):
        raise ResponseRejected("signature_wrapping", "signature in an unexpected place")
    if direct:
        _check_signature(direct[0], root.get("ID", ""), allow_legacy_algorithms)
    elif require_xml_signature:
        raise ResponseRejected("unsigned_logout_request", "the LogoutRequest is not signed")
    if root.find(f"{{{SAML}}}EncryptedID") is not None or root.find(f"{{{SAML}}}BaseID") is not None:
        raise ResponseRejected("unsupported_name_id", "only a plain NameID is supported")
    name_id = (root.findtext(f"{{{SAML}}}NameID") or "").strip()
    if not name_id:
        raise ResponseRejected("malformed", "the LogoutRequest names no NameID")
    return LogoutRequestFacts(
        request_id=root.get("ID", ""), issuer=(root.findtext(f"{{{SAML}}}Issuer") or "").strip(),
        name_id=name_id, signed=bool(direct),
        session_indexes=tuple((el.text or "").strip() for el in root.findall(f"{{{SAMLP}}}SessionIndex")),
    )
