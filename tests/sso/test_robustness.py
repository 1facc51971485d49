"""Adversarial sweep of every SSO route: each persona, GET and POST, with empty, garbage and oversized input.

The SAML endpoints are public and take their input from other sites (an IdP's POST, a redirect chain), so
anything may arrive there. For every request: never a 500, never a traceback in the body. Public SAML
endpoints answer a failure with the friendly page (``templates/sso/error.html``, ``data-sso-error``) and a
4xx; a missing provider is a 404, a disabled one a 403. The console pages need ``manage_identity``:
anonymous users are sent to sign-in, other personas get 403/404/405, never a page.

The path ids are filled with an existing provider, a missing id, a non-ASCII id, a disabled provider, one
whose metadata never loaded and one whose metadata expired. Mirrors ``tests/accounts/test_robustness.py``
(same personas plus an Identity Management Administrator, same traceback markers).
"""

from __future__ import annotations

import base64
import logging
import re
import zlib
from dataclasses import dataclass
from urllib.parse import unquote_plus, urlencode, urlparse

import pytest
import saml2
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts.access import Access
from sso.config import acs_url, slo_url, sp_entity_id
from sso.models import IdentityProvider
from tests.sso.idp import strip_signatures

pytestmark = pytest.mark.django_db

NAMESPACE = "sso"
# Per-provider SAML endpoints: public, answered by the friendly error page when they refuse.
SAML_ROUTES = {"sso:login", "sso:acs", "sso:metadata", "sso:logout", "sso:slo"}
PUBLIC = SAML_ROUTES | {"sso:signin", "sso:signout"}
# Console pages (Identity management -> Authentication): all need manage_identity.
CONSOLE = {"sso:provider_list", "sso:provider_add", "sso:provider_detail", "sso:provider_edit",
           "sso:provider_refresh", "sso:provider_delete", "sso:provider_break_glass", "sso:sp_key_action",
           "sso:provider_setup_start", "sso:provider_setup", "sso:provider_test", "sso:provider_test_result",
           "sso:user_link_remove", "sso:provider_confirm_trust"}
POST_ONLY = {"sso:provider_refresh", "sso:sp_key_action", "sso:user_link_remove", "sso:provider_confirm_trust"}
# Console actions on users (the user page) need manage_users, not manage_identity.
ROUTE_PERMS = {"sso:user_link_remove": "manage_users"}
# POSTs that change what the sweep walks over; run after everything else.
LAST = ("sso:provider_delete",)

HUGE = "x" * 20_000
NUL = "a\x00b"
UNICODE = "Zoë 💥 \u202e١٢ ²"
EVIL = "//evil.example/x"
NOT_BASE64 = "%%%not-base64%%%"


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def deflate_b64(data: bytes | str) -> str:
    """The HTTP-Redirect binding's encoding: raw DEFLATE, then base64."""
    raw = data.encode() if isinstance(data, str) else data
    compressor = zlib.compressobj(wbits=-15)
    return b64(compressor.compress(raw) + compressor.flush())


