"""One trigram GIN index for the users-list search instead of four (issue 7: bulk creation speed).

Migration 0009 gave username, email, first and last name a trigram GIN index each, so every user
insert maintained four GIN indexes: a large share of a 100k-user import's time (docs/benchmarks.md).
The users-list search (``accounts.selectors.UserSearchText``) now matches each word against the
four fields joined by a space, and this index covers exactly that expression; the result is the
same because a search word never holds a space. The expression below must stay the SQL that
``UserSearchText`` compiles to, or PostgreSQL stops using the index (tests/accounts/
test_finding_people.py checks the plan). Where pg_trgm is missing (0009 skipped its indexes) there
is nothing to replace; search works by sequential scan, as before.
"""

from django.db import migrations

SEARCH_INDEX = "idm_user_search_trgm"
SEARCH_EXPRESSION = (
    "UPPER((username::text || ' ' || email::text || ' ' || first_name::text || ' ' || last_name::text)::text)"
)
PER_FIELD_INDEXES = [
    ("idm_user_username_trgm", "username"),
    ("idm_user_email_trgm", "email"),
    ("idm_user_first_trgm", "first_name"),
    ("idm_user_last_trgm", "last_name"),
]


def _has_trgm(schema_editor) -> bool:
    with schema_editor.connection.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        return cur.fetchone() is not None


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql" or not _has_trgm(schema_editor):
        return
    schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {SEARCH_INDEX} ON auth_user USING gin "
                          f"({SEARCH_EXPRESSION} gin_trgm_ops)")
    for name, _ in PER_FIELD_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql" or not _has_trgm(schema_editor):
        return
    for name, column in PER_FIELD_INDEXES:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON auth_user USING gin (UPPER({column}::text) gin_trgm_ops)"
        )
    schema_editor.execute(f"DROP INDEX IF EXISTS {SEARCH_INDEX}")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0010_search12_sort_indexes")]
    operations = [migrations.RunPython(forwards, backwards)]
