"""The request log row of a SCIM call outside any transaction (the server's case; on PostgreSQL the
row is written with ``synchronous_commit`` off in one round trip, views._log_request)."""

from __future__ import annotations

import pytest
from django.db import connection

from provisioning.scim.models import ScimRequest

pytestmark = pytest.mark.django_db(transaction=True)


def test_request_log_row_outside_a_transaction(scim, provider):
    source, _ = provider
    assert not connection.in_atomic_block
    ok = scim.get('/Users?filter=userName eq "nobody"', HTTP_X_REQUEST_ID="logreq1")
    bad = scim.get('/Users?filter=nickName eq "x"', HTTP_X_REQUEST_ID="logreq2")
    assert ok.status_code == 200 and bad.status_code == 400
    rows = list(ScimRequest.objects.filter(source=source).order_by("id")
                .values_list("method", "path", "status", "scim_type", "request_id"))
    assert rows == [("GET", "/scim/v2/Users?filter=userName%20eq%20%22nobody%22", 200, "", "logreq1"),
                    ("GET", "/scim/v2/Users?filter=nickName%20eq%20%22x%22", 400, "invalidFilter", "logreq2")]
    assert all(row.created_at is not None for row in ScimRequest.objects.all())
    if connection.vendor == "postgresql":  # the relaxed commit stayed with the log's own transaction
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == "on"