# One bad value per entry (a bad value must not hide another); SAML payloads built from the real IdP are
# added per provider (``saml_payloads``).
SAML_GARBAGE: list[dict] = [
    {"SAMLResponse": ""}, {"SAMLResponse": NOT_BASE64}, {"SAMLResponse": "²"}, {"SAMLResponse": "١٢٣٤"},
    {"SAMLResponse": NUL}, {"SAMLResponse": HUGE}, {"SAMLResponse": UNICODE}, {"SAMLResponse": b64("not xml")},
    {"SAMLResponse": b64(b"\x00\xff\xfe garbage")}, {"SAMLResponse": b64("<x/>")},
    {"SAMLResponse": deflate_b64("<x/>")}, {"SAMLResponse": b64('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a '
                                                                '"aaaa">]><x>&a;&a;</x>')},
    {"SAMLResponse": b64('<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>')},
    {"SAMLResponse": b64('<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>')},
    {"SAMLRequest": ""}, {"SAMLRequest": NOT_BASE64}, {"SAMLRequest": "²"}, {"SAMLRequest": NUL},
    {"SAMLRequest": HUGE}, {"SAMLRequest": b64("not deflated")}, {"SAMLRequest": deflate_b64(b"\x00\xff garbage")},
    {"SAMLRequest": deflate_b64("<x/>")}, {"SAMLRequest": b64("<x/>")},
    {"SAMLRequest": deflate_b64('<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>')},
    {"SAMLRequest": b64('<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>')},
    {"SAMLRequest": deflate_b64('<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>')},
    {"RelayState": EVIL}, {"RelayState": NUL}, {"RelayState": HUGE}, {"RelayState": "²"},
    {"SAMLRequest": deflate_b64("<x/>"), "SigAlg": "²", "Signature": NOT_BASE64},
    {"SAMLRequest": deflate_b64("<x/>"), "SigAlg": NUL, "Signature": NUL},
    {"SAMLRequest": deflate_b64("<x/>"), "SigAlg": "http://www.w3.org/2001/04/xmldsig-more#rsa-md5",
     "Signature": b64("x" * 256)},
    {"SigAlg": HUGE, "Signature": HUGE}, {"Signature": "²"},
    {"next": EVIL}, {"next": NUL}, {"next": HUGE}, {"next": "²"}, {"download": NUL},
]
KITCHEN_SINK = {k: v for query in reversed(SAML_GARBAGE) for k, v in query.items()}
GARBAGE_POST = {
    **KITCHEN_SINK, "username": HUGE, "password": NUL, "name": NUL, "enabled": "²", "metadata_url": "²",
    "entity_id": HUGE, "clock_skew_seconds": "²", "jit_org": "abc", "digest_algorithm": "evil",
    "signature_algorithm": NUL, "authn_context_comparison": UNICODE, "usernames": NUL, "provider": "²",
    "mapping_preset": "evil", "use_default_mapping": "maybe",
}
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "/', "Exception Value", "django/core/handlers")
FRIENDLY = "data-sso-error="
# Hosts a redirect may lead to: ours, and the test IdP's (sign-in and sign-out round trips).
REDIRECT_HOSTS = {"", "testserver", "idp.example.test"}


