"""Indexes for the users list's column sorts (issue 12: every case of the list <= 200 ms p95 at 100k).

The list pages over user ids in the chosen order; with an index on the sort column PostgreSQL walks
it and stops after one page instead of sorting every user. "Created" sorts by ``date_joined`` (the
user's creation time, as SCIM's ``meta.created``): on ``auth_user`` itself, unlike the profile's
``created_at`` whose outer join made PostgreSQL sort all 100k users (~100 ms). Each index ends with
the id, the list's tie-breaker, so the page of ids is read from the index alone (an index-only
scan: a deep page of the default username order no longer visits 75k table rows). Plain B-tree
indexes, the same SQL on PostgreSQL and SQLite.
"""

from django.db import migrations

SORT_INDEXES = [
    ("idm_user_username_id", "username, id"),
    ("idm_user_date_joined_id", "date_joined, id"),
    ("idm_user_last_name_id", "last_name, id"),
    ("idm_user_email_id", "email, id"),
]


def forwards(apps, schema_editor):
    for name, columns in SORT_INDEXES:
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON auth_user ({columns})")


def backwards(apps, schema_editor):
    for name, _ in SORT_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0009_conb_trigram_search")]
    operations = [migrations.RunPython(forwards, backwards)]
