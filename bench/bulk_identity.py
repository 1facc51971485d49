"""Bulk write path benchmark: ``apply_identity_changes`` with 100k user creations.

    .venv/bin/python bench/bulk_identity.py              # PostgreSQL, 100k users (target <= 60 s)
    .venv/bin/python bench/bulk_identity.py --sqlite     # the same on an SQLite file
    .venv/bin/python bench/bulk_identity.py --rows 10000 # smaller run

Passes: (1) create ``--rows`` users (org from a 50-org tree, 1-2 roles, no password): all must be
"created"; (2) re-apply the same changes: all must be "unchanged"; (3) change the email of
``--update-rows`` users: all must be "updated". Exits non-zero if any status is unexpected.
Each pass prints its wall time and the CPU time of this process (user + system; the database
server's CPU is not in it), which a shared machine disturbs less than the wall time.

On PostgreSQL it first times the floor (issue 10): a plain ``COPY`` of the rows the creation pass
writes (users, profiles, memberships, grant rows, one audit event per user) into empty temporary
copies of the same tables (``CREATE TEMP TABLE ... (LIKE ... INCLUDING DEFAULTS)``: no indexes, no
WAL), rolled back afterwards, and prints "create / COPY" (target <= 3). Then the same rows into the
real tables (their indexes, WAL, and the deferred foreign-key checks fired with ``SET CONSTRAINTS ALL
IMMEDIATE``), rolled back and vacuumed away before the creation pass: what the database alone costs
for these rows, whatever the service does, printed as "create / real-table COPY".
Drops and recreates the bench database first (``--keep`` to reuse it; then pass 1 is skipped
when the users exist).
"""

from __future__ import annotations

import resource
import sys
import time

from _common import (
    backend_label,
    base_parser,
    load_label,
    machine_label,
    make_org_tree,
    peak_rss_mib,
    print_figures,
    setup_django,
    user_changes,
)


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def copy_floor(rows: int, orgs, *, real_tables: bool = False) -> tuple[list[tuple[str, str]], float]:
    """Time a plain ``COPY`` of the creation pass's rows into temporary copies of its tables.

    The rows are built first (not timed) with the values the identity service writes; then, in one
    transaction that is rolled back, one ``COPY`` per table. Returns the figures and the wall time.
    ``real_tables``: into the tables themselves instead (ids far above the sequences', so nothing
    collides), firing the deferred foreign-key checks before the rollback, then ``VACUUM`` so the
    creation pass does not meet the dead rows.
    """
    import json

    from django.contrib.auth.models import User
    from django.db import DatabaseError, connection, transaction
    from django.utils import timezone
    from psycopg.types.json import Jsonb

    from accounts.identity.validators import unusable_password
    from accounts.models import AuditEvent, Role, UserProfile
    from provisioning.models import RoleGrant

    role_ids = {r.slug: (r.pk, r.group_id, r.name) for r in Role.objects.all()}
    org_names = {o.pk: o.name for o in orgs}
    now = timezone.now()
    tables: dict[str, tuple[list[str], list[tuple]]] = {
        User._meta.db_table: (["id", "password", "last_login", "is_superuser", "username", "first_name",
                               "last_name", "email", "is_staff", "is_active", "date_joined"], []),
        UserProfile._meta.db_table: (["id", "user_id", "org_id", "state", "blocked_at", "deactivated_at", "notes",
                                      "source", "source_provider", "owner_source_id", "created_at",
                                      "updated_at"], []),
        User.groups.through._meta.db_table: (["id", "user_id", "group_id"], []),
        RoleGrant._meta.db_table: (["id", "user_id", "role_id", "source_id", "granted_at", "granted_by_label"], []),
        AuditEvent._meta.db_table: (["id", "created_at", "actor_id", "actor_label", "actor_type", "action",
                                     "target_type", "target_id", "target_label", "field", "old_value", "new_value",
                                     "source", "request_id", "job_id", "ip_address", "message"], []),
    }
    users, profiles, members, grants, audit = (t[1] for t in tables.values())
    base = 50_000_000 if real_tables else 0  # explicit ids: far above anything the sequences hand out
    for n, change in enumerate(user_changes(rows, orgs), start=base + 1):
        users.append((n, unusable_password(), None, False, change.username, change.first_name, change.last_name,
                      change.email, False, True, now))
        profiles.append((n, n, change.org_id, "invited", None, None, "", "local", "", None, now, now))
        for slug in sorted(change.roles):
            role_pk, group_id, _ = role_ids[slug]
            members.append((base + len(members) + 1, n, group_id))
            grants.append((base + len(grants) + 1, n, role_pk, None, now, ""))
        new = {"username": change.username, "email": change.email, "first_name": change.first_name,
               "last_name": change.last_name, "org": org_names[change.org_id], "state": "invited",
               "roles": sorted(role_ids[s][2] for s in change.roles), "groups": [], "source": "local"}
        audit.append((n, now, None, "bench", "system", "user.created", "user", str(n), change.username, "",
                      None, Jsonb(new, dumps=json.dumps), "local", "", "", None, ""))
    figures = []
    total = 0.0
    label = "real-table COPY" if real_tables else "COPY"
    cpu0 = cpu_seconds()
    with transaction.atomic(), connection.cursor() as cursor:
        for table, (columns, data) in tables.items():
            target = table
            if not real_tables:
                target = f"bench_copy_{table}"
                cursor.execute(f'CREATE TEMP TABLE "{target}" (LIKE "{table}" INCLUDING DEFAULTS) ON COMMIT DROP')
            t0 = time.perf_counter()
            with cursor.cursor.copy(f'COPY "{target}" ({", ".join(columns)}) FROM STDIN') as copy:
                for row in data:
                    copy.write_row(row)
            wall = time.perf_counter() - t0
            total += wall
            figures.append((f"{label}: {table}", f"{len(data)} rows, {wall:.2f} s"))
        if real_tables:
            t0 = time.perf_counter()
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the deferred FK checks a COMMIT would run
            wall = time.perf_counter() - t0
            total += wall
            figures.append((f"{label}: FK checks", f"{wall:.2f} s (deferred constraints, as at COMMIT)"))
        transaction.set_rollback(True)
    figures.append((f"{label}: wall", f"{total:.1f} s (all tables)"))
    figures.append((f"{label}: CPU", f"{cpu_seconds() - cpu0:.1f} s (this process)"))
    if real_tables:
        with connection.cursor() as cursor:
            for table in tables:
                cursor.execute(f'VACUUM "{table}"')
            # The rolled-back rows wrote WAL (at 100k: enough to bring on a checkpoint): flush it now,
            # so the creation pass does not pay for a checkpoint the floor caused (needs a superuser,
            # as the bench's postgres role is; skipped otherwise).
            try:
                with transaction.atomic():
                    cursor.execute("CHECKPOINT")
            except DatabaseError:
                figures.append((f"{label}: note", "no CHECKPOINT (not a superuser): the creation pass may pay for one"))
    return figures, total


