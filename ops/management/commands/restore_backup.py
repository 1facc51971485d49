"""``manage.py restore_backup FILE [--force]``: check a backup, then restore it into this database."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ops.backup import BackupError, backup_restore


class Command(BaseCommand):
    help = ("Restore a backup made by backup_now or the daily task. Checks its checksum, database vendor and "
            "migrations first; refuses a database holding data unless --force.")

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="the .pgdump or .sqlite3 file (its .json and .sha256 beside it)")
        parser.add_argument("--force", action="store_true", help="replace a database that already holds data")

    def handle(self, *args, file: Path, force: bool, **options):
        try:
            result = backup_restore(path=file, force=force)
        except BackupError as exc:
            raise CommandError(f"{exc.message} ({exc.code})") from exc
        self.stdout.write(f"Restored {result.path.name} (made {result.manifest.get('created_at')} by idm "
                          f"{result.manifest.get('app_version')}).")
        if result.pending_migrations:
            self.stdout.write(f"{len(result.pending_migrations)} newer migrations are not applied yet: "
                              "run `manage.py migrate` now.")
