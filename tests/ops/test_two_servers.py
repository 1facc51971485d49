"""Two idm servers, one idm: two gunicorn instances on two loopback ports, one PostgreSQL database, one
Redis and one Celery worker, as docs/deploy.md describes. What one server does, the other sees:

* a SAML assertion accepted on A is refused as a replay on B (assertion ids live in Redis);
* an SP-initiated sign-in started on A finishes on B (request state is shared too);
* failed passwords counted on A throttle the account on B;
* an upload confirmed on A is applied by the worker, and B shows its progress and result;
* a session ended on A is gone on B.

Needs PostgreSQL (``DATABASE_URL``; skipped on SQLite) and Redis (``IDM_TEST_REDIS_URL``).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.celery_helpers import BASE_DIR, flush_test_redis, running_worker, test_database_url, test_redis_url
from tests.conftest import TEST_PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

SECRET = "two-servers-shared-secret-key-" + "k" * 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gunicorn(port: int, env: dict, log: Path):
    """One idm web server on 127.0.0.1:``port``; stopped by its pid. No control socket: two servers on one
    host would otherwise share ~/.gunicorn/gunicorn.ctl."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "idm.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", "2", "--timeout", "60", "--no-control-socket"],
            cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"gunicorn on {port} exited:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still loading Django
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"gunicorn on {port} did not answer:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def csrf(session: requests.Session, url: str) -> str:
    html = session.get(url, timeout=10).text
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def sign_in(session: requests.Session, base: str, username: str, password: str) -> requests.Response:
    token = csrf(session, f"{base}/sign-in/")
    session.post(f"{base}/sign-in/", data={"csrfmiddlewaretoken": token, "username": username}, timeout=10)
    return session.post(f"{base}/sign-in/", data={"csrfmiddlewaretoken": token, "username": username,
                                                  "password": password}, timeout=10, allow_redirects=False)


