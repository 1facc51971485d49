"""Issue 7 §4: timing refusals are named (``expired`` / ``not_yet_valid``) with the clock difference."""

from __future__ import annotations

import calendar
import datetime as dt
import re
import time

import pytest

from sso.validation import ResponseFacts, lifetime_problem
from tests.sso.idp import shift_times
from tests.sso.test_acs import failure


def _facts(*, issue_instant="", not_on_or_after=(), not_before=()) -> ResponseFacts:
    return ResponseFacts(response_id="r", in_response_to="", issuer="i", assertion_id="a", claimed_name_id="n",
                         issue_instant=issue_instant, not_on_or_after=tuple(not_on_or_after),
                         not_before=tuple(not_before))


NOW = calendar.timegm((2026, 11, 29, 12, 0, 0))


def _at(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW + seconds))


# --- pure: lifetime_problem -------------------------------------------------------------------

def test_fresh_response_has_no_timing_problem():
    facts = _facts(issue_instant=_at(-5), not_on_or_after=(_at(300), _at(290)), not_before=(_at(-5),))
    assert lifetime_problem(facts, now=NOW, skew_seconds=60) is None


def test_expired_names_the_earliest_expiry_and_the_difference():
    facts = _facts(issue_instant=_at(-700), not_on_or_after=(_at(-400), _at(-100)))
    problem = lifetime_problem(facts, now=NOW, skew_seconds=60)
    assert problem.code == "expired"
    assert problem.extra["clock_difference_seconds"] == 400
    assert problem.extra["not_on_or_after"] == _at(-400) and problem.extra["idm_time"] == _at(0)
    assert "400 s later" in problem.detail and "allowed clock skew 60 s" in problem.detail


def test_expiry_within_the_skew_is_fine_and_one_second_past_is_not():
    assert lifetime_problem(_facts(not_on_or_after=(_at(-60),)), now=NOW, skew_seconds=60) is None
    assert lifetime_problem(_facts(not_on_or_after=(_at(-61),)), now=NOW, skew_seconds=60).code == "expired"


def test_issue_instant_older_than_a_day_is_expired():
    problem = lifetime_problem(_facts(issue_instant=_at(-2 * 86400), not_on_or_after=(_at(300),)), now=NOW,
                               skew_seconds=60)
    assert problem.code == "expired" and problem.extra["clock_difference_seconds"] == 2 * 86400
    assert problem.extra["issue_instant"] == _at(-2 * 86400)
    assert lifetime_problem(_facts(issue_instant=_at(-86400 - 60)), now=NOW, skew_seconds=60) is None
    assert lifetime_problem(_facts(issue_instant=_at(-86400 - 61)), now=NOW, skew_seconds=60).code == "expired"


def test_not_yet_valid_has_a_negative_difference():
    problem = lifetime_problem(_facts(not_before=(_at(600),), not_on_or_after=(_at(900),)), now=NOW, skew_seconds=60)
    assert problem.code == "not_yet_valid" and problem.extra["clock_difference_seconds"] == -600
    assert "600 s earlier" in problem.detail
    assert lifetime_problem(_facts(not_before=(_at(60),)), now=NOW, skew_seconds=60) is None
    assert lifetime_problem(_facts(not_before=(_at(61),)), now=NOW, skew_seconds=60).code == "not_yet_valid"
    far = lifetime_problem(_facts(issue_instant=_at(2 * 86400)), now=NOW, skew_seconds=60)
    assert far.code == "not_yet_valid" and far.extra["clock_difference_seconds"] == -2 * 86400


def test_unreadable_times_are_ignored():
    assert lifetime_problem(_facts(issue_instant="yesterday", not_on_or_after=("soon",)), now=NOW,
                            skew_seconds=60) is None


# --- through the ACS -----------------------------------------------------------------------

def test_expired_response_is_reported_as_expired_with_clock_difference(acs, sso_user, provider):
    resp = acs.login(tamper=lambda x: shift_times(x, -dt.timedelta(minutes=10)))
    event = failure(resp, "expired")
    assert "has expired" in resp.content.decode()
    # The IdP's lifetime is 5 minutes: shifted back 10, the assertion expired about 5 minutes ago.
    assert 290 <= event.new_value["clock_difference_seconds"] <= 330
    assert event.new_value["clock_skew_seconds"] == provider.clock_skew_seconds
    assert re.search(r"\d+ s later \(allowed clock skew \d+ s\)", event.message)


def test_response_issued_days_ago_is_expired_not_a_generic_refusal(acs, sso_user):
    def old_response(xml: str) -> str:  # only the Response's IssueInstant (the first one) is two days old
        stamp = re.search(r'IssueInstant="([^"]+)"', xml).group(1)
        old = dt.datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S") - dt.timedelta(days=2)
        return xml.replace(f'IssueInstant="{stamp}"', f'IssueInstant="{old:%Y-%m-%dT%H:%M:%SZ}"', 1)

    event = failure(acs.login(tamper=old_response), "expired")
    assert event.new_value["clock_difference_seconds"] >= 2 * 86400 - 5
    assert "issue_instant" in event.new_value


@pytest.mark.parametrize("minutes", [10, 3 * 24 * 60])
def test_not_yet_valid_reports_how_far_ahead_the_idp_is(acs, sso_user, minutes):
    event = failure(acs.login(tamper=lambda x: shift_times(x, dt.timedelta(minutes=minutes))), "not_yet_valid")
    assert event.new_value["clock_difference_seconds"] <= -(minutes * 60 - 10)


def test_bad_signature_on_an_expired_response_stays_bad_signature(acs, sso_user, attacker_idp):
    failure(acs.login(idp=attacker_idp, tamper=lambda x: shift_times(x, -dt.timedelta(minutes=10))),
            "bad_signature")


def test_each_refusal_carries_exact_times_and_skew():
    expired = lifetime_problem(_facts(not_on_or_after=(_at(-400),)), now=NOW, skew_seconds=60)
    assert expired.extra == {"clock_difference_seconds": 400, "not_on_or_after": _at(-400), "idm_time": _at(0),
                             "clock_skew_seconds": 60}
    assert expired.detail == (f"the assertion expired at {_at(-400)}; idm's clock reads {_at(0)}, 400 s later "
                              "(allowed clock skew 60 s)")
    old = lifetime_problem(_facts(issue_instant=_at(-100_000)), now=NOW, skew_seconds=60)
    assert old.extra == {"clock_difference_seconds": 100_000, "issue_instant": _at(-100_000), "idm_time": _at(0),
                         "clock_skew_seconds": 60}
    assert old.detail == (f"the response was issued at {_at(-100_000)}; idm's clock reads {_at(0)}, 100000 s later "
                          "(at most 86400 s accepted)")
    early = lifetime_problem(_facts(not_before=(_at(600),)), now=NOW, skew_seconds=60)
    assert early.extra == {"clock_difference_seconds": -600, "not_before": _at(600), "idm_time": _at(0),
                           "clock_skew_seconds": 60}
    assert early.detail == (f"the response is valid from {_at(600)}; idm's clock reads {_at(0)}, 600 s earlier "
                            "(allowed clock skew 60 s)")


def test_issue_instant_in_the_future_bounds():
    assert lifetime_problem(_facts(issue_instant=_at(86400 + 60)), now=NOW, skew_seconds=60) is None
    assert lifetime_problem(_facts(issue_instant=_at(86400 + 61)), now=NOW, skew_seconds=60).code == "not_yet_valid"
    assert lifetime_problem(_facts(issue_instant=_at(86400 + 30)), now=NOW, skew_seconds=60) is None
