"""Rules re-application benchmark: 100k users of one source, 1 % of them changed at the source.

    .venv/bin/python bench/provisioning_rules.py --database-url postgres://postgres@127.0.0.1:5432/idm_prov_bench
    .venv/bin/python bench/provisioning_rules.py --rows 10000 --sqlite

Set-up (not timed): a 50-org tree, one SCIM source with org rules (attribute ``dept`` -> department),
a role rule (group Engineering -> Help Desk + Console User; everyone else gets the org's default
roles) and an inactive rule (group Leavers); ``--rows`` users created through the identity service
by the source, each linked with its stored ``SourceRecord``, already in the state the rules give
(grant rows included). Then ``--change-percent`` of the stored records change (half move department,
half switch between Engineering and Staff) and ``reapply_rules`` is timed. Target: <= 10 s for
100k users with 1 % changed on PostgreSQL. Exits non-zero unless exactly the changed users are updated.
``--keep`` reuses a bench database of the same ``--rows`` (skips the ~10 min set-up at 100k).
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
)


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--change-percent", type=float, default=1.0)
    args = parser.parse_args()
    url = setup_django(args)

    from django.db import transaction

    from accounts.identity.service import apply_identity_changes
    from accounts.identity.types import ExternalLink, IdentityChange
    from accounts.models import ExternalIdentity, Organization, Role
    from provisioning.lifecycle import source_actor
    from provisioning.models import MappingRule, RoleGrant, Source
    from provisioning.reapply import reapply_rules
    from provisioning.resolve import link_raw, stored_record
    from provisioning.rules import SourceRecord

    orgs = make_org_tree()
    departments = orgs[:5]
    root = Organization.objects.get(parent__isnull=True)
    existing = Source.objects.filter(slug="bench-okta").first()
    reuse = existing is not None and ExternalIdentity.objects.filter(provider="bench-okta").count() == args.rows
    if existing is not None and not reuse:
        raise SystemExit("the bench database holds another scale: drop --keep")
    source = existing or Source.objects.create(name="Bench Okta", slug="bench-okta", kind="scim", org_mode="rules",
                                               fallback_org=root)
    for position, dept in enumerate(departments if not reuse else []):
        MappingRule.objects.create(source=source, kind="org", condition="attribute_equals", attribute="dept",
                                   value=dept.name, target_org=dept, position=position)
    if not reuse:
        role_rule = MappingRule.objects.create(source=source, kind="role", condition="member_of_group",
                                               value="Engineering")
        role_rule.roles.set(Role.objects.filter(slug__in=["help-desk", "console-user"]))
        MappingRule.objects.create(source=source, kind="active", condition="member_of_group", value="Leavers")
    actor = source_actor(source)

    def record(i: int) -> SourceRecord:
        dept = i % 5
        engineering = i % 3 == 0
        return SourceRecord.build(attributes={"userName": f"user{i}", "dept": departments[dept].name},
                                  groups=["Engineering" if engineering else "Staff"])

    def roles_for(i: int) -> frozenset[str]:
        return frozenset({"help-desk", "console-user"} if i % 3 == 0 else {"console-user", "desktop-user"})

    t0 = time.perf_counter()
    created = 0
    changes = () if reuse else (IdentityChange(username=f"user{i}", email=f"user{i}@example.com", org_id=departments[i % 5].pk,
                              roles=roles_for(i), ref=i,
                              link=ExternalLink(source="scim", provider=source.slug, external_id=f"ext-{i}",
                                                raw=link_raw(record(i))))
               for i in range(args.rows))
    if not reuse:
        created = apply_identity_changes(changes=changes, actor=actor).counts()["created"]
        role_ids = dict(Role.objects.values_list("slug", "pk"))
        user_ids = dict(ExternalIdentity.objects.filter(provider=source.slug).values_list("external_id", "user_id"))
        grants = [RoleGrant(user_id=user_ids[f"ext-{i}"], role_id=role_ids[slug], source=source)
                  for i in range(args.rows) for slug in roles_for(i)]
        # The identity service's writer already records the source's grant rows; this only fills
        # any gap (ignore_conflicts), so the state is "as the rules give" either way.
        RoleGrant.objects.bulk_create(grants, batch_size=5000, ignore_conflicts=True)
        del grants
    setup_wall = time.perf_counter() - t0
    print(f"set-up: {created} users in {setup_wall:.1f} s", flush=True)

    # 1 % of the stored records change at the source (what a sync or SCIM request would store).
    step = max(1, round(100 / args.change_percent))
    changed_ids = list(range(0, args.rows, step))
    with transaction.atomic():
        links = list(ExternalIdentity.objects.filter(provider=source.slug,
                                                     external_id__in=[f"ext-{i}" for i in changed_ids]))
        by_ext = {link.external_id: link for link in links}
        for i in changed_ids:
            # Change what is stored now (so a --keep re-run changes the same users again).
            now = stored_record(by_ext[f"ext-{i}"].raw)
            dept = departments.index(next(d for d in departments if d.name.lower() == now.first("dept").lower()))
            engineering = "engineering" in now.groups
            if i % 2:
                dept = (dept + 1) % 5
            else:
                engineering = not engineering
            by_ext[f"ext-{i}"].raw = link_raw(SourceRecord.build(
                attributes={"userName": f"user{i}", "dept": departments[dept].name},
                groups=["Engineering" if engineering else "Staff"]))
        ExternalIdentity.objects.bulk_update(links, ["raw"], batch_size=2000)

    rss_before = peak_rss_mib()
    t0, cpu0 = time.perf_counter(), time.process_time()
    run = reapply_rules(source=source)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    expected = len(changed_ids)
    ok = run.counts["updated"] == expected and run.counts["refused"] == 0 and run.status == "succeeded"
    print_figures("Rules re-application (bench/provisioning_rules.py)", {
        "machine": machine_label(), "database": backend_label(), "url": url.split("@")[-1], "load": load_label(),
    }, [
        ("users of the source", f"{args.rows}"),
        ("changed at the source", f"{expected} ({args.change_percent:g} %)"),
        ("re-application wall", f"{wall:.2f} s"),
        ("re-application CPU", f"{cpu:.2f} s in this process (the rest is the database and the machine's load)"),
        ("rate", f"{args.rows / wall:,.0f} users/s evaluated"),
        ("run counts", " ".join(f"{k}={v}" for k, v in run.counts.items())
         + ("" if ok else f"  << expected updated={expected}, refused=0")),
        ("journal entries", f"{run.entries.count()}"),
        ("peak RSS", f"{peak_rss_mib():.0f} MiB (process; {rss_before:.0f} MiB before the re-application)"),
    ])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
