"""Upload lifecycle shared by the console, the Celery tasks and ``manage.py import_users``:

``create_upload`` (parse + validate + store the file without passwords) -> ``hash_passwords``
(off the request path) -> ``apply_upload`` (the real write, with progress) -> result report.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable
from typing import BinaryIO

from django.contrib.auth import password_validation
from django.contrib.auth.hashers import check_password, make_password
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.bulk_upload import conf
from accounts.bulk_upload.models import BulkUpload, BulkUploadSecret
from accounts.bulk_upload.parser import ParsedUpload, Row, UploadError, parse_upload
from accounts.bulk_upload.validate import (
    RowOutcome,
    _error,
    add_service_error,
    build_changes,
    validate_upload,
)
from accounts.csv_export import LINE_END, csv_text
from accounts.identity.service import apply_identity_changes
from accounts.identity.types import Actor, Source
from accounts.models import Organization

logger = logging.getLogger(__name__)
RESULT_LABELS = {"created": "created", "updated": "updated", "unchanged": "unchanged"}


def upload_actor(upload: BulkUpload) -> Actor:
    """The actor of an upload's changes: the admin who confirmed it (whose rights were re-checked at
    confirm), else the uploader (the preview; ``import_users``); source BULK, job id = upload id."""
    user = upload.confirmed_by or upload.created_by
    if user is not None:
        return Actor.for_user(user, source=Source.BULK, job_id=upload.job_id)
    # manage.py import_users without --actor: system work, no scope limits.
    return Actor(label=upload.created_by_label or "import_users", type="system", source=Source.BULK,
                 job_id=upload.job_id, enforce_scope=False)


def create_upload(
    stream: BinaryIO, *, file_name: str, size: int | None, operation: str, default_org: Organization | None,
    user: User | None, label: str = "",
) -> tuple[BulkUpload, dict[int, tuple[str, str]]]:
    """Parse and validate a file; store the upload record, its preview and the password-free copy.

    Returns the upload and the passwords to hash (line -> (username, plaintext)); the caller hands
    them to the hashing tasks (console) or hashes them itself (command). They are never stored.
    """
    upload = BulkUpload.objects.create(
        created_by=user, created_by_label=(user.username if user else label or "import_users"),
        file_name=file_name[:255], file_size=size or 0, operation=operation, default_org=default_org,
    )
    parsed = parse_upload(stream, operation=operation, size=size, max_bytes=conf.max_bytes(),
                          max_rows=conf.max_rows())
    upload.delimiter = parsed.delimiter
    upload.columns = parsed.columns
    if parsed.fatal:
        upload.status = BulkUpload.Status.INVALID
        upload.message = parsed.errors[0].message
        upload.preview = {"counts": {}, "errors": [e.as_dict() for e in parsed.errors], "diffs": [], "status": {}}
        upload.save()
        return upload, {}
    preview = validate_upload(parsed, actor=upload_actor(upload), default_org_id=default_org.pk if default_org else None)
    upload.preview = preview.as_json()
    upload.rows_total = len(preview.outcomes)
    upload.status = BulkUpload.Status.PREVIEW
    upload.source_file.save(f"{upload.id}-source.csv", ContentFile(_source_csv(parsed).encode()), save=False)
    upload.hash_total = len(preview.passwords)
    upload.save()
    BulkUploadSecret.objects.bulk_create(
        [BulkUploadSecret(upload=upload, line=line) for line in sorted(preview.passwords)], batch_size=2000
    )
    return upload, preview.passwords


def _source_csv(parsed: ParsedUpload) -> str:
    """The stored copy: a ``line`` column, then the file's columns without ``password``."""
    out = io.StringIO()
    # CRLF line ends make the writer quote a cell holding a bare CR, which read_source would
    # otherwise split into two records (a 500 on the report, "failed unexpectedly" on apply).
    writer = csv.writer(out, lineterminator=LINE_END)
    columns = [c for c in parsed.columns if c != "password"]
    writer.writerow(["line", *columns, *(["password"] if "password" in parsed.columns else [])])
    for row in parsed.rows:
        # The password column stays, as a marker only: "1" if the row had one. Never the value.
        marker = ["1" if row.cells.get("password") else ""] if "password" in parsed.columns else []
        writer.writerow([row.line, *(row.cells.get(c, "") for c in columns), *marker])
    return out.getvalue()


