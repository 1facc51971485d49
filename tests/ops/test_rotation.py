"""The backup rotation rule (pure): newest per day for N days, newest per ISO week for M weeks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ops.rotation import backups_to_keep


def at(day: int, hour: int = 3) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)  # 2026-03-02 is a Monday (ISO week 10)


def test_empty_list_keeps_nothing():
    assert backups_to_keep([], keep_daily=7, keep_weekly=4) == set()


def test_newest_is_kept_even_with_zero_retention():
    assert backups_to_keep([at(2), at(3)], keep_daily=0, keep_weekly=0) == {at(3)}


def test_newest_of_each_day_for_n_days():
    times = [at(2, 1), at(2, 5), at(3, 1), at(3, 9), at(4, 2)]
    assert backups_to_keep(times, keep_daily=2, keep_weekly=0) == {at(4, 2), at(3, 9)}


def test_newest_of_each_iso_week_for_m_weeks():
    times = [at(2) + timedelta(days=d) for d in range(21)]  # 2 Mar .. 22 Mar: weeks 10, 11, 12
    kept = backups_to_keep(times, keep_daily=1, keep_weekly=2)
    assert kept == {at(22), at(15)}  # Sunday 22nd is the newest of week 12 and the newest day; Sun 15th week 11
    kept = backups_to_keep(times, keep_daily=1, keep_weekly=3)
    assert kept == {at(22), at(15), at(8)}


def test_daily_and_weekly_combine_without_duplicates():
    times = [at(2) + timedelta(days=d) for d in range(14)]  # 2..15 Mar
    kept = backups_to_keep(times, keep_daily=3, keep_weekly=2)
    assert kept == {at(15), at(14), at(13), at(8)}


def test_duplicate_times_count_once():
    assert backups_to_keep([at(3), at(3), at(2)], keep_daily=1, keep_weekly=0) == {at(3)}


def test_several_backups_on_one_day_count_as_one_day():
    # Two backups today (a manual one and the scheduled one): yesterday's is still one of the two days kept.
    assert backups_to_keep([at(4, 9), at(4, 2), at(3, 1)], keep_daily=2, keep_weekly=0) == {at(4, 9), at(3, 1)}
