"""Shared helpers for the benchmarks in bench/ (not tests; run by hand, see docs/benchmarks.md).

Each benchmark runs against a dedicated database that it drops and recreates first (unless
``--keep``): PostgreSQL from ``--database-url`` / ``DATABASE_URL`` (default
``postgres://postgres@127.0.0.1:5432/idm_bench``; only a database with "bench" in its name is ever
dropped) or, with ``--sqlite``, the file ``var/bench/<database name>.sqlite3``. The environment is set
before ``django.setup()`` so the benchmark never touches the developer's own database.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/idm_bench"
BENCH_VAR = ROOT / "var" / "bench"


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rows", type=int, default=100_000, help="number of users (default 100000)")
    parser.add_argument("--sqlite", action="store_true", help="run on an SQLite file instead of PostgreSQL")
    parser.add_argument(
        "--keep", action="store_true", help="keep the existing bench database (no drop/create)"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", DEFAULT_PG_URL),
        help=f"PostgreSQL URL of the bench database (default $DATABASE_URL or {DEFAULT_PG_URL})",
    )
    return parser


def _recreate_postgres(url: str) -> None:
    import psycopg

    parts = urlparse(url)
    dbname = parts.path.lstrip("/")
    if "bench" not in dbname:
        # DATABASE_URL may point at a real database: only ever drop one named for benchmarks.
        raise SystemExit(
            f"refusing to drop database {dbname!r}: bench databases must have 'bench' in their name"
        )
    admin_url = urlunparse(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')


def setup_django(args: argparse.Namespace) -> str:
    """Point settings at the bench database (recreated unless --keep), django.setup(), migrate.

    Returns the database URL used.
    """
    BENCH_VAR.mkdir(parents=True, exist_ok=True)
    if args.sqlite:
        # One file per bench database name, so benches running side by side don't share a file.
        name = urlparse(args.database_url).path.lstrip("/") or "idm_bench"
        path = BENCH_VAR / f"{name}.sqlite3"
        if not args.keep:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        url = args.database_url
        if not args.keep:
            _recreate_postgres(url)
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "idm.settings"
    os.environ.pop("REDIS_URL", None)  # the bench needs no Redis: database cache, filesystem broker
    os.environ.setdefault("IDM_LOG_LEVEL", "WARNING")
    os.environ.setdefault("IDM_DEBUG", "0")  # DEBUG would record every query (time and memory)

    import django

    django.setup()
    from django.core.management import call_command

    t0 = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    print(f"migrate: {time.perf_counter() - t0:.1f} s", flush=True)
    return url


def backend_label() -> str:
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
        s = connection.settings_dict
        return f"PostgreSQL {version} ({s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']})"
    import sqlite3

    return f"SQLite {sqlite3.sqlite_version} ({connection.settings_dict['NAME']})"


def machine_label() -> str:
    cpus = os.cpu_count()
    try:
        cpus = len(os.sched_getaffinity(0))  # what `nproc` prints
    except AttributeError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kib = int(fh.readline().split()[1])
        mem = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    import django

    return (
        f"nproc={cpus}{mem}, {platform.system()} {platform.release()} {platform.machine()}, "
        f"Python {platform.python_version()}, Django {django.get_version()}"
    )


def load_label() -> str:
    """Load average: the benchmarks share the machine with whatever else runs, so print it."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min, at the end of the run)"


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@contextmanager
def timed():
    """``with timed() as t: ...`` then ``t()`` is the elapsed seconds."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


def print_figures(title: str, header: dict[str, object], rows: list[tuple[str, str]]) -> None:
    """A block that can be pasted as is into docs/benchmarks.md."""
    width = max([len(k) for k in header] + [len(k) for k, _ in rows] + [8])
    line = "=" * 78
    print(line)
    print(f"{title}")
    print(line)
    for key, value in header.items():
        print(f"{key:<{width}}  {value}")
    print("-" * 78)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print(line, flush=True)


# --------------------------------------------------------------------------------------------
# Bench data: an org tree and user-creation changes (import Django models only after setup).

ROLE_POOL = ("console-user", "desktop-user", "help-desk", "user-modify", "audit-log-viewer")
DEPARTMENTS, TEAMS_PER_DEPARTMENT = 5, 9  # 5 + 5*9 = 50 orgs under the seeded root


def make_org_tree() -> list:
    """50 orgs under the seeded root (5 departments x 9 teams), created via ``org_create``.

    Returns the 50 created orgs (root excluded), departments first. Idempotent with ``--keep``.
    """
    from accounts.identity.orgs import org_create
    from accounts.identity.types import Actor
    from accounts.models import Organization

    actor = Actor.system("bench")
    root = Organization.objects.get(parent__isnull=True)
    existing = {o.name: o for o in Organization.objects.exclude(pk=root.pk)}
    depts, teams = [], []
    for d in range(1, DEPARTMENTS + 1):
        name = f"Department {d}"
        dept = existing.get(name) or org_create(actor=actor, name=name, parent=root)
        depts.append(dept)
        for t in range(1, TEAMS_PER_DEPARTMENT + 1):
            tname = f"Team {d}.{t}"
            teams.append(existing.get(tname) or org_create(actor=actor, name=tname, parent=dept))
    return depts + teams


def user_changes(rows: int, orgs: list, *, start: int = 0, email_suffix: str = "example.com"):
    """Deterministic creation changes: user{i}, an org from ``orgs`` round-robin, 1-2 roles, no password."""
    from accounts.identity.types import IdentityChange

    org_ids = [o.pk for o in orgs]
    n_roles = len(ROLE_POOL)
    for i in range(start, start + rows):
        roles = {ROLE_POOL[i % n_roles]}
        if i % 2:
            roles.add(ROLE_POOL[(i + 1 + i // n_roles) % n_roles])
        yield IdentityChange(
            username=f"user{i}",
            email=f"user{i}@{email_suffix}",
            first_name=f"First{i % 997}",
            last_name=f"Last{i % 1009}",
            org_id=org_ids[i % len(org_ids)],
            roles=frozenset(roles),
            ref=i,
        )
