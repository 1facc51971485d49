"""Substring search on users: pg_trgm GIN indexes on PostgreSQL (SQLite stays correct, slower).

The users list matches each typed word anywhere in username, email, first or last name
(``icontains`` compiles to ``UPPER(col::text) LIKE UPPER('%x%')``). A trigram GIN index on the same
expression lets PostgreSQL answer that without reading every row. Creating the extension needs a
privileged role; where it is not allowed the migration skips the indexes (search still works, by
sequential scan) instead of failing, and says so.
"""

from django.db import migrations

TRGM_INDEXES = [
    ("idm_user_username_trgm", "username"),
    ("idm_user_email_trgm", "email"),
    ("idm_user_first_trgm", "first_name"),
    ("idm_user_last_trgm", "last_name"),
]


def _has_trgm(schema_editor) -> bool:
    with schema_editor.connection.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        if cur.fetchone():
            return True
        try:
            # A savepoint, so a refused CREATE EXTENSION does not abort the migration's transaction.
            cur.execute("SAVEPOINT idm_trgm")
            cur.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            cur.execute("RELEASE SAVEPOINT idm_trgm")
            return True
        except Exception as exc:  # noqa: BLE001 - any refusal means "no trigram indexes"
            cur.execute("ROLLBACK TO SAVEPOINT idm_trgm")
            print(f"\n  pg_trgm not available ({exc.__class__.__name__}): user search works without trigram indexes")
            return False


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql" or not _has_trgm(schema_editor):
        return
    for name, column in TRGM_INDEXES:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON auth_user USING gin (UPPER({column}::text) gin_trgm_ops)"
        )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _ in TRGM_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0008_web_bulk_confirmed_by")]
    operations = [migrations.RunPython(forwards, backwards)]
