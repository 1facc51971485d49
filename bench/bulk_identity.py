"""Bulk write path benchmark: ``apply_identity_changes`` with 100k user creations.

    .venv/bin/python bench/bulk_identity.py              # PostgreSQL, 100k users (target <= 60 s)
    .venv/bin/python bench/bulk_identity.py --sqlite     # the same on an SQLite file
    .venv/bin/python bench/bulk_identity.py --rows 10000 # smaller run

Passes: (1) create ``--rows`` users (org from a 50-org tree, 1-2 roles, no password): all must be
"created"; (2) re-apply the same changes: all must be "unchanged"; (3) change the email of
``--update-rows`` users: all must be "updated". Exits non-zero if any status is unexpected.
Drops and recreates the bench database first (``--keep`` to reuse it; then pass 1 is skipped
when the users exist).
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
    print_figures,
    setup_django,
    user_changes,
)


def run_pass(label: str, changes, total: int, expect: str, actor) -> tuple[list[tuple[str, str]], bool]:
    from accounts.identity.service import apply_identity_changes

    last = [time.perf_counter()]

    def progress(done: int) -> None:
        now = time.perf_counter()
        if now - last[0] >= 5 or done == total:
            print(f"  {label}: {done}/{total}", flush=True)
            last[0] = now

    t0 = time.perf_counter()
    result = apply_identity_changes(changes=changes, actor=actor, on_progress=progress)
    wall = time.perf_counter() - t0
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
        (
            f"{label}: statuses",
            " ".join(f"{k}={v}" for k, v in counts.items()) + ("" if ok else f"  << expected all {expect}"),
        ),
        (f"{label}: peak RSS", f"{peak_rss_mib():.0f} MiB (process so far)"),
    ]
    return figures, ok


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--update-rows", type=int, default=10_000, help="users whose email pass 3 changes")
    args = parser.parse_args()
    setup_django(args)

    from django.conf import settings
    from django.contrib.auth.models import User

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
        f, good = run_pass("create", user_changes(args.rows, orgs), args.rows, "created", actor)
        figures += f
        ok &= good
    f, good = run_pass("re-apply", user_changes(args.rows, orgs), args.rows, "unchanged", actor)
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
    f, good = run_pass("update email", updates, n, "updated", actor)
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
    }
    print_figures("bench/bulk_identity.py: apply_identity_changes", header, figures)
    if not ok:
        print("FAILED: unexpected statuses", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
