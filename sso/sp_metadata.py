"""idm's SP metadata for one provider: entity id, ACS, SLO and signing certificates (current + next)."""

from __future__ import annotations

from saml2 import md
from saml2.metadata import entity_descriptor
from saml2.xmldsig import KeyInfo, X509Certificate, X509Data

from sso import keys
from sso.config import sp_config
from sso.models import IdentityProvider


def _b64_body(cert_pem: str) -> str:
    return "".join(line for line in cert_pem.splitlines() if line and not line.startswith("-----"))


def sp_metadata_xml(provider: IdentityProvider) -> str:
    """The EntityDescriptor to load into the IdP; publishes the rollover key ahead of its use."""
    descriptor = entity_descriptor(sp_config(provider))
    nxt = keys.next_key()
    if nxt is not None:
        sp = descriptor.spsso_descriptor
        sp = sp[0] if isinstance(sp, list) else sp
        sp.key_descriptor.append(md.KeyDescriptor(
            use="signing",
            key_info=KeyInfo(x509_data=[X509Data(x509_certificate=X509Certificate(text=_b64_body(nxt.certificate_pem)))]),
        ))
    return str(descriptor)
