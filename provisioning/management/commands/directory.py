"""``manage.py directory add NAME --url URL ...``: create an LDAP / AD directory as the console does
(same service code, ``provisioning.ldap.directories``), for automation and for checking a fresh install.
The schedule (``--interval``, ``--reconcile-every``, ``--full-every``, in hours) is the console's too.

The bind password is read from a file (``--bind-password-file``; ``-`` for standard input), never from
the command line, where other users of the machine could read it.
"""

from __future__ import annotations

import argparse
import math
import sys
from datetime import timedelta
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from accounts.exceptions import IdentityError
from accounts.identity.orgs import OrgIndex
from accounts.identity.types import Actor
from provisioning.ldap.directories import MAX_SCHEDULE, DirectorySettings, directory_create
from provisioning.models import Directory

MAX_HOURS = MAX_SCHEDULE.total_seconds() / 3600


def _hours(text: str) -> timedelta:
    """A schedule given in hours (fractions allowed), bounded like the console form's fields."""
    try:
        hours = float(text)
    except ValueError:
        hours = math.nan
    if not math.isfinite(hours) or not 0 <= hours <= MAX_HOURS:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of hours, 0 to {MAX_HOURS:g}")
    return timedelta(hours=hours)


class Command(BaseCommand):
    help = "Manage LDAP / Active Directory directories (see docs/directory-sync.md)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="Create a directory.")
        add.add_argument("name")
        add.add_argument("--url", action="append", required=True, help="Server URL; repeat for fallbacks.")
        add.add_argument("--bind-dn", default="")
        add.add_argument("--bind-password-file", help="File holding the bind password ('-': standard input).")
        add.add_argument("--base-dn", action="append", required=True, help="Search base; repeat for several.")
        add.add_argument("--preset", required=True, choices=Directory.Preset.values)
        add.add_argument("--org", help="Organization (name or path) new users go to; default: orgs not managed.")
        add.add_argument("--user-filter", default="")
        add.add_argument("--group-filter", default="")
        add.add_argument("--tls", default=None, choices=Directory.TlsMode.values,
                         help="Default: ldaps for ldaps:// URLs, else none.")
        add.add_argument("--ca-file", help="PEM file of the CA that signed the server certificate.")
        add.add_argument("--page-size", type=int, default=500)
        defaults = DirectorySettings(urls=(), base_dns=())
        add.add_argument("--interval", type=_hours, default=defaults.interval, metavar="HOURS",
                         help="Sync every HOURS (default 12; at least 5 minutes).")
        add.add_argument("--reconcile-every", type=_hours, default=defaults.reconcile_every, metavar="HOURS",
                         help="Between full runs, check every user's anchor for deleted or moved-out users "
                              "every HOURS (default 1; 0: every run).")
        add.add_argument("--full-every", type=_hours, default=defaults.full_every, metavar="HOURS",
                         help="Read every entry (a full run) every HOURS (default 24; 0: every run is full).")
        add.add_argument("--disabled", action="store_true", help="Create it switched off.")
        add.add_argument("--password-sign-in", action="store_true",
                         help="Let the users it manages sign in with their directory password (needs LDAPS or "
                              "StartTLS).")

    def handle(self, *args, **opts):
        if opts["action"] == "add":
            self._add(opts)

    def _add(self, opts):
        password = ""
        if opts["bind_password_file"]:
            path = opts["bind_password_file"]
            try:
                raw = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"Cannot read the bind password file: {exc.strerror}") from None
            password = raw.rstrip("\r\n")
        ca_bundle = ""
        if opts["ca_file"]:
            try:
                ca_bundle = Path(opts["ca_file"]).read_text(encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"Cannot read the CA file: {exc.strerror}") from None
        tls = opts["tls"] or ("ldaps" if all(u.lower().startswith("ldaps://") for u in opts["url"]) else "none")
        data = DirectorySettings(
            urls=tuple(opts["url"]), base_dns=tuple(opts["base_dn"]), preset=opts["preset"],
            bind_dn=opts["bind_dn"], tls_mode=tls, ca_bundle=ca_bundle, user_filter=opts["user_filter"],
            group_filter=opts["group_filter"], page_size=opts["page_size"], interval=opts["interval"],
            reconcile_every=opts["reconcile_every"], full_every=opts["full_every"],
            password_sign_in=opts["password_sign_in"],
        )
        try:
            org = OrgIndex().lookup(opts["org"]) if opts["org"] else None
            directory = directory_create(actor=Actor.system("manage.py directory"), name=opts["name"], data=data,
                                         bind_password=password, org=org, enabled=not opts["disabled"])
        except IdentityError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        self.stdout.write(f"Created directory {directory.source.name} (source {directory.source.slug}).")
