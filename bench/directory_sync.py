"""Directory sync benchmark: a large slapd directory synced into idm, first full run, a no-change
re-run (full and incremental), an incremental run after 1 % of the users changed, and an incremental
run with the anchor reconciliation after 0.1 % were deleted.

    .venv/bin/python bench/directory_sync.py --database-url postgres://postgres@127.0.0.1:5432/idm_sync_bench
    .venv/bin/python bench/directory_sync.py --rows 10000 --sqlite

The directory is bench/directory_data.py's (users in 20 OUs, groups with Zipf sizes, one in ten
nested, one user in 500 locked), in a throwaway slapd (tests/directory_servers.py) on loopback. Beside
the sync times it prints the raw paged search of the same users (the floor). Targets (issue 10, 100k
users, PostgreSQL): first full sync <= 30 s with peak RSS <= 400 MB, no-change re-run <= 8 s, 1 %
changed (incremental) <= 5 s. Exits non-zero unless the counts are exactly right.
"""

from __future__ import annotations

import cProfile
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    backend_label,
    base_parser,
    load_label,
    machine_label,
    peak_rss_mib,
    print_figures,
    setup_django,
    timed,
)


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=1_000)
    parser.add_argument("--page-size", type=int, default=1_000)
    parser.add_argument("--change-percent", type=float, default=1.0)
    parser.add_argument("--profile", metavar="DIR",
                        help="write a cProfile of each sync to DIR/<step>.prof (slows the runs down)")
    args = parser.parse_args()
    setup_django(args)

    from django.db import connection as db

    steps: dict[str, tuple[float, int]] = {}  # step -> (CPU seconds of this process, queries)

    def measured(step: str, run):
        """Run one sync, recording this process's CPU time and the queries it sent (the wall time is
        the caller's ``timed``); with --profile, also its cProfile."""
        queries = [0]

        def count(execute, sql, params, many, context):
            queries[0] += 1
            return execute(sql, params, many, context)

        profiler = cProfile.Profile() if args.profile else None
        cpu = time.process_time()
        with db.execute_wrapper(count):
            if profiler is not None:
                profiler.enable()
            try:
                return run()
            finally:
                if profiler is not None:
                    profiler.disable()
                    Path(args.profile).mkdir(parents=True, exist_ok=True)
                    profiler.dump_stats(str(Path(args.profile) / f"{step}.prof"))
                steps[step] = (time.process_time() - cpu, queries[0])

    import ldap

    from accounts.identity.types import Actor
    from accounts.models import Organization
    from bench.directory_data import PEOPLE, SUFFIX, user_dn, write_directory_ldif
    from provisioning.ldap.client import DirectoryClient, DirectoryConnection
    from provisioning.ldap.directories import DirectorySettings, directory_create
    from provisioning.ldap.sync import count_line, sync_directory
    from provisioning.ldap.translate import OPENLDAP
    from provisioning.models import Directory
    from tests.directory_servers import TestSlapd

    workdir = Path(tempfile.mkdtemp(prefix="idm-bench-sync-"))
    ldif = workdir / "directory.ldif"
    counts = write_directory_ldif(ldif, users=args.rows, groups=args.groups)
    server = TestSlapd(preload=ldif)
    server.start()
    failures: list[str] = []
    try:
        connection = DirectoryConnection(urls=(server.ldap_uri,), bind_dn=server.root_dn,
                                         bind_password=server.root_pw, operation_timeout=600)
        with DirectoryClient(connection) as client, timed() as floor:
            read = sum(len(page) for page in client.search(base_dn=PEOPLE, filter=OPENLDAP.user_filter,
                                                           attributes=OPENLDAP.user_attributes,
                                                           page_size=args.page_size))
        directory = directory_create(
            actor=Actor.system("bench"), name="Bench LDAP", org=Organization.objects.get(parent__isnull=True),
            bind_password=server.root_pw,
            data=DirectorySettings(urls=(server.ldap_uri,), base_dns=(SUFFIX,), bind_dn=server.root_dn,
                                   page_size=args.page_size, operation_timeout=600))
        with timed() as first_time:
            first = measured("first", lambda: sync_directory(directory))
        rss_first = peak_rss_mib()
        # A scheduled full run (full_every passed), not ``full=True`` (which re-plans everyone):
        # every entry is read, unchanged ones are skipped before the planner.
        Directory.objects.filter(pk=directory.pk).update(last_full_at=None)
        with timed() as full_time:
            full = measured("full", lambda: sync_directory(directory))
        with timed() as incr_idle_time:
            idle = measured("idle", lambda: sync_directory(directory))
        changed = max(1, int(args.rows * args.change_percent / 100))
        admin = ldap.initialize(server.ldap_uri)
        admin.simple_bind_s(server.root_dn, server.root_pw)
        step = max(1, args.rows // changed)
        for index in range(0, step * changed, step):
            admin.modify_s(user_dn(index), [(ldap.MOD_REPLACE, "sn", [f"Changed{index}".encode()])])
        with timed() as incr_time:
            incr = measured("incr", lambda: sync_directory(directory))
        # Deletions: invisible to an incremental run's query for changes; the anchor reconciliation
        # (due every reconcile_every) reads every anchor and blocks the users gone.
        deleted = [index for index in range(1, step * changed, step) if index % 500 != 499][:max(1, changed // 10)]
        for index in deleted:
            admin.delete_s(user_dn(index))
        admin.unbind_s()
        Directory.objects.filter(pk=directory.pk).update(last_reconciled_at=None)
        with timed() as reconcile_time:
            recon = measured("reconcile", lambda: sync_directory(directory))
    finally:
        server.stop()

    expect = [
        (first.status == "succeeded" and first.counts["created"] == args.rows, f"first: {count_line(first.counts)}"),
        (full.counts["unchanged"] == args.rows and full.counts["updated"] == 0, f"full: {count_line(full.counts)}"),
        (idle.counts["incremental"] == 1 and idle.counts["updated"] == 0, f"idle: {count_line(idle.counts)}"),
        (incr.counts["incremental"] == 1 and incr.counts["updated"] == changed, f"incr: {count_line(incr.counts)}"),
        (recon.counts["incremental"] == 1 and recon.counts["blocked"] == len(deleted)
         and recon.counts.get("anchors_checked") == args.rows - len(deleted), f"reconcile: {count_line(recon.counts)}"),
    ]
    failures = [message for ok, message in expect if not ok]

    def cpu(step: str) -> str:
        seconds, queries = steps[step]
        return f"cpu {seconds:.1f} s, {queries:,} queries"
    print_figures(
        "Directory sync (bench/directory_sync.py)",
        {"machine": machine_label(), "database": backend_label(), "directory": f"slapd on loopback, {counts}",
         "page size": args.page_size, "load": load_label()},
        [
            ("floor: raw paged search of the users", f"{floor():.2f} s ({read:,} entries)"),
            ("first full sync", f"{first_time():.1f} s ({first_time() / floor():.1f}x floor), peak RSS "
                                f"{rss_first:.0f} MiB; {cpu('first')}"),
            ("  counts", count_line(first.counts)),
            ("full re-run, nothing changed", f"{full_time():.1f} s ({full_time() / floor():.1f}x floor; "
                                             f"{cpu('full')})"),
            ("incremental re-run, nothing changed", f"{incr_idle_time():.1f} s (read {idle.counts['read']:,}; "
                                                    f"{cpu('idle')})"),
            (f"incremental, {changed:,} users changed", f"{incr_time():.1f} s (read {incr.counts['read']:,}, "
                                                          f"updated {incr.counts['updated']:,}; {cpu('incr')})"),
            (f"incremental + anchor reconciliation, {len(deleted):,} users deleted",
             f"{reconcile_time():.1f} s (anchors {recon.counts.get('anchors_checked', 0):,}, "
             f"blocked {recon.counts['blocked']:,}; {cpu('reconcile')})"),
            ("peak RSS", f"{peak_rss_mib():.0f} MiB"),
        ],
    )
    for message in failures:
        print(f"UNEXPECTED {message}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
