"""``manage.py backup_now``: write a backup now (same code as the daily Celery beat task)."""

from django.core.management.base import BaseCommand, CommandError

from ops.backup import BackupError, backup_create


class Command(BaseCommand):
    help = "Back up the identity database into IDM_BACKUP_DIR (checksum and manifest beside it), then rotate."

    def handle(self, *args, **options):
        try:
            record = backup_create(trigger="command")
        except BackupError as exc:
            raise CommandError(f"{exc.message} ({exc.code})") from exc
        self.stdout.write(f"Backup written: {record.path} ({record.size_bytes} bytes, sha256 {record.sha256})")
