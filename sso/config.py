"""djangosaml2's ``SAML_CONFIG_LOADER``: a pysaml2 SP configuration built from the database.

Each provider is its own SP (entity id, ACS and SLO URLs under ``/sso/<id>/``), so the URL tells which
provider's metadata and settings apply. Configurations are cached per process and keyed by the
provider's ``updated_at`` and the SP key fingerprint: a metadata refresh (for example a rotated IdP
certificate) or a key rollover takes effect on the next request, with no restart.
"""

from __future__ import annotations

import threading
from pathlib import Path

import saml2
from django.http import Http404
from django.urls import reverse
from saml2.config import SPConfig

from sso import keys
from sso.app_settings import app_settings
from sso.models import IdentityProvider

ATTRIBUTE_MAP_DIR = str(Path(__file__).resolve().parent / "attributemaps")
_cache: dict[tuple, SPConfig] = {}
_lock = threading.Lock()


def sp_entity_id(provider: IdentityProvider) -> str:
    """Our entity id towards ``provider``: the stable URL of its SP metadata."""
    return app_settings.BASE_URL + reverse("sso:metadata", args=[provider.pk])


def acs_url(provider: IdentityProvider) -> str:
    return app_settings.BASE_URL + reverse("sso:acs", args=[provider.pk])


def slo_url(provider: IdentityProvider) -> str:
    return app_settings.BASE_URL + reverse("sso:slo", args=[provider.pk])


def config_dict(provider: IdentityProvider, *, signing_key: bool = True) -> dict:
    """The pysaml2 configuration of one provider (see pysaml2's "Configuration of SAML2 entities").

    ``signing_key=False`` leaves our private key out: the ACS only verifies, and pysaml2 would
    otherwise parse (and validate) the RSA key on every request, over half of the ACS time.
    """
    signing = keys.signing_key_files()
    sp: dict = {
        "name": "idm",
        "endpoints": {
            "assertion_consumer_service": [(acs_url(provider), saml2.BINDING_HTTP_POST)],
            "single_logout_service": [
                (slo_url(provider), saml2.BINDING_HTTP_REDIRECT),
                (slo_url(provider), saml2.BINDING_HTTP_POST),
            ],
        },
        # Security: signed assertions always; our own messages signed with SHA-256 (issue 4).
        "want_assertions_signed": True,
        "want_response_signed": False,
        "authn_requests_signed": provider.sign_authn_requests,
        "logout_requests_signed": True,
        "logout_responses_signed": True,
        "signing_algorithm": provider.signature_algorithm,
        "digest_algorithm": provider.digest_algorithm,
        "only_use_keys_in_metadata": True,
        "allow_unsolicited": provider.allow_idp_initiated,
        "idp": [provider.entity_id] if provider.entity_id else [],
        "name_id_format_allow_create": False,
        "force_authn": False,
    }
    if provider.name_id_format:
        sp["name_id_format"] = [provider.name_id_format]
    if provider.authn_context_class:
        sp["requested_authn_context"] = {
            "authn_context_class_ref": [provider.authn_context_class],
            "comparison": provider.authn_context_comparison,
        }
    return {
        "entityid": sp_entity_id(provider),
        "xmlsec_binary": app_settings.XMLSEC_BINARY,
        "attribute_map_dir": ATTRIBUTE_MAP_DIR,
        "allow_unknown_attributes": True,
        "accepted_time_diff": provider.clock_skew_seconds,
        "service": {"sp": sp},
        "metadata": {"inline": [provider.metadata_xml]} if provider.metadata_xml else {},
        "debug": False,
    } | ({"key_file": signing.key_file, "cert_file": signing.cert_file} if signing_key else {})


def sp_config(provider: IdentityProvider, *, signing_key: bool = True) -> SPConfig:
    """The (cached) ``SPConfig`` of ``provider``; rebuilt whenever the provider or SP key changes."""
    signing = keys.signing_key_files()
    key = (provider.pk, signing_key, provider.updated_at, signing.fingerprint, app_settings.BASE_URL,
           app_settings.XMLSEC_BINARY)
    conf = _cache.get(key)
    if conf is None:
        conf = SPConfig()
        conf.load(config_dict(provider, signing_key=signing_key))
        with _lock:
            for stale in [k for k in _cache if k[:2] == (provider.pk, signing_key)]:
                del _cache[stale]
            _cache[key] = conf
    return conf


def provider_for_request(request) -> IdentityProvider:
    """The provider a SAML view serves: set by the view, else from the URL's ``provider_id``."""
    provider = getattr(request, "idm_sso_provider", None)
    if provider is not None:
        return provider
    match = getattr(request, "resolver_match", None)
    provider_id = match.kwargs.get("provider_id") if match else None
    try:
        return IdentityProvider.objects.get(pk=provider_id)
    except (IdentityProvider.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("No such identity provider.") from exc


def config_loader(request) -> SPConfig:
    """``SAML_CONFIG_LOADER`` entry point (djangosaml2 calls it with the request)."""
    return sp_config(provider_for_request(request))
