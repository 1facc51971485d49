"""``co`` and ``ew`` on userName, emails and name use the users' trigram search index (issue 9).

Migration accounts/0011 replaced the per-column trigram indexes with one over the joined search
text, so a ``LIKE '%x%'`` on one column would scan every user. The Users filter adds the joined
text's match (which the index serves) to the column's own condition (which decides), so results
stay exactly the column's.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.db import connection

from provisioning.scim.filters import compile_filter
from provisioning.scim.models import ScimResource
from provisioning.scim.resources import USER_FILTERS

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(scim):
    for username, given, family, email in [("ann.lee", "Ann", "Lee", "ann@corp.example"),
                                           ("bob.sel", "Bob", "Seller", "bob@shop.example"),
                                           ("sel.ann", "Selma", "Annan", "selma@corp.example")]:
        response = scim.post("/Users", {"userName": username, "name": {"givenName": given, "familyName": family},
                                        "emails": [{"value": email, "primary": True}]})
        assert response.status_code == 201, response.doc


def found(scim, text: str) -> list[str]:
    response = scim.get(f"/Users?filter={quote(text)}")
    assert response.status_code == 200, response.doc
    return sorted(r["userName"] for r in response.doc["Resources"])


@pytest.mark.parametrize(("text", "expected"), [
    ('userName co "SEL"', ["bob.sel", "sel.ann"]),
    ('userName ew "ANN"', ["sel.ann"]),
    ('name.givenName co "ann"', ["ann.lee"]),
    ('name.familyName ew "AN"', ["sel.ann"]),
    ('emails.value co "@corp"', ["ann.lee", "sel.ann"]),
    ('emails ew ".example"', ["ann.lee", "bob.sel", "sel.ann"]),
    # The joined text holds "Ann Lee" across two fields; the one field does not.
    ('name.givenName co "Ann Lee"', []),
    ('userName ew "lee ann"', []),
    ('not (userName co "sel")', ["ann.lee"]),
    ('userName co "%"', []),  # LIKE wildcards are literal
])
def test_text_filters_select_what_the_field_holds(scim, people, text, expected):
    assert found(scim, text) == expected


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL trigram index (migration 0011)")
@pytest.mark.parametrize("text", ['userName co "ser42"', 'name.givenName co "ser42"', 'name.familyName ew "ser42"',
                                  'emails.value ew "ser42"'])
def test_text_filters_use_the_trigram_index(people, text):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        if cursor.fetchone() is None:
            pytest.skip("pg_trgm is not installed")
        # A test table is small enough to scan: only the index is left to the planner (as at 100k users).
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        plan = ScimResource.objects.filter(compile_filter(text, USER_FILTERS).q).explain()
    assert "idm_user_search_trgm" in plan, plan
