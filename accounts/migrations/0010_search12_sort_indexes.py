"""Indexes for the users list's column sorts (issue 12: every case of the list <= 200 ms p95 at 100k).

The list pages over user ids in the chosen order; with an index on the sort column PostgreSQL walks
it and stops after one page instead of sorting every user. "Created" sorts by ``date_joined`` (the
user's creation time, as SCIM's ``meta.created``): on ``auth_user`` itself, unlike the profile's
``created_at`` whose outer join made PostgreSQL sort all 100k users (~100 ms). Plain B-tree
indexes, the same SQL on PostgreSQL and SQLite.
"""

from django.db import migrations

SORT_INDEXES = [
    ("idm_user_date_joined", "date_joined"),
    ("idm_user_last_name", "last_name"),
    ("idm_user_email", "email"),
]


def forwards(apps, schema_editor):
    for name, column in SORT_INDEXES:
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON auth_user ({column})")


def backwards(apps, schema_editor):
    for name, _ in SORT_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0009_conb_trigram_search")]
    operations = [migrations.RunPython(forwards, backwards)]
