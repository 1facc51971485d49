"""Console users list at 100k users: server time for page 1, a deep page, searches and an org filter.

    .venv/bin/python bench/users_list.py               # recreate the bench db, load 100k users, measure
    .venv/bin/python bench/users_list.py --keep        # reuse the db bench/bulk_identity.py left behind
    .venv/bin/python bench/users_list.py --explain     # also print EXPLAIN ANALYZE of each query

If the ``accounts:user_list`` URL exists, each case is a GET through Django's test Client against
the real view (middleware, session, template: everything but the network). Otherwise it measures
what the view will do: ``selectors.user_list`` + ``Paginator(qs, 50)`` page + count + rendering 50
rows. ``--via selector|view`` forces one. Target: p95 <= 200 ms for each case.

Each case also reports the benchmark process's own CPU time per request (Python: view, template,
ORM; the database works in its own processes): on a shared machine the wall-clock figures grow with
the load average, the CPU figure much less.
"""

from __future__ import annotations

import sys
import time

from _common import (
    backend_label,
    base_parser,
    load_label,
    machine_label,
    make_org_tree,
    peak_rss_mib,
    percentile,
    print_figures,
    setup_django,
    user_changes,
)

PER_PAGE = 50
TARGET_MS = 200.0

ROW_TEMPLATE = """<table>{% for u in page.object_list %}
<tr><td><a href="/users/{{ u.pk }}/">{{ u.username }}</a></td><td>{{ u.get_full_name }}</td><td>{{ u.email }}</td>
<td>{{ u.profile.org.name }}</td><td>{{ u.profile.get_state_display }}</td><td>{{ u.date_joined|date:"Y-m-d" }}</td></tr>
{% endfor %}</table><p>{{ page.number }} / {{ page.paginator.num_pages }} ({{ page.paginator.count }} users)</p>"""


def ensure_users(args) -> list:
    from django.contrib.auth.models import User

    from accounts.identity.service import apply_identity_changes
    from accounts.identity.types import Actor

    orgs = make_org_tree()
    if User.objects.filter(username=f"user{args.rows - 1}").exists():
        print(f"users present: {User.objects.count()}")
        return orgs
    t0 = time.perf_counter()
    result = apply_identity_changes(changes=user_changes(args.rows, orgs), actor=Actor.system("bench"))
    counts = result.counts()
    print(
        f"loaded {args.rows} users via apply_identity_changes in {time.perf_counter() - t0:.1f} s: {counts}"
    )
    if counts["created"] != args.rows:
        raise SystemExit("load failed")
    return orgs