@pytest.fixture
def cluster(settings, tmp_path, user_factory, org_factory, system_actor):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the two-server test shares one PostgreSQL database (run with DATABASE_URL=postgres://...)")
    # Default hashers: the servers must verify the passwords the test writes.
    port_a, port_b = free_port(), free_port()
    base = f"http://127.0.0.1:{port_a}"  # the public URL both servers answer for (a load balancer's)
    settings.IDM_BASE_URL = base
    redis_url = test_redis_url()
    flush_test_redis(redis_url)
    var = tmp_path / "var"  # shared: uploaded files (media) are written by web servers and read by workers
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDM_", "DJANGO_ALLOW"))}
    env.update({
        "DATABASE_URL": test_database_url(), "REDIS_URL": redis_url, "SECRET_KEY": SECRET,
        "IDM_BASE_URL": base, "IDM_VAR_DIR": str(var), "IDM_SIGNIN_MAX_FAILURES": "3",
        "IDM_LOG_LEVEL": "WARNING", "IDM_TEST_REDIS_URL": redis_url,
    })
    with running_worker(env=env, redis_url=redis_url) as worker, \
            gunicorn(port_a, env, tmp_path / "a.log"), gunicorn(port_b, env, tmp_path / "b.log"):
        yield {"a": f"http://127.0.0.1:{port_a}", "b": f"http://127.0.0.1:{port_b}", "base": base,
               "worker": worker, "logs": tmp_path}


def test_saml_replay_is_refused_on_the_other_server(cluster, user_factory, org_factory, system_actor, tmp_path):
    from accounts.identity.orgs import org_update_settings
    from accounts.identity.types import AuthMethod
    from sso.config import acs_url, sp_entity_id
    from sso.models import IdentityProvider
    from sso.services import provider_save
    from tests.sso.conftest import authn_request_id
    from tests.sso.idp import TestIdP, make_keys

    key, cert = make_keys(tmp_path / "idp", "idp")
    idp = TestIdP(key_file=key, cert_file=cert)
    provider = provider_save(actor=system_actor, provider=IdentityProvider(name="Okta", allow_idp_initiated=True),
                             metadata_xml=idp.metadata())
    org = org_factory("SSO Org")
    org_update_settings(actor=system_actor, org=org, auth_method=AuthMethod.SSO, auth_provider=provider)
    user_factory("alice", org=org, email="alice@example.com", password=None, state="active")  # SSO: no password
    acs = f"/sso/{provider.pk}/acs/"

    def post(server: str, xml: str) -> requests.Response:
        return requests.post(f"{cluster[server]}{acs}", data={"SAMLResponse": TestIdP.encode(xml)}, timeout=15,
                             allow_redirects=False)

    # IdP-initiated: accepted on A, the same response refused on B as a replay.
    xml = idp.response_xml(sp_entity_id=sp_entity_id(provider), acs_url=acs_url(provider), name_id="alice")
    accepted = post("a", xml)
    assert accepted.status_code == 302 and "sessionid" in accepted.cookies, accepted.text[:500]
    replayed = post("b", xml)
    assert replayed.status_code == 403 or 400 <= replayed.status_code < 500
    assert 'data-sso-error="replayed"' in replayed.text, replayed.text[:1000]

    # SP-initiated: the sign-in starts on A (request id stored in Redis) and the response lands on B.
    session = requests.Session()
    start = session.get(f"{cluster['a']}/sso/{provider.pk}/login/", allow_redirects=False, timeout=10)
    request_id = authn_request_id(start.headers["Location"])
    xml = idp.response_xml(sp_entity_id=sp_entity_id(provider), acs_url=acs_url(provider), name_id="alice",
                           in_response_to=request_id)
    # The browser-binding cookie is Secure; a browser sends it to http://127.0.0.1, requests does not: pass it.
    browser_cookies = {c.name: c.value for c in session.cookies}
    finished = session.post(f"{cluster['b']}{acs}", data={"SAMLResponse": TestIdP.encode(xml)},
                            cookies=browser_cookies, allow_redirects=False, timeout=15)
    assert finished.status_code == 302, finished.text[:1000]
    again = session.post(f"{cluster['a']}{acs}", data={"SAMLResponse": TestIdP.encode(xml)},
                         cookies=browser_cookies, timeout=15)
    assert 'data-sso-error="unknown_in_response_to"' in again.text or 'data-sso-error="replayed"' in again.text


def test_throttle_sessions_and_uploads_are_shared(cluster, user_factory, admin_user, tmp_path):
    from accounts.models import AuditEvent, Organization

    user_factory("bob", password=TEST_PASSWORD)
    # Throttle: three wrong passwords on A; the right one is then refused on B.
    for _ in range(3):
        wrong = sign_in(requests.Session(), cluster["a"], "bob", "wrong-password")
        assert wrong.status_code == 400 and "The username or password is not correct." in wrong.text
    refused = sign_in(requests.Session(), cluster["b"], "bob", TEST_PASSWORD)
    assert refused.status_code == 429 and "Too many failed sign-in attempts" in refused.text
    assert AuditEvent.objects.filter(action="auth.login_throttled", target_label="bob").exists()

    # Session: signed in on A, the same cookie works on B; signed out on A, it is gone on B.
    admin = requests.Session()
    assert sign_in(admin, cluster["a"], "admin", TEST_PASSWORD).status_code == 302
    assert admin.get(f"{cluster['b']}/users/", allow_redirects=False, timeout=10).status_code == 200

    # Upload on A, confirmed on A, applied by the worker, progress and result seen on B.
    token = csrf(admin, f"{cluster['a']}/users/upload/")
    rows = "username,email\n" + "".join(f"up{i},up{i}@example.com\n" for i in range(30))
    root = Organization.objects.get(parent__isnull=True)
    created = admin.post(f"{cluster['a']}/users/upload/", data={"csrfmiddlewaretoken": token, "operation": "upsert",
                                                                "org": root.pk},
                         files={"file": ("users.csv", rows.encode(), "text/csv")}, allow_redirects=False, timeout=30)
    assert created.status_code == 302, created.text[:1000]
    detail = created.headers["Location"]
    upload_id = re.search(r"/users/upload/([0-9a-f-]{36})/", detail).group(1)
    token = csrf(admin, f"{cluster['a']}{detail}")
    confirmed = admin.post(f"{cluster['a']}/users/upload/{upload_id}/confirm/",
                           data={"csrfmiddlewaretoken": token, "mode": "no_errors"}, allow_redirects=False, timeout=30)
    assert confirmed.status_code == 302
    page = admin.get(f"{cluster['b']}{detail}", timeout=10).text
    assert "This upload was already applied" not in page and "row(s) with errors" not in page, page[:3000]
    deadline, seen = time.monotonic() + 90, []
    while time.monotonic() < deadline:
        status = admin.get(f"{cluster['b']}/users/upload/{upload_id}/status.json", timeout=10).json()
        seen.append(status["status"])
        if status["finished"]:
            break
        time.sleep(0.3)
    assert status["status"] == "done", (status, cluster["worker"].log()[-3000:])
    assert status["counts"]["created"] == 30 and status["done"] == status["total"] == 30
    report = admin.get(f"{cluster['b']}/users/upload/{upload_id}/report.csv", timeout=10)
    assert report.status_code == 200 and report.text.count("\n") >= 31

    token = csrf(admin, f"{cluster['a']}/account/")
    admin.post(f"{cluster['a']}/sso/signout/", data={"csrfmiddlewaretoken": token}, timeout=10)
    gone = admin.get(f"{cluster['b']}/users/", allow_redirects=False, timeout=10)
    assert gone.status_code == 302 and "/sign-in/" in gone.headers["Location"]
