"""Backups of the identity database and their restore.

A backup is three files in ``IDM_BACKUP_DIR`` (mode 0700; files 0600: a dump holds password hashes
and the SP private key):

* ``idm-<UTC time>.pgdump`` (``pg_dump`` custom format) or ``.sqlite3`` (SQLite's online backup API,
  consistent while the web server and workers write);
* ``<file>.sha256`` in ``sha256sum`` format;
* ``<file>.json``: app version, database vendor, time, size, checksum and the applied migrations.

Restore refuses a backup whose checksum does not match, that comes from the other database vendor, or
that holds migrations this code does not know (restore with the newer code), and refuses a database
that already holds users or organizations unless ``force`` is given.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.db import connection, connections
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from accounts.exceptions import IdentityError
from ops.app_settings import ops_settings
from ops.rotation import backups_to_keep

SUFFIX = {"postgresql": ".pgdump", "sqlite": ".sqlite3"}
STAMP = "%Y%m%dT%H%M%S%fZ"


class BackupError(IdentityError):
    """A backup or restore refused or failed; ``code`` says why, the message how to fix it."""


@dataclass(frozen=True)
class RestoreResult:
    """What a restore did: the file, its manifest, and migrations the code has beyond the backup."""

    path: Path
    manifest: dict
    pending_migrations: list[str]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def applied_migrations() -> list[str]:
    """``app.name`` of every migration applied to the database, sorted."""
    recorder = MigrationRecorder(connection)
    return sorted(f"{app}.{name}" for app, name in recorder.applied_migrations())


def known_migrations() -> set[str]:
    """``app.name`` of every migration this code ships."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return {f"{app}.{name}" for app, name in loader.disk_migrations}


def _pg_args_env() -> tuple[list[str], dict]:
    """Connection arguments for pg_dump/pg_restore; the password goes in the environment, never argv."""
    s = connection.settings_dict
    args = ["--host", str(s.get("HOST") or "127.0.0.1"), "--port", str(s.get("PORT") or 5432),
            "--username", str(s.get("USER") or "postgres"), "--dbname", str(s["NAME"])]
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    if s.get("PASSWORD"):
        env["PGPASSWORD"] = str(s["PASSWORD"])
    return args, env


def _run(command: list[str], env: dict, code: str) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        # stderr of pg_dump names tables and the server, never the password (it is in the environment).
        raise BackupError(code, f"{command[0]} failed ({result.returncode}): {result.stderr.strip()[-400:]}")


def _dump(target: Path) -> None:
    if connection.vendor == "postgresql":
        if not shutil.which("pg_dump"):
            raise BackupError("pg_dump_missing", "pg_dump is not installed: run scripts/setup.sh (postgresql-client).")
        args, env = _pg_args_env()
        _run(["pg_dump", "--format=custom", "--no-owner", "--no-privileges", "--file", str(target), *args],
             env, "pg_dump_failed")
    elif connection.vendor == "sqlite":
        source = sqlite3.connect(str(connection.settings_dict["NAME"]), timeout=30)
        dest = sqlite3.connect(str(target))
        try:
            source.backup(dest)  # the online backup API: a consistent copy while others write
        finally:
            dest.close()
            source.close()
    else:
        raise BackupError("unsupported_database", f"Backups support PostgreSQL and SQLite, not {connection.vendor}.")


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def backup_create(*, trigger: str = "schedule", now: datetime | None = None):
    """Write a backup with its checksum and manifest, record it, apply rotation; return the BackupRecord.

    A failure is recorded (the console and /readyz show it) and raised as ``BackupError``."""
    from ops.models import BackupRecord

    moment = now or datetime.now(UTC)
    folder = ops_settings.backup_dir
    vendor = connection.vendor
    target = folder / f"idm-{moment.strftime(STAMP)}{SUFFIX.get(vendor, '.bin')}"
    partial = target.with_name(target.name + ".partial")
    old_umask = os.umask(0o077)
    try:
        _private_dir(folder)
        _dump(partial)
        partial.rename(target)
        checksum = sha256_of(target)
        size = target.stat().st_size
        Path(f"{target}.sha256").write_text(f"{checksum}  {target.name}\n")
        manifest = {
            "format": 1, "file": target.name, "created_at": moment.isoformat(), "vendor": vendor,
            "app_version": _app_version(), "sha256": checksum, "size_bytes": size,
            "migrations": applied_migrations(),
        }
        Path(f"{target}.json").write_text(json.dumps(manifest, indent=2) + "\n")
    except Exception as exc:
        if partial.parent.is_dir():
            partial.unlink(missing_ok=True)
        error = exc if isinstance(exc, BackupError) else BackupError("backup_failed", f"{type(exc).__name__}: {exc}")
        record = BackupRecord.objects.create(ok=False, error=f"{error.code}: {error.message}"[:500],
                                             trigger=trigger, finished_at=timezone.now())
        _audit("backup.failed", {"code": error.code, "message": error.message[:300]}, record)
        raise error from exc
    finally:
        os.umask(old_umask)
    record = BackupRecord.objects.create(ok=True, path=str(target), size_bytes=size, sha256=checksum,
                                         trigger=trigger, finished_at=timezone.now())
    removed = rotate(folder)
    _audit("backup.created", {"file": target.name, "size_bytes": size, "sha256": checksum,
                              "rotated_out": len(removed)}, record)
    return record