def make_viewer(username: str, role: str, org) -> object:
    from accounts.identity.service import apply_identity_change
    from accounts.identity.types import Actor, IdentityChange

    change = IdentityChange(
        username=username,
        email=f"{username}@example.com",
        org_id=org.pk,
        roles=frozenset({role}),
        state="active",
    )
    return apply_identity_change(change=change, actor=Actor.system("bench")).user


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--deep-page", type=int, default=1500)
    parser.add_argument("--via", choices=("auto", "view", "selector"), default="auto")
    parser.add_argument(
        "--explain", action="store_true", help="print EXPLAIN ANALYZE for the selector queries"
    )
    args = parser.parse_args()
    setup_django(args)

    from django.contrib.auth.models import User
    from django.core.paginator import Paginator
    from django.db import connection, reset_queries
    from django.template import Context, Template
    from django.test.utils import CaptureQueriesContext
    from django.urls import NoReverseMatch, reverse

    from accounts import selectors
    from accounts.models import Organization
    from accounts.roles import CUSTOMER_CLOUD_ADMIN

    t_load = time.perf_counter()
    orgs = ensure_users(args)
    load_s = time.perf_counter() - t_load
    root = Organization.objects.get(parent__isnull=True)
    dept = orgs[0]  # "Department 1" and its 9 teams: 10 of 50 orgs, ~20% of the users
    admin = make_viewer("bench-admin", CUSTOMER_CLOUD_ADMIN, root)
    scoped = make_viewer("bench-orgadmin", "org-admin", dept)
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("VACUUM ANALYZE")  # what autovacuum does shortly after a bulk load
        else:
            cur.execute("ANALYZE")

    via = args.via
    if via == "auto":
        try:
            reverse("accounts:user_list")
            via = "view"
        except NoReverseMatch:
            via = "selector"

    cases = [
        ("page 1", admin, {}),
        (f"deep page {args.deep_page}", admin, {"page": args.deep_page}),
        ("search q=user5", admin, {"q": "user5"}),
        (f"org filter {dept.name} (+9 sub-orgs)", admin, {"org": dept.pk}),
        ("org-scoped viewer, page 1", scoped, {}),
        ("search q=user5, page 100", admin, {"q": "user5", "page": 100}),
        # Substring search (issue 12): inside usernames, names and emails; pg_trgm GIN indexes.
        ("substring q=ser4242 (inside usernames)", admin, {"q": "ser4242"}),
        ("substring q=9999@exa (part of an email)", admin, {"q": "9999@exa"}),
        ("substring q=rst12 (inside first names, ~1%)", admin, {"q": "rst12"}),
        ("substring q='first12 last34' (two words)", admin, {"q": "first12 last34"}),
        ("substring q=sales (no match)", admin, {"q": "sales"}),
        ("substring q=ser5, 200 per page", admin, {"q": "ser5", "per_page": 200}),
        ("org-scoped viewer, substring q=ast7", scoped, {"q": "ast7"}),
        ("sort=-created, page 1", admin, {"sort": "-created"}),
    ]
    template = Template(ROW_TEMPLATE)

    def run_selector(viewer, params) -> tuple[int, int]:
        viewer = User.objects.select_related("profile__org").get(pk=viewer.pk)  # fresh per request
        org = Organization.objects.get(pk=params["org"]) if "org" in params else None
        qs = selectors.user_list(
            viewer=viewer, q=params.get("q", ""), org=org, sort=params.get("sort", "username")
        )
        page = Paginator(qs, params.get("per_page", PER_PAGE)).get_page(params.get("page", 1))
        html = template.render(Context({"page": page}))
        return len(page.object_list), page.paginator.count if html else 0

    client = None
    if via == "view":
        from django.test import Client

        client = Client(HTTP_HOST="127.0.0.1")  # an ALLOWED_HOSTS default
        url = reverse("accounts:user_list")

    def run_view(viewer, params) -> tuple[int, int]:
        # Signed in once per case (below), not per request: a sign-in writes the session, the
        # session row, last_login and an audit event (14 queries, 4 commits) that no list view pays.
        response = client.get(url, params)
        if response.status_code != 200:
            raise SystemExit(f"GET {url} {params} -> {response.status_code}")
        return -1, len(response.content)

    run = run_view if via == "view" else run_selector
    figures = []
    all_ok = True
    for label, viewer, params in cases:
        if via == "view":
            client.force_login(viewer)
        for _ in range(3):  # warm-up: connection, template and plan caches
            shape = run(viewer, params)
        with CaptureQueriesContext(connection) as ctx:
            run(viewer, params)
        captured = list(ctx.captured_queries)
        n_queries = len(captured)
        reset_queries()
        times, cpu = [], []
        for _ in range(args.reps):
            t0, c0 = time.perf_counter(), time.process_time()
            run(viewer, params)
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        p50, p95, worst = percentile(times, 50), percentile(times, 95), max(times)
        ok = p95 <= TARGET_MS
        all_ok &= ok
        what = f"rows={shape[0]} total={shape[1]}" if via == "selector" else f"{shape[1]} bytes"
        figures.append(
            (
                label,
                f"p50 {p50:6.1f}  p95 {p95:6.1f}  max {worst:6.1f} ms  "
                f"[{n_queries} queries, Python CPU p50 {percentile(cpu, 50):.1f} ms, {what}]"
                f"{'' if ok else '  << over target'}",
            )
        )
        print(f"  {label}: p50 {p50:.1f} ms p95 {p95:.1f} ms", flush=True)
        if args.explain and via == "selector":
            for q in captured:
                if "auth_user" in q["sql"] and ("LIMIT" in q["sql"] or "COUNT" in q["sql"]):
                    with connection.cursor() as cur:
                        prefix = (
                            "EXPLAIN (ANALYZE, BUFFERS) "
                            if connection.vendor == "postgresql"
                            else "EXPLAIN QUERY PLAN "
                        )
                        cur.execute(prefix + q["sql"])
                        print(f"--- {label}: {q['sql'][:160]}...")
                        for row in cur.fetchall():
                            print("   ", " ".join(str(c) for c in row))

    header = {
        "scale": f"{User.objects.count()} users, {Organization.objects.count()} orgs, {PER_PAGE} per page, sort=username unless given",
        "measured": (
            "GET through django.test.Client on the accounts:user_list view (middleware, session, "
            "form, template)"
            if via == "view"
            else "selectors.user_list + Paginator page + count + 50-row template render"
        ),
        "backend": backend_label(),
        "machine": machine_label(),
        "load average": load_label(),
        "repetitions": f"{args.reps} per case after 3 warm-ups; target p95 <= {TARGET_MS:.0f} ms",
        "load": f"{load_s:.1f} s, peak RSS {peak_rss_mib():.0f} MiB",
    }
    print_figures("bench/users_list.py: console users list", header, figures)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