def read_source(upload: BulkUpload) -> tuple[list[str], list[Row]]:
    """Columns and rows of the stored copy (``password`` cells are only "1" markers)."""
    with upload.source_file.open("rb") as fh:
        text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        reader = csv.reader(text)
        header = next(reader)
        columns = header[1:]
        rows = [Row(line=int(cells[0]), cells=dict(zip(columns, cells[1:], strict=True))) for cells in reader]
    return columns, rows


# --------------------------------------------------------------------------------------------
# Passwords: hashed off the request path


def hash_passwords(upload_id, items: list[tuple[int, str, str]]) -> None:
    """Hash one chunk of (line, username, plaintext) and store the hashes (never the plaintext).

    For an existing user, a password equal to the current one is marked "same" (re-uploads stay
    unchanged), and the password-history rule, which needs the user's old hashes, is checked here.
    """
    names = {username.lower() for _, username, _ in items}
    users = {u.username.lower(): u for u in User.objects.annotate(_lu=Lower("username")).filter(_lu__in=names)}
    secrets = {s.line: s for s in BulkUploadSecret.objects.filter(upload_id=upload_id,
                                                                   line__in=[i[0] for i in items])}
    for line, username, raw in items:
        secret = secrets.get(line)
        if secret is None:
            continue
        user = users.get(username.lower())
        if user is not None and check_password(raw, user.password):
            secret.state, secret.password_hash = BulkUploadSecret.State.SAME, ""
            continue
        if user is not None:
            try:
                password_validation.validate_password(raw, user)
            except ValidationError as exc:
                secret.state, secret.message = BulkUploadSecret.State.INVALID, " ".join(exc.messages)[:500]
                continue
        secret.state, secret.password_hash = BulkUploadSecret.State.HASHED, make_password(raw)
    BulkUploadSecret.objects.bulk_update(list(secrets.values()), ["state", "password_hash", "message"])
    BulkUpload.objects.filter(pk=upload_id).update(hash_done=F("hash_done") + len(items))


def password_chunks(passwords: dict[int, tuple[str, str]]) -> list[list[tuple[int, str, str]]]:
    items = [(line, username, raw) for line, (username, raw) in sorted(passwords.items())]
    size = conf.hash_chunk_size()
    return [items[i:i + size] for i in range(0, len(items), size)]


# --------------------------------------------------------------------------------------------
# Confirm: the confirming admin's rights, not the uploader's, decide what is applied


def recheck_upload(upload: BulkUpload, *, actor: Actor) -> list[UploadError]:
    """Rows that passed the preview but are refused when planned now as ``actor`` (a dry run).

    The preview was made with the uploader's rights; another admin (or the uploader, whose roles may
    have changed since) must not apply more than they may do themselves (issue 7 §5). Passwords are
    planned with a placeholder hash, as in the preview: a password row needs the right to set it.
    """
    columns, rows = read_source(upload)
    preview_status = upload.preview.get("status", {})
    valid_rows = [r for r in rows if preview_status.get(str(r.line)) != "error"]
    built = build_changes(valid_rows, operation=upload.operation, default_org_id=upload.default_org_id,
                          dry_run=True, actor=actor)
    dry = apply_identity_changes(changes=built.changes, actor=actor, dry_run=True)
    for res in dry.results:
        if res.status == "refused":
            add_service_error(built.outcomes[res.ref], res.error, columns)
    return sorted((e for o in built.outcomes.values() for e in o.errors), key=lambda e: e.line)


