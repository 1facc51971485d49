"""What voiding credentials on a promotion costs (review 3 H2): ``apply_identity_changes`` granting a
role to ``--rows`` users, once without a rise and once with one.

    flock /tmp/idm-bench.lock .venv/bin/python bench/privilege_rise.py --rows 10000 \\
        --database-url postgres://postgres@127.0.0.1:5432/idm_bench_sec6

Setup (not timed): ``--rows`` users created through the service (the users of bench/bulk_identity.py),
every second one with an invitation row, every tenth one with a pending "change password".
Pass 1 "no rise": add Console User (a sign-in role: the privilege rule ignores it), all "updated",
no voiding. Pass 2 "rise": add Cross Org Admin, all "updated", every user's credentials voided
(security stamps, invitations, temporary passwords, one audit event each). The difference is the
cost of ``accounts.credentials.revocation``. Exits non-zero when a status or a count is wrong.
"""

from __future__ import annotations

import sys
import time

from _common import (
    base_parser,
    load_label,
    machine_label,
    make_org_tree,
    print_figures,
    setup_django,
    user_changes,
)
from bulk_identity import cpu_seconds


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.set_defaults(rows=10_000)
    args = parser.parse_args()
    setup_django(args)

    from django.contrib.auth.models import User
    from django.utils import timezone

    from accounts.credentials.models import Invitation, RequiredAction, SecurityStamp
    from accounts.identity.service import apply_identity_changes
    from accounts.identity.types import Actor, IdentityChange
    from accounts.models import AuditEvent

    actor = Actor.system("bench")
    orgs = make_org_tree()
    result = apply_identity_changes(changes=user_changes(args.rows, orgs), actor=actor)
    ids = [r.user_id for r in result.results if r.user_id]
    now = timezone.now()
    Invitation.objects.bulk_create([Invitation(user_id=pk, nonce="n", sent_at=now, expires_at=now, sent_by="bench")
                                    for pk in ids[::2]], batch_size=2000)
    RequiredAction.objects.bulk_create([RequiredAction(user_id=pk, kind=RequiredAction.Kind.CHANGE_PASSWORD)
                                        for pk in ids[::10]], batch_size=2000)
    # Time spent in the two revocation functions the service calls (the rest is the role grant itself).
    from accounts.identity import service as identity_service

    spent = {"privilege_rose": [0.0, 0], "void_after_privilege_rise": [0.0, 0]}

    def timed_call(name):
        inner = getattr(identity_service, name)

        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return inner(*a, **kw)
            finally:
                spent[name][0] += time.perf_counter() - t
                spent[name][1] += 1
        setattr(identity_service, name, wrapper)

    for name in spent:
        timed_call(name)
    figures: list[tuple[str, str]] = []
    ok = len(ids) == args.rows
    start_load = load_label().split(" (")[0]  # after the setup, before the timed passes
    for label, slug in (("no rise (add Console User)", "console-user"), ("rise (add Cross Org Admin)", "cross-org-admin")):
        changes = (IdentityChange(user_id=pk, roles_add=frozenset({slug}), ref=pk) for pk in ids)
        t0, cpu0 = time.perf_counter(), cpu_seconds()
        counts = apply_identity_changes(changes=changes, actor=actor).counts()
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        # (users created with Console User already hold it: "unchanged" there)
        figures += [(f"{label}: wall", f"{wall:.1f} s"), (f"{label}: CPU", f"{cpu:.1f} s (this process)"),
                    (f"{label}: statuses", " ".join(f"{k}={v}" for k, v in counts.items()))]
        ok &= counts.get("refused", 0) == 0
        for name, (secs, calls) in spent.items():
            figures.append((f"{label}: in {name}", f"{secs:.2f} s ({calls} calls)"))
            spent[name] = [0.0, 0]
    voided = AuditEvent.objects.filter(action="user.credentials_voided").count()
    ok &= (voided == args.rows and SecurityStamp.objects.count() == args.rows
           and not Invitation.objects.exists() and not RequiredAction.objects.exists()
           and User.objects.filter(pk__in=ids[::10], password__startswith="!").count() == len(ids[::10]))  # noqa: S106
    figures.append(("voided", f"{voided} audit events, {SecurityStamp.objects.count()} stamps"))
    print_figures("bench/privilege_rise.py: voiding on promotion", {
        "scale": f"{args.rows} users", "machine": machine_label(),
        "load average": f"before the passes {start_load}; {load_label()}"}, figures)
    if not ok:
        print("FAILED: unexpected statuses or counts", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
