"""Case-insensitive unique usernames at the database level, search indexes, and the cache table.

``auth_user.username`` is unique case-sensitively; identity sources disagree on case, so idm treats
"Alice" and "alice" as one name. The unique index on lower(username) makes that a database rule
(works on SQLite and PostgreSQL). On PostgreSQL, prefix search (``istartswith`` compiles to
``UPPER(col) LIKE UPPER('x%')``) gets ``text_pattern_ops`` indexes so it stays fast at 100k users.
"""

from django.core.management import call_command
from django.db import migrations

PG_INDEXES = [
    ("idm_user_username_upper", "username"),
    ("idm_user_email_upper", "email"),
    ("idm_user_first_upper", "first_name"),
    ("idm_user_last_upper", "last_name"),
]


def forwards(apps, schema_editor):
    conn = schema_editor.connection
    schema_editor.execute("CREATE UNIQUE INDEX IF NOT EXISTS idm_user_username_lower ON auth_user (lower(username))")
    if conn.vendor == "postgresql":
        for name, column in PG_INDEXES:
            schema_editor.execute(
                f"CREATE INDEX IF NOT EXISTS {name} ON auth_user (UPPER({column}::text) text_pattern_ops)"
            )
    call_command("createcachetable", database=conn.alias, verbosity=0)


def backwards(apps, schema_editor):
    schema_editor.execute("DROP INDEX IF EXISTS idm_user_username_lower")
    if schema_editor.connection.vendor == "postgresql":
        for name, _ in PG_INDEXES:
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]
    operations = [migrations.RunPython(forwards, backwards)]
