"""A sync that fills the link table refreshes PostgreSQL's statistics as the table doubles
(``provisioning.ldap.sync.PlannerStatistics``): without them each batch's lookup of 1,000 anchors
scanned every link of the source."""

from __future__ import annotations

import pytest
from django.db import connection

from provisioning.ldap.sync import PlannerStatistics

pytestmark = pytest.mark.django_db(transaction=True)


def analyze_counts() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT relname, analyze_count FROM pg_stat_user_tables WHERE relname IN "
                       "('accounts_externalidentity', 'auth_user', 'accounts_userprofile', 'auth_user_groups')")
        return dict(cursor.fetchall())


def test_the_looked_up_tables_are_analyzed_each_time_the_links_double():
    if connection.vendor != "postgresql":
        pytest.skip("ANALYZE is PostgreSQL's; SQLite plans these lookups with the unique index anyway")
    before = analyze_counts()
    statistics = PlannerStatistics(linked_before=0)
    statistics.after_batch(created=999)
    assert analyze_counts() == before
    statistics.after_batch(created=1000)
    once = analyze_counts()
    assert set(once) == {"accounts_externalidentity", "auth_user", "accounts_userprofile", "auth_user_groups"}
    assert all(once[table] == before.get(table, 0) + 1 for table in once)
    statistics.after_batch(created=1999)
    assert analyze_counts() == once
    statistics.after_batch(created=2000)
    assert all(count == once[table] + 1 for table, count in analyze_counts().items())


def test_a_large_directory_already_linked_is_not_analyzed_for_a_few_new_users():
    if connection.vendor != "postgresql":
        pytest.skip("ANALYZE is PostgreSQL's")
    before = analyze_counts()
    statistics = PlannerStatistics(linked_before=100_000)
    statistics.after_batch(created=5000)
    assert analyze_counts() == before