def confirm_upload(upload: BulkUpload, *, user: User, mode: str, request=None) -> list[UploadError]:
    """Queue the apply as ``user`` after re-checking every row with their rights.

    Returns the rows refused for ``user`` (nothing is queued then), else ``[]``: the upload is queued,
    ``confirmed_by`` records who confirmed, and a ``bulk_upload.confirmed`` audit event names both the
    confirming admin (actor) and the uploader (detail). The changes' audit events carry the
    confirming admin as actor and the upload id as job id.
    """
    from accounts.bulk_upload.tasks import bulk_apply_upload
    from accounts.identity.audit import record_event

    actor = Actor.for_user(user, source=Source.BULK, request=request, job_id=upload.job_id)
    refused = recheck_upload(upload, actor=actor)
    if refused:
        return refused
    with transaction.atomic():
        updated = BulkUpload.objects.filter(pk=upload.pk, status=BulkUpload.Status.PREVIEW).update(
            status=BulkUpload.Status.QUEUED, apply_mode=mode, started_at=timezone.now(), confirmed_by=user,
            confirmed_by_label=user.get_username()[:255])
        if updated:
            record_event(actor=actor, action="bulk_upload.confirmed", target_type="bulk_upload",
                         target_id=upload.pk, target_label=upload.file_name,
                         new={"uploaded_by": upload.created_by_label, "mode": mode, "rows": upload.rows_total},
                         message=f"Uploaded by {upload.created_by_label}, confirmed by {user.get_username()}.")
            transaction.on_commit(lambda: bulk_apply_upload.delay(str(upload.pk)))
    return []


# --------------------------------------------------------------------------------------------
# Apply


class _Progress:
    """Writes rows done to the upload row (at most every half second, and always at the end)."""

    def __init__(self, upload: BulkUpload, offset: int, total: int):
        self.upload, self.offset, self.total = upload, offset, total
        self.last = 0.0

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= 0.5 or self.offset + done >= self.total:
            self.last = now
            BulkUpload.objects.filter(pk=self.upload.pk).update(rows_done=self.offset + done)