@pytest.fixture(autouse=True)
def quiet_logs():
    """Thousands of expected refusals: don't format a logged traceback for each (500s fail by status)."""
    loggers = [logging.getLogger(name) for name in ("django.request", "django.security", "sso", "djangosaml2",
                                                      "saml2")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    yield
    for lg, level in zip(loggers, levels, strict=True):
        lg.setLevel(level)


MISSING_ID = 999_999


def expired_metadata(idp) -> str:
    """The IdP's metadata past its ``validUntil``: idm stores it, pysaml2 then ignores it."""
    return re.sub(r"(<\w*:?EntityDescriptor)", r'\1 validUntil="2001-01-01T00:00:00Z"', idp.metadata(), count=1)


def saml_payloads(provider: IdentityProvider, idp, attacker_idp) -> list[dict]:
    """Valid-looking messages that must still be refused: unsigned, signed by a foreign key, unsigned logout."""
    acs, slo = acs_url(provider), slo_url(provider)
    unsigned = idp.response_xml(sp_entity_id=sp_entity_id(provider), acs_url=acs, name_id="alice", sign=False)
    forged = attacker_idp.response_xml(sp_entity_id=sp_entity_id(provider), acs_url=acs, name_id="alice")
    logout = idp.logout_request(destination=slo, name_id="alice", binding=saml2.BINDING_HTTP_REDIRECT, sign=False)
    logout_query = dict(part.split("=", 1) for part in urlparse(logout["url"]).query.split("&"))
    logout_xml = zlib.decompress(base64.b64decode(unquote_plus(logout_query["SAMLRequest"])), -15).decode()
    return [
        {"SAMLResponse": b64(unsigned)}, {"SAMLResponse": b64(forged)},
        {"SAMLResponse": b64(strip_signatures(forged)), "RelayState": EVIL},
        {"SAMLRequest": b64(logout_xml)}, {"SAMLRequest": deflate_b64(logout_xml)},
        {"SAMLRequest": deflate_b64(logout_xml), "SigAlg": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
         "Signature": b64("x" * 256)},
        {"SAMLRequest": deflate_b64(logout_xml), "SigAlg": "²", "Signature": "²"},
        {"SAMLResponse": deflate_b64(logout_xml.replace("LogoutRequest", "LogoutResponse"))},
    ]


@pytest.fixture
def providers(provider_factory, idp, org_factory, system_actor) -> dict[str, IdentityProvider | None]:
    """The provider variants the path ids are filled with (``missing``: no such id)."""
    from accounts.identity.orgs import org_update_settings
    from accounts.identity.types import AuthMethod

    existing = provider_factory("Robust IdP", allow_idp_initiated=True)  # IdP-initiated: garbage gets further
    # In use by an org, so the sweep's own POST to delete it is refused and later routes still find it.
    org_update_settings(actor=system_actor, org=org_factory("Robust SSO Org"), auth_method=AuthMethod.SSO,
                        auth_provider=existing)
    return {
        "existing": existing,
        "missing": None,
        "disabled": provider_factory("Disabled IdP", enabled=False),
        "unconfigured": IdentityProvider.objects.create(name="Unconfigured IdP"),  # its metadata URL never loaded
        "stale": provider_factory("Stale IdP", metadata=expired_metadata(idp)),  # pysaml2 ignores expired metadata
    }


@pytest.fixture
def personas(role_personas) -> dict[str, User | None]:
    return role_personas


@pytest.fixture
def payloads(providers, idp, attacker_idp) -> list[dict]:
    return saml_payloads(providers["existing"], idp, attacker_idp)


def route_names() -> list[tuple[str, URLPattern]]:
    """Every named route of the SSO URLconf, enumerated from the resolver."""
    out = []
    for entry in get_resolver().url_patterns:
        if isinstance(entry, URLResolver) and entry.namespace == NAMESPACE:
            for pattern in entry.url_patterns:
                assert isinstance(pattern, URLPattern) and pattern.name, pattern
                out.append((f"{NAMESPACE}:{pattern.name}", pattern))
    assert out, "the sso namespace is not mounted"
    return out


def test_every_route_has_an_expectation():
    assert {name for name, _ in route_names()} == PUBLIC | CONSOLE


@dataclass
class Target:
    url: str
    name: str
    variant: str  # existing | missing | disabled | unconfigured | action name | "" (no parameters)
    exists: bool


SP_KEY_ACTIONS = ("add-next", "promote", "discard-next", "evil", "²")


def targets(providers: dict[str, IdentityProvider | None]) -> list[Target]:
    """Each route with its path parameters filled: every provider variant, or every key action."""
    out = []
    for name, pattern in route_names():
        keys = list(pattern.pattern.converters)
        if not keys:
            out.append(Target(reverse(name), name, "", True))
        elif keys == ["user_pk", "link_pk"]:  # no such user (the link's own cases: test_link_takeover.py)
            out.append(Target(reverse(name, kwargs={"user_pk": MISSING_ID, "link_pk": MISSING_ID}), name, "missing",
                              False))
        elif keys == ["action"]:
            for action in SP_KEY_ACTIONS:
                # The slug converter refuses "²": that URL is a 404 from the resolver.
                url = reverse(name, kwargs={"action": action}) if action.isascii() else f"/sso/sp-key/{action}/"
                variant = action if action.isascii() else "non-ascii"
                out.append(Target(url, name, variant, action in ("add-next", "promote", "discard-next")))
        else:
            (key,) = keys
            for variant, provider in providers.items():
                pk = provider.pk if provider else MISSING_ID
                out.append(Target(reverse(name, kwargs={key: pk}), name, variant, provider is not None))
            out.append(Target(reverse(name, kwargs={key: 1}).replace("/1/", "/²/"), name, "non-ascii", False))
    return sorted(out, key=lambda t: t.name in LAST)  # stable: everything else keeps its URLconf order


def expected_allowed(user: User | None, target: Target) -> bool:
    if target.name in PUBLIC:
        return True
    return user is not None and Access(user).has(ROUTE_PERMS.get(target.name, "manage_identity"))


def body_of(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("utf-8", "replace")
    return response.content.decode("utf-8", "replace")


def check(problems: list[str], label: str, response, *, target: Target, user: User | None, method: str) -> None:
    status = response.status_code
    body = body_of(response)
    if status >= 500:
        problems.append(f"{label}: {status}")
        return
    if any(marker in body for marker in TRACEBACK_MARKERS):
        problems.append(f"{label}: traceback text in body")
    if status in (301, 302, 303, 307, 308):
        host = urlparse(response["Location"]).netloc
        if host not in REDIRECT_HOSTS or response["Location"].startswith("//"):
            problems.append(f"{label}: redirect to {response['Location'][:80]}")
    if target.variant == "non-ascii":  # the int converter refuses "²": the resolver's 404
        if status != 404:
            problems.append(f"{label}: non-ASCII id got {status}")
        return
    if target.name in SAML_ROUTES:
        check_saml(problems, label, response, body, target=target, method=method, anonymous=user is None)
        return
    if target.name in PUBLIC:
        return
    allowed = expected_allowed(user, target)
    if user is None:
        if target.name in POST_ONLY and method == "GET" and status == 405:
            return  # POST only, for everyone
        if status != 302 or not response["Location"].startswith(reverse("accounts:login")):
            problems.append(f"{label}: anonymous got {status}, not a redirect to sign-in")
        return
    if not allowed and status not in (403, 404, 405):
        problems.append(f"{label}: forbidden persona got {status}")
    if allowed and not target.exists and status not in (404, 405):
        problems.append(f"{label}: missing object got {status}")
    if allowed and target.exists and method == "GET" and status not in (200, 302, 405):
        problems.append(f"{label}: allowed persona got {status}")


# The methods each SAML endpoint takes; any other gets the friendly page with a 405.
SAML_METHODS = {"sso:login": {"GET"}, "sso:metadata": {"GET"}, "sso:logout": {"GET", "POST"}, "sso:acs": {"POST"},
                "sso:slo": {"GET", "POST"}}


def check_saml(problems: list[str], label: str, response, body: str, *, target: Target, method: str,
               anonymous: bool) -> None:
    """A public SAML endpoint: a refusal is a 4xx friendly page; missing is 404, disabled 403."""
    status = response.status_code
    data = response.wsgi_request.GET if method == "GET" else response.wsgi_request.POST
    if 400 <= status < 500 and FRIENDLY not in body:
        problems.append(f"{label}: {status} without the friendly error page")
    if target.name == "sso:logout" and anonymous:
        expected = {302}  # already signed out: to the sign-in page
    elif method not in SAML_METHODS[target.name]:
        expected = {405}
    elif target.name == "sso:logout" and method == "GET":  # a confirmation page; signing out needs a POST
        expected = {200}
    elif target.name == "sso:logout":  # no SSO session (or no usable SLO): the local session ends, a redirect
        expected = {302}
    elif target.variant == "missing":
        expected = {404}
    elif target.variant == "disabled" and target.name != "sso:metadata":
        expected = {403}
    elif target.name == "sso:metadata":
        expected = {200}
    elif target.name == "sso:login" and target.variant == "existing":
        expected = {302}
    elif target.name == "sso:slo" and "SAMLResponse" in data and "SAMLRequest" not in data:
        expected = {302, *range(400, 500)}  # an unusable answer to our LogoutRequest still signs out locally
    else:
        expected = set(range(400, 500))
    if status not in expected:
        problems.append(f"{label}: got {status}, expected {sorted(expected)[:3]}")


def signed_in_client(user: User | None) -> Client:
    client = Client(raise_request_exception=False)
    if user is not None:
        client.force_login(user)
    return client


def keep_signed_in(client: Client, user: User | None) -> None:
    """Sign-out routes end the session: sign the persona in again so the next route sees it."""
    if user is not None and SESSION_KEY not in client.session:
        client.force_login(user)


# The SAML endpoints do not look at roles, only at whether someone is signed in: three personas cover them
# (the console pages, which do check roles, get every persona).
SAML_PERSONAS = {"anonymous", "console_user", "cloud_admin"}
PERSONAS = ["anonymous", "console_user", "desktop_user", "audit_viewer", "help_desk", "org_admin", "org_manager",
            "identity_admin", "cloud_admin"]


@pytest.mark.parametrize("persona", PERSONAS)
def test_every_route_refuses_or_survives_bad_input(persona, personas, providers):
    """Every route and path variant (SAML endpoints: for ``SAML_PERSONAS``): a clean GET, a GET and POST with
    every garbage value at once, an empty POST."""
    user = personas[persona]
    client = signed_in_client(user)
    problems: list[str] = []
    for target in targets(providers):
        if target.name in SAML_ROUTES and persona not in SAML_PERSONAS:
            continue
        for method, data in (("GET", {}), ("GET", KITCHEN_SINK), ("POST", {}), ("POST", GARBAGE_POST)):
            response = client.get(target.url, data) if method == "GET" else client.post(target.url, data)
            check(problems, f"{method} {target.url} {'garbage' if data else 'empty'}", response, target=target,
                  user=user, method=method)
            keep_signed_in(client, user)
    assert not problems, "\n".join(problems[:60])


@pytest.mark.parametrize("persona", ["anonymous", "console_user"])
def test_saml_endpoints_refuse_each_garbage_value_with_a_friendly_page(persona, user_factory, providers, payloads):
    """Each garbage value alone, and each valid-looking but unacceptable message, by each method the endpoint
    takes (the other methods get every value at once in the sweep above). Signed in (without an SSO session),
    only the endpoints that look at the session."""
    user = user_factory("plain.member") if persona == "console_user" else None
    client = signed_in_client(user)
    provider = providers["existing"]
    problems: list[str] = []
    names = ("sso:acs", "sso:slo", "sso:login", "sso:metadata", "sso:logout") if user is None else (
        "sso:acs", "sso:login", "sso:logout")
    for name in names:
        target = Target(reverse(name, args=[provider.pk]), name, "existing", True)
        for data in [*SAML_GARBAGE, *payloads]:
            for method in sorted(SAML_METHODS[name]):
                response = client.get(target.url, data) if method == "GET" else client.post(target.url, data)
                check(problems, f"{method} {target.url} {data!r:.70}", response, target=target, user=user,
                      method=method)
                keep_signed_in(client, user)
    assert not problems, "\n".join(problems[:60])


RAW_QUERIES = [
    "SAMLRequest", "SAMLRequest=", "SAMLRequest=%zz%", "SAMLRequest=a&SAMLRequest=b", "Signature=a&Signature=b",
    "SAMLRequest=%00&SigAlg=%00&Signature=%00", "SAMLResponse=%C2%B2&RelayState=%C2%B2", "&&&===&",
    "SAMLRequest=" + "A" * 9000, "SigAlg=http%3A%2F%2Fwww.w3.org%2F2000%2F09%2Fxmldsig%23rsa-sha1&Signature=AAAA"
    "&SAMLRequest=" + deflate_b64("<x/>"), "RelayState=%2F%2Fevil.example&SAMLResponse=" + NOT_BASE64,
    "next=%2F%2Fevil.example", "next=%5C%5Cevil.example", "next=/%0d%0aSet-Cookie:x=y",
]


def test_saml_endpoints_survive_raw_query_strings(providers):
    """Query strings no form would build: duplicates, bad percent-encoding, bare names (HTTP-Redirect binding)."""
    client = signed_in_client(None)
    problems: list[str] = []
    for variant in ("existing", "disabled"):
        provider = providers[variant]
        for name in ("sso:slo", "sso:login", "sso:acs", "sso:metadata", "sso:logout"):
            target = Target(reverse(name, args=[provider.pk]), name, variant, True)
            for query in RAW_QUERIES:
                response = client.get(f"{target.url}?{query}")
                check(problems, f"GET {target.url}?{query:.60}", response, target=target, user=None, method="GET")
    for query in RAW_QUERIES:
        for url in (reverse("sso:signin"), reverse("sso:signout")):
            response = client.get(f"{url}?{query}")
            check(problems, f"GET {url}?{query:.60}", response, target=Target(url, "sso:signin", "", True),
                  user=None, method="GET")
    assert not problems, "\n".join(problems)


def test_oversized_bodies_are_refused_not_crashed(providers):
    """Over the ACS's own limit (1 MB decoded), over Django's request limit (2.5 MB), and too many fields."""
    client = signed_in_client(None)
    provider = providers["existing"]
    problems: list[str] = []
    bodies = [
        {"SAMLResponse": "A" * 1_500_000},  # valid base64, over the decoder's limit
        {"SAMLResponse": "A" * 3_000_000},  # over DATA_UPLOAD_MAX_MEMORY_SIZE
        {"SAMLRequest": "A" * 3_000_000},
        {f"f{i}": "x" for i in range(1_100)} | {"SAMLResponse": "AAAA"},  # over DATA_UPLOAD_MAX_NUMBER_FIELDS
    ]
    for name in ("sso:acs", "sso:slo"):
        target = Target(reverse(name, args=[provider.pk]), name, "existing", True)
        for data in bodies:
            response = client.post(target.url, data)
            label = f"POST {target.url} {len(data)} fields, {sum(len(v) for v in data.values())} bytes"
            check(problems, label, response, target=target, user=None, method="POST")
    for data in bodies:
        response = client.post(reverse("sso:signin"), data | {"username": "x"})
        if response.status_code >= 500 or "Traceback" in body_of(response):
            problems.append(f"POST signin oversized: {response.status_code}")
    assert not problems, "\n".join(problems)


METADATA_UPLOADS = [
    b"", b"not xml", b"\x00\xff\xfe", "²".encode(), b"<x/>",
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><x>&b;</x>',
    b'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"/>',
]


def odd_metadata(idp) -> list[bytes]:
    """Well-formed IdP metadata idm may not store, or pysaml2 may not use."""
    good = idp.metadata()
    return [
        re.sub(r'entityID="[^"]+"', 'entityID="https://idp.example.test/' + "a" * 1200 + '"', good, count=1).encode(),
        expired_metadata(idp).encode(),
        re.sub(r'(SingleSignOnService Binding=)"[^"]+"', r'\1"urn:example:unsupported"', good).encode(),
    ]


def test_console_forms_survive_garbage_uploads_and_urls(providers, idp, admin_user):
    """The provider form with garbage metadata files and URLs (no network: nothing listens on port 9).

    An accepted upload must leave a provider whose sign-in page refuses cleanly, not a 500 later.
    """
    client = signed_in_client(admin_user)
    provider = providers["existing"]
    problems: list[str] = []
    base = {"name": "Garbage IdP", "enabled": "on", "digest_algorithm": provider.digest_algorithm,
            "signature_algorithm": provider.signature_algorithm, "authn_context_comparison": "exact",
            "clock_skew_seconds": "60", "use_default_mapping": "on"}
    forms = [{"metadata_file": SimpleUploadedFile("m.xml", content)} for content in METADATA_UPLOADS]
    forms += [{"metadata_file": SimpleUploadedFile("m.xml", content), "name": f"Odd IdP {i}"}
              for i, content in enumerate(odd_metadata(idp))]
    forms += [{"metadata_url": url} for url in ("http://127.0.0.1:9/metadata", "ftp://127.0.0.1:9/x",
                                                 "http://[::1", "http://" + "a" * 300 + ".example/", "²")]
    forms += [{"clock_skew_seconds": value} for value in ("²", "-1", "99999999999999999999", NUL)]
    for url in (reverse("sso:provider_add"), reverse("sso:provider_edit", args=[provider.pk])):
        for extra in forms:
            data = base | extra
            response = client.post(url, data)
            label = f"POST {url} {({k: v for k, v in extra.items() if k != 'metadata_file'} or 'upload')!r:.80}"
            if response.status_code >= 500 or any(m in body_of(response) for m in TRACEBACK_MARKERS):
                problems.append(f"{label}: {response.status_code}")
            elif response.status_code == 302 and url == reverse("sso:provider_add"):
                added = IdentityProvider.objects.get(name=data["name"])
                for name in ("sso:login", "sso:metadata"):
                    sub = client.get(reverse(name, args=[added.pk]))
                    if sub.status_code >= 500 or (sub.status_code >= 400 and FRIENDLY not in body_of(sub)):
                        problems.append(f"{label}: then {name} got {sub.status_code}")
                added.delete()
    for usernames in (NUL, HUGE, "nobody\n" * 500, "²", "admin\nadmin"):
        response = client.post(reverse("sso:provider_break_glass", args=[provider.pk]), {"usernames": usernames})
        if response.status_code not in (200, 302):
            problems.append(f"break-glass {usernames[:20]!r}: {response.status_code}")
    assert not problems, "\n".join(problems)


def test_post_only_console_routes_refuse_get(providers, admin_user):
    client = signed_in_client(admin_user)
    provider = providers["existing"]
    for url in (reverse("sso:provider_refresh", args=[provider.pk]), reverse("sso:sp_key_action", args=["promote"])):
        assert client.get(url).status_code == 405, url


def test_query_helpers_build_what_the_bindings_carry():
    """The encoders used above really produce the HTTP-Redirect binding's encoding."""
    encoded = deflate_b64("<x/>")
    assert zlib.decompress(base64.b64decode(encoded), -15) == b"<x/>"
    assert "SAMLRequest=" in urlencode({"SAMLRequest": encoded})


# --- the bugs the sweep found, one by one -------------------------------------------------------------


def test_sso_sign_out_without_an_sso_session_signs_out_locally(providers, admin_user):
    """Was a 500 (pysaml2 ``global_logout(None)``): a password sign-in opening an SLO-capable provider's logout."""
    user = admin_user
    client = signed_in_client(user)
    response = client.post(reverse("sso:logout", args=[providers["existing"].pk]))
    assert response.status_code == 302 and response["Location"] == reverse("accounts:login")
    assert SESSION_KEY not in client.session


def test_sso_sign_out_at_another_provider_signs_out_locally(acs, sso_user, provider_factory, idp):
    """Signed in through one provider, signing out through another: nothing to tell it, the session still ends."""
    assert acs.login().status_code == 302
    other = provider_factory("Other IdP", metadata=idp.metadata().replace("idp.example.test", "other.example.test"))
    response = acs.client.post(reverse("sso:logout", args=[other.pk]))
    assert response.status_code == 302 and urlparse(response["Location"]).netloc in REDIRECT_HOSTS
    assert SESSION_KEY not in acs.client.session


def test_signed_out_visitor_on_sso_sign_out_is_not_sent_through_sign_in(providers):
    """Was a detour through sign-in (``?next=`` the logout URL), a bare 400 with a long query string."""
    response = Client().get(reverse("sso:logout", args=[providers["existing"].pk]), {"next": HUGE})
    assert response.status_code == 302 and response["Location"] == reverse("accounts:login")


def test_slo_without_a_message_gets_the_friendly_page(providers):
    """Was djangosaml2's bare 400 "No SAMLResponse or SAMLRequest parameter found"."""
    response = Client().get(reverse("sso:slo", args=[providers["existing"].pk]))
    assert response.status_code == 400 and 'data-sso-error="missing_message"' in body_of(response)


@pytest.mark.parametrize("name", ["sso:login", "sso:metadata", "sso:acs", "sso:slo"])
def test_wrong_method_gets_the_friendly_page(providers, name):
    """Was an empty 405 body (Django's default); ``Allow`` still names the methods."""
    response = Client().put(reverse(name, args=[providers["existing"].pk]))
    assert response.status_code == 405 and 'data-sso-error="method_not_allowed"' in body_of(response)
    assert response["Allow"]


@pytest.mark.parametrize("data", [{"SAMLResponse": "A" * 3_000_000}, {f"f{i}": "x" for i in range(1_100)}],
                         ids=["too-large", "too-many-fields"])
def test_oversized_post_gets_the_friendly_page(providers, data):
    """Was Django's bare 400 (RequestDataTooBig / TooManyFieldsSent raised on reading ``request.POST``)."""
    response = Client().post(reverse("sso:acs", args=[providers["existing"].pk]), data)
    assert response.status_code == 413 and 'data-sso-error="request_too_large"' in body_of(response)


def test_sign_in_with_expired_metadata_refuses_cleanly(providers):
    """Was a 500 (pysaml2 ``SignOnError``): metadata past its validUntil, or with no supported SSO binding."""
    response = Client().get(reverse("sso:login", args=[providers["stale"].pk]))
    assert response.status_code == 409 and 'data-sso-error="provider_unusable"' in body_of(response)


def test_metadata_with_an_overlong_entity_id_is_refused_with_a_fix(providers, idp, admin_user):
    """Was a 500 (model ``ValidationError`` from ``full_clean``; a ``DataError`` on PostgreSQL for a refresh)."""
    client = signed_in_client(admin_user)
    doc = odd_metadata(idp)[0]
    response = client.post(reverse("sso:provider_add"), {
        "name": "Long IdP", "enabled": "on", "digest_algorithm": providers["existing"].digest_algorithm,
        "signature_algorithm": providers["existing"].signature_algorithm, "authn_context_comparison": "exact",
        "clock_skew_seconds": "60", "use_default_mapping": "on", "metadata_file": SimpleUploadedFile("m.xml", doc)})
    assert response.status_code == 200 and "metadata_entity_id_too_long" in body_of(response)
    assert not IdentityProvider.objects.filter(name="Long IdP").exists()
