"""The floor under directory sync: read a whole directory with paged searches and translate it.

Starts a throwaway slapd (the test server in tests/directory_servers.py) preloaded with the bench
directory of bench/directory_data.py (100k users, 1k groups with skewed sizes and nesting), then
times, over one bound connection on loopback:

* the raw paged search of all users with the OpenLDAP preset's attributes,
* the same search plus translation into DirectoryUser values,
* the paged search of all groups plus translation and nested-group expansion.

A sync cannot be faster than this; the sync benchmark prints its own time beside it.

    .venv/bin/python bench/ldap_search.py [--users 100000] [--groups 1000] [--page-size 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import load_label, machine_label, peak_rss_mib, print_figures, timed  # noqa: E402
from bench.directory_data import GROUPS, PEOPLE, write_directory_ldif  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=1_000)
    parser.add_argument("--page-size", type=int, default=1_000)
    args = parser.parse_args()

    # Imported after sys.path is set; these modules need no Django settings.
    from provisioning.ldap.client import DirectoryClient, DirectoryConnection
    from provisioning.ldap.translate import OPENLDAP, expand_memberships, translate_group, translate_user
    from tests.directory_servers import TestSlapd

    workdir = Path(tempfile.mkdtemp(prefix="idm-bench-ldap-"))
    ldif = workdir / "directory.ldif"
    with timed() as generate:
        counts = write_directory_ldif(ldif, users=args.users, groups=args.groups)
    server = TestSlapd(preload=ldif)
    with timed() as load:
        server.start()
    try:
        connection = DirectoryConnection(urls=(server.ldap_uri,), bind_dn=server.root_dn,
                                         bind_password=server.root_pw, operation_timeout=300)
        now = datetime.now(UTC)
        with DirectoryClient(connection) as client:
            with timed() as raw:
                raw_users = sum(len(page) for page in client.search(
                    base_dn=PEOPLE, filter=OPENLDAP.user_filter, attributes=OPENLDAP.user_attributes,
                    page_size=args.page_size))
            with timed() as translated:
                users = [translate_user(e.dn, e.attributes, OPENLDAP, now=now)
                         for page in client.search(base_dn=PEOPLE, filter=OPENLDAP.user_filter,
                                                   attributes=OPENLDAP.user_attributes, page_size=args.page_size)
                         for e in page]
            with timed() as grouped:
                groups = [translate_group(e.dn, e.attributes, OPENLDAP)
                          for page in client.search(base_dn=GROUPS, filter=OPENLDAP.group_filter,
                                                    attributes=OPENLDAP.group_attributes, page_size=args.page_size)
                          for e in page]
                closure = expand_memberships(groups)
    finally:
        server.stop()
    inactive = sum(1 for u in users if not u.active)
    status_ok = raw_users == len(users) == args.users and len(groups) == args.groups \
        and inactive == counts["disabled"]
    print_figures(
        "Directory read floor (bench/ldap_search.py)",
        {"machine": machine_label(), "directory": f"slapd on loopback, {counts}",
         "page size": args.page_size, "load": load_label()},
        [
            ("generate LDIF", f"{generate():.1f} s"),
            ("slapadd + start", f"{load():.1f} s"),
            ("users: raw paged search", f"{raw():.2f} s ({raw_users / raw():,.0f} entries/s)"),
            ("users: search + translate", f"{translated():.2f} s ({len(users) / translated():,.0f} entries/s)"),
            ("groups: search + translate + nesting", f"{grouped():.2f} s ({len(closure):,} members expanded)"),
            ("inactive users found", f"{inactive:,} (expected {counts['disabled']:,})"),
            ("peak RSS", f"{peak_rss_mib():.0f} MiB"),
        ],
    )
    return 0 if status_ok else 1


if __name__ == "__main__":
    sys.exit(main())