def apply_upload(upload: BulkUpload, *, on_progress: Callable[[int], None] | None = None) -> BulkUpload:
    """Apply a validated upload through the identity service and write its result report.

    Rows that had errors in the preview are not applied. In "only if no errors" mode a dry run
    runs first and nothing is written if any row would now fail. The apply is one provisioning run
    (``run_id`` = the upload id) whose journal holds every row's changes and refusals
    (``accounts.bulk_upload.journal``).
    """
    upload.refresh_from_db()
    now = timezone.now()
    BulkUpload.objects.filter(pk=upload.pk).update(status=BulkUpload.Status.APPLYING, apply_started_at=now,
                                                   rows_done=0)
    columns, rows = read_source(upload)
    preview_status = upload.preview.get("status", {})
    preview_errors: dict[int, list[dict]] = {}
    for err in upload.preview.get("errors", []):
        preview_errors.setdefault(err["line"], []).append(err)
    valid_rows = [r for r in rows if preview_status.get(str(r.line)) != "error"]
    secrets = {s.line: s for s in upload.secrets.all()}
    actor = upload_actor(upload)
    built = build_changes(valid_rows, operation=upload.operation, default_org_id=upload.default_org_id,
                          password_hashes=secrets, dry_run=False, actor=actor)
    # Memory (issue 7 §6): the apply needs only the changes and outcomes; drop the per-user lookups.
    built.current, built.rows = {}, {}
    del valid_rows
    outcomes: dict[int, RowOutcome] = dict(built.outcomes)
    for line, errs in preview_errors.items():
        outcome = outcomes.setdefault(line, RowOutcome(line=line))
        for e in errs:
            _error(outcome, e["column"], e["code"], e["message"])

    # The apply is one provisioning run with a change journal (issue 8); provisioning is loaded here,
    # not at import time (the accounts/provisioning seam, docs/architecture.md).
    from accounts.bulk_upload.journal import UploadJournal

    journal = UploadJournal.start(upload, actor=actor, total=len(built.changes))
    try:
        if upload.apply_mode == BulkUpload.ApplyMode.NO_ERRORS:
            failing = [o for o in outcomes.values() if o.status == "error"]
            if not failing:
                dry = apply_identity_changes(changes=built.changes, actor=actor, dry_run=True)
                failing = [r for r in dry.results if r.status == "refused"]
                for res in failing:
                    add_service_error(outcomes[res.ref], res.error, columns)
                del dry
            if failing:
                message = (f"Nothing was applied: {len(failing)} row(s) have errors and you chose "
                           "\"apply only if no errors\".")
                journal.refused_rows(outcomes.values(), rows)
                journal.finish(error=message)
                return _finish(upload, outcomes, columns, rows, status=BulkUpload.Status.FAILED, message=message,
                               applied=False)

        journal.refused_rows(outcomes.values(), rows)  # rows the preview refused; the service's come below
        offset = len(rows) - len(built.changes)  # rows decided without the service count as done
        progress = on_progress or _Progress(upload, offset, len(rows))
        batch = max(100, min(conf_batch_size(), len(built.changes) // 20 or 100))

        def report(change, res) -> None:
            outcome = outcomes[res.ref]
            if res.status == "refused":
                add_service_error(outcome, res.error, columns)
            else:
                outcome.status = res.status
                outcome.diff = [(f, None, None) for f in res.changed_fields if f != "created"]

        journal.apply(changes=built.changes, batch_size=batch, on_progress=progress, on_result=report)
    except Exception as exc:
        journal.finish(error=f"The upload failed unexpectedly ({type(exc).__name__}); rows already applied "
                             "stay applied.")
        raise
    journal.finish()
    for outcome in outcomes.values():
        if outcome.status == "unchanged" or not outcome.status:
            outcome.status = "unchanged"
    return _finish(upload, outcomes, columns, rows, status=BulkUpload.Status.DONE, applied=True)


def conf_batch_size() -> int:
    from django.conf import settings

    return int(getattr(settings, "IDM_BULK_BATCH_SIZE", 2000))


def result_text(outcome: RowOutcome | None) -> str:
    """The report's result cell: created / updated: fields / unchanged / error: message."""
    if outcome is None:
        return ""
    if outcome.status == "error":
        return f"error: {outcome.message()}"
    if outcome.status in ("updated", "will update") and outcome.diff:
        return f"{outcome.status}: {', '.join(d[0] for d in outcome.diff)}"
    return RESULT_LABELS.get(outcome.status, outcome.status)


def _finish(upload: BulkUpload, outcomes: dict[int, RowOutcome], columns: list[str], rows: list[Row], *,
            status: str, message: str = "", applied: bool) -> BulkUpload:
    counts = {"created": 0, "updated": 0, "unchanged": 0, "error": 0}
    for outcome in outcomes.values():
        if applied or outcome.status == "error":
            counts[outcome.status if outcome.status in counts else "unchanged"] += 1
    report = report_csv(columns, rows, outcomes)
    upload.report.save(f"{upload.id}-report.csv", ContentFile(report.encode("utf-8")), save=False)
    with transaction.atomic():
        BulkUpload.objects.filter(pk=upload.pk).update(
            status=status, message=message, report=upload.report.name, finished_at=timezone.now(),
            rows_done=len(outcomes) if applied else 0, created_count=counts["created"],
            updated_count=counts["updated"], unchanged_count=counts["unchanged"], error_count=counts["error"],
        )
        upload.secrets.all().delete()  # hashes are not needed any more
    upload.refresh_from_db()
    return upload


def report_csv(columns: list[str], rows: list[Row], outcomes: dict[int, RowOutcome]) -> str:
    """Each input row (without passwords) plus its result; lines that could not be parsed included."""
    shown = [c for c in columns if c != "password"]
    by_line = {r.line: r for r in rows}

    def lines():
        for line in sorted(set(by_line) | set(outcomes)):
            row = by_line.get(line)
            cells = [row.cells.get(c, "") if row else "" for c in shown]
            yield [line, *cells, result_text(outcomes.get(line))]

    return csv_text(["line", *shown, "result"], lines())


def preview_report_csv(upload: BulkUpload) -> str:
    """The report before applying: each row with what the preview says will happen."""
    columns, rows = read_source(upload)
    outcomes: dict[int, RowOutcome] = {}
    for line, status in upload.preview.get("status", {}).items():
        outcomes[int(line)] = RowOutcome(line=int(line), status={"create": "will create",
                                                                  "update": "will update"}.get(status, status))
    for err in upload.preview.get("errors", []):
        _error(outcomes.setdefault(err["line"], RowOutcome(line=err["line"])), err["column"], err["code"],
               err["message"])
    for diff in upload.preview.get("diffs", []):
        outcomes[diff["line"]].diff = [tuple(c) for c in diff["changes"]]
        outcomes[diff["line"]].status = "will update"
    return report_csv(columns, rows, outcomes)


def preview_counts(upload: BulkUpload) -> dict[str, int]:
    return upload.preview.get("counts", {})

