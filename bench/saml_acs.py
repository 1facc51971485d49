"""SAML ACS benchmark: time to process a valid signed response, and logins/s with 2 workers.

    .venv/bin/python bench/saml_acs.py                 # PostgreSQL (idm_bench_saml database), 1000 logins
    .venv/bin/python bench/saml_acs.py --sqlite        # the same on an SQLite file
    .venv/bin/python bench/saml_acs.py --logins 200    # smaller run

Replay protection means every login needs a fresh assertion (and a fresh outstanding AuthnRequest
id), so all responses are signed up front by a pysaml2 IdP (xmlsec1, RSA-2048, rsa-sha256) and only
the ACS POST is timed.

Pass 1: ``--logins`` POSTs through Django's test client in this process: p50/p99 of the ACS view
(our checks, pysaml2 signature and condition checks, replay cache, user lookup/link, session login).
Pass 2: gunicorn with 2 sync workers on 127.0.0.1, ``--logins`` POSTs from 4 client threads: logins/s.
The database cache holds replay and request state (set REDIS_URL yourself to bench Redis instead).

The provider's trust (fourth review F2) is set by a Customer Cloud Admin, as when configured in the
console, so every login runs the trust check; one user in ten is a help desk (powers beyond sign-in),
so those logins also load the setter's powers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import (
    ROOT,
    backend_label,
    base_parser,
    load_label,
    machine_label,
    percentile,
    print_figures,
    setup_django,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4, help="client threads for the 2-worker pass")
    parser.set_defaults(database_url=os.environ.get("DATABASE_URL",
                                                    "postgres://postgres@127.0.0.1:5432/idm_bench_saml"))
    args = parser.parse_args()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    keydir = Path(tempfile.mkdtemp(prefix="idm-bench-saml-"))
    os.environ["IDM_BASE_URL"] = base_url
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1,localhost,testserver"
    db_url = setup_django(args)

    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client, RequestFactory

    from accounts.identity.orgs import org_create, org_update_settings
    from accounts.identity.service import apply_identity_change
    from accounts.identity.types import Actor, AuthMethod, IdentityChange, Mode
    from accounts.models import Organization
    from sso import binding, replay
    from sso.config import acs_url, sp_entity_id
    from sso.models import IdentityProvider
    from sso.services import provider_save
    from tests.sso.idp import TestIdP, make_keys, new_id

    settings.IDM_BASE_URL = base_url
    actor = Actor.system("bench")
    idp_key, idp_cert = make_keys(keydir, "idp")
    idp = TestIdP(key_file=idp_key, cert_file=idp_cert, lifetime_minutes=60)  # signed well ahead of use
    provider = (IdentityProvider.objects.filter(name="Bench IdP").first()
                or provider_save(actor=actor, provider=IdentityProvider(name="Bench IdP"), metadata_xml=idp.metadata()))
    try:
        setter = apply_identity_change(change=IdentityChange(username="bench.cca", email="bench.cca@example.com",
                                                             org_id=Organization.objects.get(parent__isnull=True).pk,
                                                             roles={"customer-cloud-admin"}, mode=Mode.CREATE),
                                       actor=actor).user
    except Exception:  # noqa: BLE001 (exists with --keep)
        setter = User.objects.get(username="bench.cca")
    provider_save(actor=Actor.for_user(setter), provider=provider, metadata_xml=idp.metadata())
    root = Organization.objects.get(parent__isnull=True)
    org = Organization.objects.filter(name="SSO bench").first() or org_create(actor=actor, name="SSO bench",
                                                                                parent=root)
    org_update_settings(actor=actor, org=org, auth_method=AuthMethod.SSO, auth_provider=provider)
    users = [f"sso{i}" for i in range(50)]
    for name in users:
        try:
            roles = {"console-user", "help-desk"} if users.index(name) % 10 == 0 else {"console-user"}
            apply_identity_change(change=IdentityChange(username=name, email=f"{name}@example.com", org_id=org.pk,
                                                        roles=roles, mode=Mode.CREATE), actor=actor)
        except Exception:  # noqa: S110 (exists with --keep)
            pass

    # Every outstanding request is bound to the browser that started it (sso.binding): the bench's
    # "browser" is one token, sent as the binding cookie with every POST.
    token = binding.browser_token(RequestFactory().get("/"))
    cookie = {binding.cookie_name(): token}

    def make_responses(n: int) -> list[str]:
        out = []
        for i in range(n):
            request_id = new_id()
            replay.remember_request(provider_id=provider.pk, request_id=request_id, next_path="/",
                                    browser_hash=binding.token_hash(token))
            xml = idp.response_xml(sp_entity_id=sp_entity_id(provider), acs_url=acs_url(provider),
                                   name_id=users[i % len(users)], in_response_to=request_id)
            out.append(TestIdP.encode(xml))
        return out

    t0 = time.perf_counter()
    batch1 = make_responses(args.logins)
    print(f"signed {args.logins} responses in {time.perf_counter() - t0:.1f} s", flush=True)

    # Pass 1: in-process ACS latency.
    client = Client()
    client.cookies.load(cookie)
    path = f"/sso/{provider.pk}/acs/"
    client.post(path, {"SAMLResponse": batch1[0]})  # warm-up (config build, imports)
    client.logout()  # (Django's test client drops every cookie on logout: the binding cookie goes back in)
    client.cookies.load(cookie)
    times = []
    for body in batch1[1:]:
        start = time.perf_counter()
        resp = client.post(path, {"SAMLResponse": body})
        times.append((time.perf_counter() - start) * 1000)
        assert resp.status_code == 302, resp.content.decode().split('data-sso-error="')[-1][:40]
        client.logout()
        client.cookies.load(cookie)

    # Pass 2: gunicorn, 2 workers.
    batch2 = make_responses(args.logins)
    env = {**os.environ, "DATABASE_URL": db_url, "IDM_BASE_URL": base_url, "DJANGO_SETTINGS_MODULE": "idm.settings"}
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "idm.wsgi:application", "-w", "2", "-b", f"127.0.0.1:{port}",
         "--log-level", "warning"], cwd=ROOT, env=env, start_new_session=True,
    )
    try:
        import requests

        deadline = time.time() + 30
        while True:
            try:
                requests.get(f"{base_url}/sso/{provider.pk}/metadata/", timeout=2)
                break
            except requests.RequestException:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        for _ in range(4):  # warm both workers (config cache) with GETs
            requests.get(f"{base_url}/sso/{provider.pk}/metadata/", timeout=5)

        def post(body: str) -> int:
            with requests.Session() as session:
                return session.post(f"{base_url}{path}", data={"SAMLResponse": body}, allow_redirects=False,
                                    cookies=cookie, timeout=30).status_code

        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            codes = list(pool.map(post, batch2))
        elapsed = time.perf_counter() - start
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    ok = codes.count(302)

    print_figures("SAML ACS (bench/saml_acs.py)", {
        "machine": machine_label(), "database": backend_label(),
        "cache": "Redis" if os.environ.get("REDIS_URL") else "database cache",
        "signature": "RSA-2048 rsa-sha256, signed assertion, xmlsec1",
        "load": load_label(),
    }, [
        ("ACS p50 (in-process)", f"{percentile(times, 50):.1f} ms"),
        ("ACS p99 (in-process)", f"{percentile(times, 99):.1f} ms"),
        ("logins measured", f"{len(times)}"),
        ("2 workers (gunicorn)", f"{ok / elapsed:.1f} logins/s ({ok}/{len(codes)} ok, {args.clients} clients, "
                                 f"{elapsed:.1f} s)"),
    ])
    if ok != len(codes):
        sys.exit(f"{len(codes) - ok} logins failed: {sorted(set(codes))}")


if __name__ == "__main__":
    main()
