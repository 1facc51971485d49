"""``manage.py sync_directory NAME [--dry-run] [--full] [--force]``: one sync run, the same code Celery beat and
the console run (``provisioning.ldap.sync``). Ends with one line of counts; exits 1 when the run
failed, 2 when it held deactivations (``--force`` applies them), 3 when a run is already going.
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from accounts.exceptions import IdentityError
from provisioning.ldap.sync import count_line, sync_directory
from provisioning.models import Directory, ProvisioningRun

EXIT_FAILED, EXIT_HELD, EXIT_ALREADY_RUNNING = 1, 2, 3


class Command(BaseCommand):
    help = "Sync one LDAP / Active Directory directory now (see docs/directory-sync.md)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="The directory's name or slug.")
        parser.add_argument("--dry-run", action="store_true", help="Journal what would change; write nothing.")
        parser.add_argument("--full", action="store_true",
                            help="Re-plan every entry, also those whose directory data did not change.")
        parser.add_argument("--force", action="store_true",
                            help="Apply deactivations even above the safety threshold ('apply anyway').")

    def handle(self, *args, **opts):
        name = opts["name"]
        directory = (Directory.objects.select_related("source")
                     .filter(Q(source__name__iexact=name) | Q(source__slug=name)).first())
        if directory is None:
            raise CommandError(f"No directory named {name!r}.")
        try:
            run = sync_directory(directory, dry_run=opts["dry_run"], force=opts["force"],
                                 full=opts["full"], started_by="manage.py sync_directory")
        except IdentityError as exc:
            self.stderr.write(f"{exc.code}: {exc.message}")
            sys.exit(EXIT_ALREADY_RUNNING if exc.code == "already_running" else EXIT_FAILED)
        if run.error:
            self.stderr.write(run.error)
        self.stdout.write(count_line(run.counts))
        if run.status == ProvisioningRun.Status.FAILED:
            sys.exit(EXIT_FAILED)
        if run.status == ProvisioningRun.Status.HELD:
            sys.exit(EXIT_HELD)
