"""SCIM endpoints under gunicorn (2 sync workers) over loopback, measured by a threaded load generator.

    .venv/bin/python bench/scim.py --database-url postgres://postgres@127.0.0.1:5432/idm_scim_bench
    .venv/bin/python bench/scim.py --rows 5000 --database-url postgres://postgres@127.0.0.1:5432/idm_scim9_bench

Set-up (not timed): one SCIM provider; ``--rows`` users created through ``apply_source_users`` (the
SCIM write path) in batches, each with its ``ScimResource``; ``--rows / 100`` groups, one of them with
``--rows / 5`` members (100k users, 1k groups, a 20k-member group by default).

Timed, ``--requests`` each from ``--clients`` threads: ``GET /Users?filter=userName eq``, page 1
(``startIndex=1&count=100``), a deep page (``startIndex`` at 90 % of the users), ``POST /Users``,
``PATCH active=false``, ``PATCH`` add / remove one member of the big group. Prints p50 / p99 and
requests/s per case, and the CPU time the server's workers spent per case (user + system of the
gunicorn processes, from /proc: on a shared machine this says what a request costs, whatever the load).

``--keep`` reuses the database a previous run built (no set-up; a new token for the provider; POSTed
userNames get a fresh prefix); ``--cases`` picks cases by name (``eq,page1,deep,post,active,member``),
e.g. ``--keep --cases member`` to measure only the member PATCH again after a change. Targets (issue 9): p99 <= 50 ms for filter eq and member PATCH; deep page no
slower than 2x page 1; >= 3x the requests/s of django-scim2 used as documented on the same filter-eq
requests. Exits non-zero when a request fails.

The django-scim2 side (PostgreSQL only) is ``bench/scim2_reference``: its own settings, URL conf and
database (the bench database's name + ``_scim2``, the same ``--rows`` users), its default adapters
and filter parser, Django session authentication, under gunicorn with 2 sync workers. Both servers
run side by side and the same filter-eq request list goes to each in alternating blocks, so a change
in the machine's load hits both alike.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import urlparse, urlunparse

from _common import (
    ROOT,
    _recreate_postgres,
    backend_label,
    base_parser,
    load_label,
    machine_label,
    percentile,
    print_figures,
    setup_django,
)

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


CASES = ("eq", "page1", "deep", "post", "active", "member")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build(rows: int) -> tuple[str, list[str], str, list[str]]:
    """(token, user SCIM ids, big group SCIM id, ids of users not in the big group)."""
    from accounts.identity import memberships
    from accounts.identity.groups import group_create
    from accounts.identity.types import Actor
    from accounts.models import ExternalIdentity
    from provisioning.inbound import SourceUser, apply_source_users
    from provisioning.lifecycle import source_actor
    from provisioning.scim import providers
    from provisioning.scim.models import ScimResource, new_scim_id
    from provisioning.scim.service import user_record

    creds = providers.provider_create(actor=Actor.system("bench"), name="Bench Okta")
    source = creds.source
    start = time.perf_counter()
    for offset in range(0, rows, 1000):
        batch = []
        for n in range(offset, min(rows, offset + 1000)):
            doc = {"userName": f"user{n}@bench.test", "name": {"givenName": "Bench", "familyName": f"U{n}"},
                   "active": True}
            batch.append((new_scim_id(), doc))
        apply_source_users(source=source, users=[
            SourceUser(external_id=sid, record=user_record(doc, []), username=doc["userName"],
                       email=doc["userName"], first_name="Bench", last_name=doc["name"]["familyName"])
            for sid, doc in batch], kind="scim_request")
        links = dict(ExternalIdentity.objects.filter(provider=source.slug, external_id__in=[s for s, _ in batch])
                     .values_list("external_id", "user_id"))
        ScimResource.objects.bulk_create([ScimResource(source=source, kind="User", scim_id=sid, user_id=links[sid],
                                                       document={"name": doc["name"]}) for sid, doc in batch])
        print(f"users: {offset + len(batch)} ({time.perf_counter() - start:.0f} s)", flush=True)
    actor = source_actor(source)
    big = None
    for g in range(max(1, rows // 100)):
        dgroup = group_create(actor=actor, display_name=f"Group {g}")
        resource = ScimResource.objects.create(source=source, kind="Group", group=dgroup)
        big = big or (resource, dgroup)
    members = list(ScimResource.objects.filter(source=source, kind="User").order_by("id")
                   .values_list("user_id", flat=True)[: rows // 5])
    memberships.group_members_add(actor=actor, dgroup=big[1], user_ids=members)
    ids = list(ScimResource.objects.filter(source=source, kind="User").order_by("id")
               .values_list("scim_id", flat=True))
    from django.db import connection

    if connection.vendor == "postgresql":
        # Planner statistics and the visibility map, as autovacuum would have them by now on tables
        # that were just bulk-loaded (index-only scans for COUNT and deep pages need the latter).
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    print(f"set-up: {time.perf_counter() - start:.0f} s", flush=True)
    return creds.token, ids, big[0].scim_id, ids[rows // 5:]


def reuse(rows: int) -> tuple[str, list[str], str, list[str]]:
    """What ``build`` returned, from the database a previous run built (``--keep``): a new token for
    its provider; the big group is the one with the most members."""
    from django.db.models import Count

    from accounts.identity.types import Actor
    from provisioning.scim import providers
    from provisioning.scim.models import ScimResource

    source = providers.provider_get("Bench Okta")
    token = providers.token_rotate(actor=Actor.system("bench"), source=source, overlap=timedelta(hours=1))
    big = (ScimResource.objects.filter(source=source, kind="Group", deleted_at__isnull=True)
           .annotate(n=Count("group__group__user")).order_by("-n").first())
    users = ScimResource.objects.filter(source=source, kind="User", deleted_at__isnull=True,
                                        scim_id__in=ScimResource.objects.filter(
                                            source=source, kind="User").order_by("id").values("scim_id")[:rows])
    ids = list(users.order_by("id").values_list("scim_id", flat=True))
    inside = set(users.filter(user__groups=big.group.group_id).values_list("scim_id", flat=True))
    return token, ids, big.scim_id, [sid for sid in ids if sid not in inside]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children (gunicorn's master and workers), live
    processes only (workers stay up for the whole run)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in [pid] + _children(pid):
        try:
            with open(f"/proc/{proc}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(c) for c in fh.read().split()]
    except OSError:
        return []


@contextmanager
def serve(app: str, *, cwd, env: dict, base: str, headers: dict):
    """A gunicorn (2 sync workers) serving ``app`` until the block ends; waits until it answers."""
    import requests

    port = urlparse(base).port
    proc = subprocess.Popen([str(ROOT / ".venv/bin/gunicorn"), app, "-w", "2", "-b", f"127.0.0.1:{port}",
                             "--log-level", "warning"], cwd=cwd, env={**os.environ, **env}, start_new_session=True)
    try:
        deadline = time.time() + 30
        while True:
            try:
                requests.get(f"{base}/ServiceProviderConfig", headers=headers, timeout=2)
                break
            except requests.RequestException:
                if time.time() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        yield lambda: _cpu_seconds(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)


def scim2_reference(db_url: str, rows: int) -> tuple[str, str]:
    """Create and fill django-scim2's reference database; (its URL, a session cookie value)."""
    parts = urlparse(db_url)
    url = urlunparse(parts._replace(path=parts.path + "_scim2"))
    _recreate_postgres(url)
    started = time.perf_counter()
    out = subprocess.run([sys.executable, str(ROOT / "bench/scim2_reference/populate.py"), "--rows", str(rows)],
                         env={**os.environ, "SCIM2_REFERENCE_DATABASE_URL": url}, check=True, capture_output=True,
                         text=True).stdout
    print(f"django-scim2 reference set-up: {time.perf_counter() - started:.0f} s", flush=True)
    return url, out.split()[-1]


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per case (default 400)")
    parser.add_argument("--clients", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated cases to run (default all: {','.join(CASES)})")
    args = parser.parse_args()
    cases = {c.strip() for c in args.cases.split(",") if c.strip()}
    if not cases or cases - set(CASES):
        parser.error(f"--cases: choose from {', '.join(CASES)}")
    load_at_start = load_label().replace("at the end of the run", "at the start")
    db_url = setup_django(args)
    token, ids, big_group, outsiders = (reuse if args.keep else build)(args.rows)
    reference = scim2_reference(db_url, args.rows) if "eq" in cases and not args.sqlite else None

    import requests

    local = threading.local()
    port = free_port()
    base = f"http://127.0.0.1:{port}/scim/v2"
    ref_base = f"http://127.0.0.1:{free_port()}/scim/v2"
    headers = {base: {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}}
    if reference:  # the reference authenticates by Django session cookie, as django-scim2 documents
        headers[ref_base] = {"Cookie": f"sessionid={reference[1]}", "Content-Type": "application/scim+json"}

    def call(method: str, path: str, body=None, *, root: str) -> tuple[int, float]:
        sessions = local.__dict__.setdefault("sessions", {})
        if root not in sessions:
            sessions[root] = requests.Session()
            sessions[root].headers.update(headers[root])
        started = time.perf_counter()
        response = sessions[root].request(method, root + path, json=body, timeout=60)
        return response.status_code, (time.perf_counter() - started) * 1000

    figures, failures, targets = [], [], []

    def send(requests_: list, root: str) -> tuple[list[tuple[int, float]], float]:
        """Send ``requests_`` from ``--clients`` threads: (status, ms) each, and the seconds it took."""
        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(lambda r: call(*r, root=root), requests_))
        return results, time.perf_counter() - start

    def report(label: str, results: list[tuple[int, float]], elapsed: float, ok: int,
               cpu: float | None = None) -> tuple[float, float]:
        """Add a figure line; (p99 in ms, requests/s)."""
        times = [ms for _, ms in results]
        bad = [status for status, _ in results if status != ok]
        if bad:
            failures.append(f"{label}: {len(bad)} x {sorted(set(bad))}")
        p99, rate = percentile(times, 99), len(results) / elapsed
        server = f", server CPU {cpu * 1000 / len(results):.1f} ms/request" if cpu is not None else ""
        figures.append((label, f"p50 {percentile(times, 50):.1f} ms, p99 {p99:.1f} ms, "
                               f"{rate:.0f} req/s ({len(results)} requests){server}"))
        return p99, rate

    # Every request list is drawn in the same order whatever --cases picks, so a case sends the same
    # requests when run alone.
    n, rnd = args.requests, random.Random(9)
    eq_requests = [("GET", f'/Users?filter=userName eq "user{rnd.randrange(args.rows)}@bench.test"', None)
                   for _ in range(n)]
    deep_start = int(args.rows * 0.9)
    prefix = f"new{int(time.time())}-" if args.keep else "new"  # --keep: the last run's POSTs exist
    post_requests = [("POST", "/Users", {"userName": f"{prefix}{i}@bench.test"}) for i in range(n)]
    active_requests = [("PATCH", f"/Users/{sid}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "active", "value": False}]}) for sid in rnd.sample(ids, min(n, len(ids)))]
    movers = rnd.sample(outsiders, min(n // 2, len(outsiders)))
    member_requests = [("PATCH", f"/Groups/{big_group}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": sid}]}]}) for sid in movers]
    member_requests += [("PATCH", f"/Groups/{big_group}", {"schemas": [PATCH_OP], "Operations": [
        {"op": "remove", "path": f'members[value eq "{sid}"]'}]}) for sid in movers]

    env = {"DATABASE_URL": db_url, "IDM_BASE_URL": f"http://127.0.0.1:{port}", "DJANGO_SETTINGS_MODULE": "idm.settings"}
    p99s: dict[str, float] = {}
    ratio = None
    with serve("idm.wsgi:application", cwd=ROOT, env=env, base=base, headers=headers[base]) as server_cpu:

        def run(case: str, label: str, requests_: list, ok: int) -> None:
            if case in cases:
                before = server_cpu()
                results, elapsed = send(requests_, base)
                p99s[case] = report(label, results, elapsed, ok, server_cpu() - before)[0]

        for _ in range(8):  # warm both workers
            call("GET", "/Users?count=1", root=base)
        if reference:
            ref_env = {"SCIM2_REFERENCE_DATABASE_URL": reference[0],
                       "DJANGO_SETTINGS_MODULE": "scim2_reference.settings"}
            with serve("scim2_reference.wsgi:application", cwd=ROOT / "bench", env=ref_env, base=ref_base,
                       headers=headers[ref_base]):
                for method, path, _ in eq_requests[:8]:  # not a plain list: it reads every user to count
                    call(method, path, root=ref_base)
                sides = {base: ([], 0.0), ref_base: ([], 0.0)}
                step = max(1, n // 4)
                cpu = 0.0
                for first in range(0, n, step):  # alternate blocks: idm, django-scim2, idm, ...
                    for root in (base, ref_base):
                        before = server_cpu()
                        results, elapsed = send(eq_requests[first:first + step], root)
                        cpu += server_cpu() - before if root == base else 0.0
                        sides[root] = (sides[root][0] + results, sides[root][1] + elapsed)
            p99s["eq"], eq_rate = report("GET filter userName eq", *sides[base], 200, cpu)
            _, ref_rate = report("django-scim2 default adapters: GET filter userName eq", *sides[ref_base], 200)
            ratio = eq_rate / ref_rate
            figures.append(("idm / django-scim2 req/s (filter eq)", f"{ratio:.1f}x"))
        else:
            run("eq", "GET filter userName eq", eq_requests, 200)
        run("page1", "GET startIndex=1&count=100", [("GET", "/Users?startIndex=1&count=100", None)] * n, 200)
        run("deep", f"GET startIndex={deep_start}&count=100",
            [("GET", f"/Users?startIndex={deep_start}&count=100", None)] * n, 200)
        run("post", "POST /Users", post_requests, 201)
        run("active", "PATCH active=false", active_requests, 200)
        run("member", f"PATCH add/remove member ({args.rows // 5} members)", member_requests, 204)

    if "eq" in p99s:
        targets.append(("target filter eq p99 <= 50 ms", "met" if p99s["eq"] <= 50 else "NOT met"))
    if "member" in p99s:
        targets.append(("target member PATCH p99 <= 50 ms", "met" if p99s["member"] <= 50 else "NOT met"))
    if "deep" in p99s and "page1" in p99s:
        targets.append(("target deep page <= 2x page 1 (p99)", "met" if p99s["deep"] <= 2 * p99s["page1"] else "NOT met"))
    if "eq" in p99s:
        targets.append(("target >= 3x django-scim2 req/s (filter eq)",
                        "not measured (PostgreSQL only)" if ratio is None else ("met" if ratio >= 3 else "NOT met")))
    print_figures("SCIM endpoints (bench/scim.py)", {
        "backend": backend_label(), "machine": machine_label(), "users / groups": f"{args.rows} / {args.rows // 100}",
        "server": "gunicorn, 2 sync workers, loopback", "clients": args.clients, "cases": ",".join(
            c for c in CASES if c in cases) + (" (--keep)" if args.keep else ""),
        "load": f"{load_at_start}; {load_label()}",
    }, figures + targets)
    if failures:
        sys.exit("; ".join(failures))
    return 0


if __name__ == "__main__":
    main()