def _app_version() -> str:
    import idm

    return getattr(idm, "__version__", "unknown")


def _audit(action: str, new: dict, record) -> None:
    from accounts.identity.audit import record_event
    from accounts.identity.types import Actor

    record_event(actor=Actor.system("backup"), action=action, target_type="backup", target_id=record.pk,
                 target_label=Path(record.path).name if record.path else "", new=new)


def list_backups(folder: Path | None = None) -> list[tuple[datetime, Path]]:
    """Backups in ``folder`` (those with a manifest), newest first."""
    folder = folder or ops_settings.backup_dir
    out = []
    for manifest in folder.glob("idm-*.json"):
        dump = manifest.with_suffix("")
        try:
            when = datetime.strptime(dump.stem.removeprefix("idm-"), STAMP).replace(tzinfo=UTC)
        except ValueError:
            continue
        if dump.exists():
            out.append((when, dump))
    return sorted(out, reverse=True)


def rotate(folder: Path) -> list[Path]:
    """Delete backups beyond the kept daily and weekly ones; return the removed dump files."""
    backups = list_backups(folder)
    keep = backups_to_keep([when for when, _ in backups], keep_daily=ops_settings.backup_keep_daily,
                           keep_weekly=ops_settings.backup_keep_weekly)
    removed = []
    for when, dump in backups:
        if when not in keep:
            for path in (dump, Path(f"{dump}.sha256"), Path(f"{dump}.json")):
                path.unlink(missing_ok=True)
            removed.append(dump)
    return removed


def read_manifest(path: Path) -> dict:
    manifest_path = Path(f"{path}.json")
    if not path.is_file():
        raise BackupError("backup_not_found", f"No backup file at {path}.")
    if not manifest_path.is_file():
        raise BackupError("manifest_missing", f"{manifest_path.name} is missing: it must sit beside the backup.")
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError as exc:
        raise BackupError("manifest_invalid", f"{manifest_path.name} is not valid JSON.") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("migrations"), list):
        raise BackupError("manifest_invalid", f"{manifest_path.name} has no migration list.")
    return manifest


def database_is_empty() -> bool:
    """No users and at most the one organization ``migrate`` seeds (roles and their seeding events are
    recreated by every ``migrate``, so they do not count as data)."""
    from django.apps import apps

    tables = set(connection.introspection.table_names())
    user_model, org_model = apps.get_model("auth.User"), apps.get_model("accounts.Organization")
    if user_model._meta.db_table in tables and user_model._base_manager.exists():
        return False
    return not (org_model._meta.db_table in tables and org_model._base_manager.count() > 1)


def backup_restore(*, path: Path, force: bool = False) -> RestoreResult:
    """Check and restore the backup at ``path`` into this database (see the module docstring)."""
    path = Path(path)
    manifest = read_manifest(path)
    checksum = sha256_of(path)
    sidecar = Path(f"{path}.sha256")
    expected = {manifest.get("sha256")}
    if sidecar.is_file():
        expected.add(sidecar.read_text().split()[0] if sidecar.read_text().split() else "")
    if expected != {checksum}:
        raise BackupError("checksum_mismatch", f"{path.name} does not match its recorded SHA-256: the file is "
                                               "damaged or was changed. Use another backup.")
    if manifest.get("vendor") != connection.vendor:
        raise BackupError("wrong_database", f"This is a {manifest.get('vendor')} backup; the configured database "
                                            f"is {connection.vendor}.")
    unknown = sorted(set(manifest["migrations"]) - known_migrations())
    if unknown:
        raise BackupError("unknown_migrations", "The backup was made by newer code (migrations "
                                                f"{', '.join(unknown[:5])} are unknown here): restore it with that version.")
    if not force and not database_is_empty():
        raise BackupError("database_not_empty", "The database already holds users or organizations. Restore into an empty database, or pass --force to replace it.")
    connections.close_all()
    if connection.vendor == "postgresql":
        args, env = _pg_args_env()
        _run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction",
              "--exit-on-error", *args, str(path)], env, "pg_restore_failed")
    else:
        source = sqlite3.connect(str(path))
        dest = sqlite3.connect(str(connection.settings_dict["NAME"]), timeout=30)
        try:
            source.backup(dest)
        finally:
            dest.close()
            source.close()
    connections.close_all()
    pending = sorted(known_migrations() - set(applied_migrations()))
    return RestoreResult(path=path, manifest=manifest, pending_migrations=pending)