def run_pass(label: str, changes, total: int, expect: str, actor) -> tuple[list[tuple[str, str]], bool, float]:
    from accounts.identity.service import apply_identity_changes

    last = [time.perf_counter()]

    def progress(done: int) -> None:
        now = time.perf_counter()
        if now - last[0] >= 5 or done == total:
            print(f"  {label}: {done}/{total}", flush=True)
            last[0] = now

    t0, cpu0 = time.perf_counter(), cpu_seconds()
    result = apply_identity_changes(changes=changes, actor=actor, on_progress=progress)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    counts = result.counts()
    ok = counts[expect] == total and len(result.results) == total
    refused = [r for r in result.results if r.status == "refused"][:3]
    for r in refused:
        print(f"  refused ref={r.ref}: {r.error!r}", file=sys.stderr)
    del result
    figures = [
        (f"{label}: rows", f"{total}"),
        (f"{label}: wall", f"{wall:.1f} s"),
        (f"{label}: rate", f"{total / wall:,.0f} rows/s"),
        (f"{label}: CPU", f"{cpu:.1f} s (this process, user+system)"),
        (
            f"{label}: statuses",
            " ".join(f"{k}={v}" for k, v in counts.items()) + ("" if ok else f"  << expected all {expect}"),
        ),
        (f"{label}: peak RSS", f"{peak_rss_mib():.0f} MiB (process so far)"),
    ]
    return figures, ok, wall


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--update-rows", type=int, default=10_000, help="users whose email pass 3 changes")
    parser.add_argument("--no-real-floor", action="store_true",
                        help="skip the COPY into the real tables (rolled back and vacuumed before the creation pass)")
    args = parser.parse_args()
    setup_django(args)

    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection

    from accounts.identity.types import Actor
    from accounts.models import AuditEvent

    actor = Actor.system("bench")
    orgs = make_org_tree()
    rss_before = peak_rss_mib()
    figures: list[tuple[str, str]] = []
    ok = True
    if args.keep and User.objects.filter(username=f"user{args.rows - 1}").exists():
        print("--keep: users exist, skipping the creation pass")
    else:
        copy_wall = real_wall = None
        if connection.vendor == "postgresql":
            f, copy_wall = copy_floor(args.rows, orgs)
            figures += f
            if not args.no_real_floor:
                f, real_wall = copy_floor(args.rows, orgs, real_tables=True)
                figures += f
        f, good, create_wall = run_pass("create", user_changes(args.rows, orgs), args.rows, "created", actor)
        figures += f
        ok &= good
        if copy_wall:
            figures.append(("create / COPY", f"{create_wall / copy_wall:.1f} x (target <= 3, issue 10)"))
        if real_wall:
            figures.append(("create / real-table COPY", f"{create_wall / real_wall:.1f} x (the service's own share; "
                                                        f"real-table COPY / COPY {real_wall / copy_wall:.1f} x)"))
    f, good, _ = run_pass("re-apply", user_changes(args.rows, orgs), args.rows, "unchanged", actor)
    figures += f
    ok &= good
    n = min(args.update_rows, args.rows)
    # Change the email of every (rows // n)-th user, spread over the whole table.
    step = max(1, args.rows // n)
    from accounts.identity.types import IdentityChange

    suffix = f"changed{int(time.time())}.example.org"  # unique so a --keep rerun still changes them
    updates = (
        IdentityChange(username=f"user{i}", email=f"user{i}@{suffix}", ref=i)
        for i in range(0, step * n, step)
    )
    f, good, _ = run_pass("update email", updates, n, "updated", actor)
    figures += f
    ok &= good

    header = {
        "scale": f"{args.rows} users, {len(orgs)} orgs (+root), 1-2 roles each, batch size {settings.IDM_BULK_BATCH_SIZE}",
        "backend": backend_label(),
        "machine": machine_label(),
        "load average": load_label(),
        "rows now": f"users={User.objects.count()} audit_events={AuditEvent.objects.count()} "
        f"memberships={User.groups.through.objects.count()}",
        "RSS before passes": f"{rss_before:.0f} MiB",
        "CPU whole process": f"{cpu_seconds():.1f} s (user+system, includes migrate and the COPY floor)",
    }
    print_figures("bench/bulk_identity.py: apply_identity_changes", header, figures)
    if not ok:
        print("FAILED: unexpected statuses", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
