"""sso.replay: shared, single-use request ids and assertion ids that are not culled early."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from sso import replay


def test_request_id_is_single_use(db):
    replay.remember_request(provider_id=1, request_id="id-1", next_path="/x/", browser_hash="h")
    assert replay.consume_request(provider_id=1, request_id="id-1") == {"next": "/x/", "browser": "h"}
    assert replay.consume_request(provider_id=1, request_id="id-1") is None
    assert replay.consume_request(provider_id=2, request_id="id-1") is None


def test_assertion_ids_survive_more_entries_than_the_default_cull_limit(db):
    later = timezone.now() + dt.timedelta(minutes=5)
    for i in range(400):  # the default DatabaseCache would cull a third of its rows beyond 300
        assert replay.remember_assertion(provider_id=1, assertion_id=f"a{i}", not_on_or_after=later, skew_seconds=60)
    assert not replay.remember_assertion(provider_id=1, assertion_id="a0", not_on_or_after=later, skew_seconds=60)
    assert replay.remember_assertion(provider_id=2, assertion_id="a0", not_on_or_after=later, skew_seconds=60)
