"""One date format everywhere: the ``when`` filter, in the viewer's time zone (``idm_tz`` cookie)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.templatetags.console import when

INSTANT = datetime(2026, 3, 1, 13, 5, 9, tzinfo=UTC)


def test_when_formats_in_the_active_time_zone():
    with timezone.override(ZoneInfo("Europe/Berlin")):
        assert when(INSTANT) == '<time datetime="2026-03-01T13:05:09+00:00">2026-03-01 14:05 CET</time>'
        assert when(INSTANT, "date") == '<time datetime="2026-03-01T13:05:09+00:00">2026-03-01</time>'
    with timezone.override(ZoneInfo("UTC")):
        assert when(INSTANT).endswith(">2026-03-01 13:05 UTC</time>")


def test_when_accepts_dates_strings_and_nothing():
    assert when(date(2026, 1, 2)) == '<time datetime="2026-01-02">2026-01-02</time>'
    with timezone.override(ZoneInfo("UTC")):
        assert when("2027-05-06T07:08:09Z", "date").endswith(">2027-05-06</time>")
    assert when(None) == "—" and when("") == "—"
    assert when("not a date") == "not a date"


@pytest.mark.django_db
@pytest.mark.parametrize("cookie, zone", [("America/New_York", "E[SD]T"), ("Nowhere/Bogus", "UTC"),
                                          ("../../etc/passwd", "UTC"), ("", "UTC")])
def test_pages_use_the_browser_time_zone(client, directory, cookie, zone):
    client.force_login(directory.admin)
    if cookie:
        client.cookies["idm_tz"] = cookie
    html = client.get(reverse("accounts:user_detail", args=[directory.eng_user.pk])).content.decode()
    assert re.search(rf" {zone}</time>", html)


def test_when_treats_naive_values_as_utc():
    with timezone.override(ZoneInfo("Europe/Berlin")):
        assert when("2026-03-01T13:05:00").endswith(">2026-03-01 14:05 CET</time>")
        assert when(datetime(2026, 3, 1, 13, 5)).endswith(">2026-03-01 14:05 CET</time>")
