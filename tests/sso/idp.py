"""A real SAML IdP for tests: pysaml2's ``Server`` with keys made by ``cryptography`` at run time.

``TestIdP.response(...)`` issues a signed SAMLResponse like a production IdP would; knobs cover the
validation cases of issue 4. ``tamper`` callbacks edit the unsigned XML, which is then signed with
the IdP key by pysaml2's own ``sign_statement`` (xmlsec1), so the signature is genuinely valid over
the altered content (that is what the attacks need).

No checked-in keys: ``make_keys`` writes fresh RSA-2048 pairs under a pytest tmp dir.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from collections.abc import Callable
from pathlib import Path

import saml2
from saml2 import saml
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor
from saml2.saml import NAMEID_FORMAT_UNSPECIFIED, NameID
from saml2.server import Server
from saml2.sigver import pre_signature_part
from saml2.xmldsig import DIGEST_SHA1, DIGEST_SHA256, SIG_RSA_SHA1, SIG_RSA_SHA256

from sso.keys import generate_key_pair

IDP_ENTITY_ID = "https://idp.example.test/saml/metadata"
XMLSEC = "/usr/bin/xmlsec1"
AUTHN = {"class_ref": saml.AUTHN_PASSWORD, "authn_auth": "https://idp.example.test"}


def make_keys(directory: Path, name: str) -> tuple[str, str]:
    """Write an RSA-2048 key pair (PEM) under ``directory``; returns (key_file, cert_file)."""
    key_pem, cert_pem = generate_key_pair(f"test {name}", bits=2048, years=1)
    directory.mkdir(parents=True, exist_ok=True)
    key_file, cert_file = directory / f"{name}.key", directory / f"{name}.crt"
    key_file.write_text(key_pem)
    cert_file.write_text(cert_pem)
    return str(key_file), str(cert_file)


class TestIdP:
    """pysaml2 in the IdP role."""

    __test__ = False  # not a pytest class

    def __init__(self, *, key_file: str, cert_file: str, base_url: str = "https://idp.example.test",
                 entity_id: str = IDP_ENTITY_ID, slo: bool = True, sp_metadata: str | None = None,
                 lifetime_minutes: int = 5, slo_bindings: tuple[str, ...] = (saml2.BINDING_HTTP_REDIRECT,)):
        self.base_url = base_url.rstrip("/")
        self.entity_id = entity_id
        self.key_file, self.cert_file = key_file, cert_file
        endpoints = {
            "single_sign_on_service": [(f"{self.base_url}/sso/redirect", saml2.BINDING_HTTP_REDIRECT),
                                       (f"{self.base_url}/sso/post", saml2.BINDING_HTTP_POST)],
        }
        if slo:
            endpoints["single_logout_service"] = [(f"{self.base_url}/slo", b) for b in slo_bindings]
        conf = {
            "entityid": entity_id,
            "xmlsec_binary": XMLSEC,
            "key_file": key_file,
            "cert_file": cert_file,
            "service": {"idp": {
                "endpoints": endpoints,
                "policy": {"default": {"lifetime": {"minutes": lifetime_minutes}, "attribute_restrictions": None,
                                       "name_form": saml.NAME_FORMAT_URI}},
                "name_id_format": [NAMEID_FORMAT_UNSPECIFIED],
                "want_authn_requests_signed": False,
            }},
            "metadata": {"inline": [sp_metadata]} if sp_metadata else {},
        }
        self.config = IdPConfig()
        self.config.load(conf)
        self.server = Server(config=self.config)

    def metadata(self) -> str:
        return str(entity_descriptor(self.config))

    # -- responses -----------------------------------------------------------------------------------

    def response_xml(self, *, sp_entity_id: str, acs_url: str, name_id: str, in_response_to: str | None = None,
                     attributes: dict | None = None, sign: bool = True, legacy_sha1: bool = False,
                     sign_response: bool = False, audience: str | None = None,
                     tamper: Callable[[str], str] | None = None) -> str:
        """A SAMLResponse document (XML text). With ``tamper``, the callback edits the unsigned XML and the
        assertion is signed afterwards (if ``sign``)."""
        sign_alg, digest_alg = (SIG_RSA_SHA1, DIGEST_SHA1) if legacy_sha1 else (SIG_RSA_SHA256, DIGEST_SHA256)
        identity = attributes if attributes is not None else {
            "mail": ["alice@example.com"], "givenName": ["Alice"], "sn": ["Liddell"]}
        # pysaml2 signs the assertion as it builds it; unsigned or re-signed variants strip that
        # signature and sign again afterwards (an unsigned build needs the SP's metadata).
        resp = self.server.create_authn_response(
            identity=identity, in_response_to=in_response_to, destination=acs_url,
            sp_entity_id=audience or sp_entity_id, name_id=NameID(format=NAMEID_FORMAT_UNSPECIFIED, text=name_id),
            authn=AUTHN, sign_assertion=True, sign_response=False, sign_alg=sign_alg, digest_alg=digest_alg,
        )
        xml = str(resp)
        if tamper is None and sign and not sign_response:
            return xml
        xml = strip_signatures(xml)
        if tamper is not None:
            xml = tamper(xml)
        if sign:
            xml = self.sign_element(xml, "Assertion", sign_alg=sign_alg, digest_alg=digest_alg)
        if sign_response:
            xml = self.sign_element(xml, "Response", sign_alg=sign_alg, digest_alg=digest_alg)
        return xml

    def sign_element(self, xml: str, element: str = "Assertion", *, sign_alg: str = SIG_RSA_SHA256,
                     digest_alg: str = DIGEST_SHA256) -> str:
        """Insert a signature template into the first ``element`` (Assertion, Response, LogoutRequest) and sign it with
        xmlsec1 through pysaml2, exactly as pysaml2's IdP does."""
        match = re.search(rf"<(\w+:)?{element}\b[^>]*\sID=\"([^\"]+)\"", xml)
        element_id = match.group(2)
        cert_body = "".join(line for line in Path(self.cert_file).read_text().splitlines() if "-----" not in line)
        template = str(pre_signature_part(ident=element_id, public_key=cert_body,
                                          sign_alg=sign_alg, digest_alg=digest_alg))
        issuer_end = re.compile(r"</(\w+:)?Issuer>").search(xml, match.end())
        xml = xml[:issuer_end.end()] + template + xml[issuer_end.end():]
        node = f"urn:oasis:names:tc:SAML:2.0:{'assertion' if element == 'Assertion' else 'protocol'}:{element}"
        return self.server.sec.sign_statement(xml, node_name=node, node_id=element_id)

    # -- logout ----------------------------------------------------------------------------------------

    def logout_request(self, *, destination: str, name_id: str, binding: str, session_indexes: list[str] | None = None,
                       sign: bool = True, sign_alg: str = SIG_RSA_SHA256, digest_alg: str = DIGEST_SHA256,
                       relay_state: str = "", tamper: Callable[[str], str] | None = None) -> dict:
        """An IdP-initiated LogoutRequest as the browser would carry it: ``{"url", "data"}`` (GET query or
        POST form). HTTP-Redirect signs the query string, HTTP-POST the message (SAML bindings)."""
        _id, req = self.server.create_logout_request(
            destination=destination, issuer_entity_id=self.entity_id,
            name_id=NameID(format=NAMEID_FORMAT_UNSPECIFIED, text=name_id), session_indexes=session_indexes,
            sign=False,
        )
        xml = str(req)
        if tamper is not None:
            xml = tamper(xml)
        if sign and binding == saml2.BINDING_HTTP_POST:
            xml = self.sign_element(xml, "LogoutRequest", sign_alg=sign_alg, digest_alg=digest_alg)
        info = self.server.apply_binding(binding, xml, destination, relay_state=relay_state,
                                         sign=sign and binding == saml2.BINDING_HTTP_REDIRECT, sigalg=sign_alg)
        if binding == saml2.BINDING_HTTP_REDIRECT:
            return {"url": dict(info["headers"])["Location"], "data": None}
        fields = dict(re.findall(r'name="(SAMLRequest|RelayState)" value="([^"]*)"', info["data"]))
        return {"url": destination, "data": fields}

    @staticmethod
    def encode(xml: str) -> str:
        return base64.b64encode(xml.encode()).decode()


def strip_signatures(xml: str) -> str:
    """Remove every ds:Signature element."""
    return re.sub(r"<(\w+:)?Signature\b.*?</(\w+:)?Signature>", "", xml, flags=re.S)


def shift_times(xml: str, delta: dt.timedelta) -> str:
    """Move every SAML timestamp of ``xml`` by ``delta`` (expired / not-yet-valid assertions)."""

    def move(match: re.Match) -> str:
        value = dt.datetime.strptime(match.group(2)[:19], "%Y-%m-%dT%H:%M:%S") + delta
        return f'{match.group(1)}="{value:%Y-%m-%dT%H:%M:%SZ}"'

    return re.sub(r'(IssueInstant|NotBefore|NotOnOrAfter|AuthnInstant|SessionNotOnOrAfter)="([^"]+)"', move, xml)


def new_id() -> str:
    return "id-" + uuid.uuid4().hex
