"""``manage.py import_users FILE``: the console's bulk upload, synchronously, for scripts.

Same code as the console (parse -> validate -> apply through the identity service); prints the
preview and every error with its line number, and exits 1 when any row has an error.
Passwords are hashed here, in a thread pool (PBKDF2 releases the GIL), not through Celery.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from accounts.bulk_upload.apply import apply_upload, create_upload, hash_passwords, password_chunks
from accounts.bulk_upload.models import BulkUpload
from accounts.bulk_upload.parser import OPERATIONS
from accounts.exceptions import IdentityError
from accounts.identity.orgs import org_lookup


class Command(BaseCommand):
    help = "Create or update users from a CSV/TXT file (see docs/bulk-upload.md)."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--operation", default="upsert", choices=sorted(OPERATIONS))
        parser.add_argument("--org", help="Organization (name, path or external reference) for new users "
                                          "whose row names none.")
        parser.add_argument("--dry-run", action="store_true", help="Validate and preview only; write nothing.")
        parser.add_argument("--actor", help="Username of the admin to act as (scope and audit); default: "
                                            "system, without scope limits.")
        parser.add_argument("--apply-valid", action="store_true",
                            help="Apply the valid rows even when some rows have errors (default: apply nothing).")
        parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="Password hashing threads.")

    def handle(self, *args, **opts):
        path = opts["file"]
        if not os.path.isfile(path):
            raise CommandError(f"{path}: no such file")
        actor_user = None
        if opts["actor"]:
            actor_user = User.objects.filter(username__iexact=opts["actor"]).first()
            if actor_user is None:
                raise CommandError(f"No user named {opts['actor']!r}.")
        org = None
        if opts["org"]:
            try:
                org = org_lookup(opts["org"])
            except IdentityError as exc:
                raise CommandError(exc.message) from exc
        with open(path, "rb") as fh:
            upload, passwords = create_upload(
                fh, file_name=os.path.basename(path), size=os.path.getsize(path), operation=opts["operation"],
                default_org=org, user=actor_user, label="manage.py import_users",
            )
        if upload.status == BulkUpload.Status.INVALID:
            for err in upload.preview["errors"]:
                self.stderr.write(self._format(err))
            raise CommandError("The file was refused; nothing was changed.", returncode=1)
        counts = upload.preview["counts"]
        self.stdout.write(f"{path}: {upload.delimiter!r}-separated, {upload.rows_total} rows: "
                          f"{counts.get('create', 0)} to create, {counts.get('update', 0)} to update, "
                          f"{counts.get('unchanged', 0)} unchanged, {counts.get('error', 0)} with errors")
        for diff in upload.preview["diffs"]:
            changes = "; ".join(f"{f}: {old!r} -> {new!r}" for f, old, new in diff["changes"])
            self.stdout.write(f"line {diff['line']}: update {diff['username']}: {changes}")
        for err in upload.preview["errors"]:
            self.stderr.write(self._format(err))
        errors = counts.get("error", 0)
        if opts["dry_run"] or (errors and not opts["apply_valid"]):
            upload.secrets.all().delete()
            BulkUpload.objects.filter(pk=upload.pk).update(status=BulkUpload.Status.CANCELLED)
            if errors:
                raise CommandError(f"{errors} row(s) have errors; nothing was changed.", returncode=1)
            self.stdout.write("Dry run: nothing was changed.")
            return
        if passwords:
            chunks = password_chunks(passwords)
            with ThreadPoolExecutor(max_workers=max(1, opts["threads"])) as pool:
                list(pool.map(lambda chunk: hash_passwords(upload.pk, chunk), chunks))
            del passwords, chunks
        upload.apply_mode = BulkUpload.ApplyMode.ALL_VALID if opts["apply_valid"] else BulkUpload.ApplyMode.NO_ERRORS
        upload.status = BulkUpload.Status.QUEUED
        upload.save(update_fields=["apply_mode", "status"])
        upload = apply_upload(upload)
        self.stdout.write(f"Applied (upload {upload.pk}): {upload.created_count} created, {upload.updated_count} "
                          f"updated, {upload.unchanged_count} unchanged, {upload.error_count} errors. "
                          f"Report: {upload.report.path if hasattr(upload.report, 'path') else upload.report.name}")
        if upload.error_count:
            raise CommandError(f"{upload.error_count} row(s) failed; see the report.", returncode=1)

    @staticmethod
    def _format(err: dict) -> str:
        where = f"line {err['line']}" if err["line"] else "file"
        column = f", column {err['column']}" if err.get("column") else ""
        return f"{where}{column}: {err['message']} [{err['code']}]"
