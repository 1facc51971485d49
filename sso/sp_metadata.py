"""idm's SP metadata for one provider: entity id, ACS, SLO, signing certificates (current + next) and
the signature and digest algorithms idm accepts (SAML metadata algorithm support profile)."""

from __future__ import annotations

from saml2 import md
from saml2.extension.algsupport import NAMESPACE as ALGSUPPORT_NS
from saml2.extension.algsupport import DigestMethod, SigningMethod
from saml2.metadata import entity_descriptor
from saml2.xmldsig import KeyInfo, X509Certificate, X509Data

from sso import keys
from sso.config import sp_config
from sso.models import IdentityProvider
from sso.validation import (
    ACCEPTED_DIGEST_METHODS,
    ACCEPTED_SIGNATURE_METHODS,
    LEGACY_DIGEST_METHODS,
    LEGACY_SIGNATURE_METHODS,
)


def _b64_body(cert_pem: str) -> str:
    return "".join(line for line in cert_pem.splitlines() if line and not line.startswith("-----"))


def accepted_algorithms(provider: IdentityProvider) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(digest methods, signature methods) ``sso.validation`` accepts from ``provider``."""
    legacy = provider.allow_legacy_algorithms
    return (ACCEPTED_DIGEST_METHODS + (LEGACY_DIGEST_METHODS if legacy else ()),
            ACCEPTED_SIGNATURE_METHODS + (LEGACY_SIGNATURE_METHODS if legacy else ()))


def _advertise_algorithms(descriptor, provider: IdentityProvider) -> None:
    """Replace pysaml2's list (everything xmlsec1 knows, MD5 and SHA-1 included) by what idm accepts."""
    if descriptor.extensions is None:
        descriptor.extensions = md.Extensions()
    ext = descriptor.extensions
    ext.extension_elements = [e for e in ext.extension_elements
                              if not (e.namespace == ALGSUPPORT_NS and e.tag in ("DigestMethod", "SigningMethod"))]
    digests, signatures = accepted_algorithms(provider)
    for alg in digests:
        ext.add_extension_element(DigestMethod(algorithm=alg))
    for alg in signatures:
        ext.add_extension_element(SigningMethod(algorithm=alg))


def sp_metadata_xml(provider: IdentityProvider) -> str:
    """The EntityDescriptor to load into the IdP; publishes the rollover key ahead of its use."""
    descriptor = entity_descriptor(sp_config(provider))
    _advertise_algorithms(descriptor, provider)
    nxt = keys.next_key()
    if nxt is not None:
        sp = descriptor.spsso_descriptor
        sp = sp[0] if isinstance(sp, list) else sp
        sp.key_descriptor.append(md.KeyDescriptor(
            use="signing",
            key_info=KeyInfo(x509_data=[X509Data(x509_certificate=X509Certificate(text=_b64_body(nxt.certificate_pem)))]),
        ))
    return str(descriptor)
