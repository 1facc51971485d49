"""Benchmark of the bulk upload on PostgreSQL (not a test; prints figures for docs/bulk-upload.md).

    .venv/bin/python bench/bulk_upload.py [--rows 100000] [--password-rows 1000] [--workers 2] [--db NAME]

1. Creates (and finally drops) the database ``--db`` (default ``idm_bench_upload``; the name must contain
   "bench") on postgres://postgres@127.0.0.1:5432, runs migrate.
2. Generates a file of ``--rows`` users without passwords; times validate + preview (``create_upload``)
   and the apply (``apply_upload``, what the Celery task runs), and reports peak RSS.
3. Uploads ``--password-rows`` users with passwords; starts ``--workers`` Celery worker processes on
   Redis db 10 and times the parallel hashing, then the apply.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = "postgres://postgres@127.0.0.1:5432"
DB = "idm_bench_upload"  # own database: other benches use idm_bench concurrently
REDIS = "redis://127.0.0.1:6379/10"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def psql(sql: str) -> None:
    subprocess.run(["psql", f"{PG}/postgres", "-q", "-c", sql], check=True)


def make_file(rows: int, *, passwords: bool, prefix: str) -> bytes:
    out = io.StringIO()
    out.write(
        "username,email,first_name,last_name,password,org,roles,notes\n"
        if passwords
        else "username,email,first_name,last_name,org,roles,notes\n"
    )
    orgs = ["Sales", "Engineering", "Engineering/Platform", "Support"]
    for i in range(rows):
        pw = f"Qz7-Lamp-{'.'.join(str(i))}," if passwords else ""  # no character three times in a row
        org = orgs[i % len(orgs)]
        org = "Default Organization/" + org if org.startswith("Engineering") else org
        out.write(f"{prefix}{i:06d},{prefix}{i:06d}@example.com,First{i},Last{i},{pw}{org},,note {i}\n")
    return out.getvalue().encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--password-rows", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--db", default=DB, help='database name (must contain "bench"; it is dropped)')
    args = parser.parse_args()
    if "bench" not in args.db:
        parser.error('--db must contain "bench": the database is dropped and re-created')
    db = args.db

    var = tempfile.mkdtemp(prefix="idm-bench-")
    os.environ.update(
        DATABASE_URL=f"{PG}/{db}",
        IDM_VAR_DIR=var,
        REDIS_URL=REDIS,
        DJANGO_SETTINGS_MODULE="idm.settings",
        IDM_LOG_LEVEL="WARNING",
    )
    os.environ.pop("IDM_CELERY_EAGER", None)
    sys.path.insert(0, str(ROOT))
    psql(f"DROP DATABASE IF EXISTS {db}")
    psql(f"CREATE DATABASE {db}")
    workers: list[subprocess.Popen] = []
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.contrib.auth.models import User
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from accounts.bulk_upload.apply import apply_upload, create_upload
        from accounts.bulk_upload.models import BulkUpload
        from accounts.bulk_upload.tasks import dispatch_hashing
        from accounts.identity.orgs import org_create
        from accounts.identity.service import apply_identity_change
        from accounts.identity.types import Actor, IdentityChange, Mode
        from accounts.models import Organization

        system = Actor.system("bench")
        root = Organization.objects.get(parent__isnull=True)
        for name in ("Sales", "Engineering", "Support"):
            org = org_create(actor=system, name=name, parent=root)
            if name == "Engineering":
                org_create(actor=system, name="Platform", parent=org)
        admin = apply_identity_change(
            actor=system,
            change=IdentityChange(
                username="benchadmin",
                password="Quartz-Lamp-52",  # noqa: S106
                org_id=root.pk,
                roles=frozenset({"customer-cloud-admin"}),
                mode=Mode.CREATE,
            ),
        ).user
        print(f"database: PostgreSQL ({db}); hasher: {settings.PASSWORD_HASHERS[0].rsplit('.', 1)[1]}")

        def run(data: bytes, name: str, *, hash_with_workers: bool) -> None:
            t0 = time.perf_counter()
            upload, passwords = create_upload(
                io.BytesIO(data),
                file_name=name,
                size=len(data),
                operation="upsert",
                default_org=root,
                user=User.objects.get(pk=admin.pk),
            )
            t1 = time.perf_counter()
            counts = upload.preview["counts"]
            print(
                f"{name}: {len(data) / 1048576:.1f} MB, {upload.rows_total} rows; validate + preview "
                f"{t1 - t0:.1f} s ({counts}); peak RSS {rss_mb():.0f} MB"
            )
            if passwords and hash_with_workers:
                t2 = time.perf_counter()
                dispatch_hashing(upload, passwords)
                while True:
                    upload.refresh_from_db()
                    if upload.hash_done >= upload.hash_total:
                        break
                    time.sleep(0.2)
                t3 = time.perf_counter()
                print(
                    f"  hashing {upload.hash_total} passwords on {args.workers} workers: {t3 - t2:.1f} s "
                    f"({upload.hash_total / (t3 - t2):.1f} passwords/s)"
                )
            upload.status, upload.apply_mode = BulkUpload.Status.QUEUED, BulkUpload.ApplyMode.NO_ERRORS
            upload.save(update_fields=["status", "apply_mode"])
            t4 = time.perf_counter()
            upload = apply_upload(upload)
            t5 = time.perf_counter()
            print(
                f"  apply {t5 - t4:.1f} s ({upload.rows_total / (t5 - t4):.0f} rows/s): created "
                f"{upload.created_count}, updated {upload.updated_count}, unchanged {upload.unchanged_count}, "
                f"errors {upload.error_count}; peak RSS {rss_mb():.0f} MB"
            )

        if args.rows:
            big = make_file(args.rows, passwords=False, prefix="u")
            run(big, f"{args.rows}-rows.csv", hash_with_workers=False)
            t0 = time.perf_counter()
            run(big, f"{args.rows}-rows-again.csv", hash_with_workers=False)
            print(f"  (re-upload of the same file: idempotent, {time.perf_counter() - t0:.1f} s end to end)")
            del big

        if args.password_rows:
            import redis

            redis.Redis.from_url(REDIS).flushdb()
            env = {**os.environ}
            for n in range(args.workers):
                workers.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "celery",
                            "-A",
                            "idm",
                            "worker",
                            "--pool",
                            "solo",
                            "-c",
                            "1",
                            "--hostname",
                            f"bench{n}@localhost",
                            "--loglevel",
                            "WARNING",
                            "--without-gossip",
                            "--without-mingle",
                            "--without-heartbeat",
                        ],
                        cwd=ROOT,
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            time.sleep(4)
            run(
                make_file(args.password_rows, passwords=True, prefix="p"),
                f"{args.password_rows}-passwords.csv",
                hash_with_workers=True,
            )
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        from django.db import connections

        connections.close_all()
        if not args.keep:
            psql(f"DROP DATABASE IF EXISTS {db}")


if __name__ == "__main__":
    main()
