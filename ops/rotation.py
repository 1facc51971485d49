"""Which backups to keep: the newest of each of the last N days and of each of the last M ISO weeks.

Pure: takes the backups' times, returns the ones to keep, so the rule is tested without files.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime


def backups_to_keep(times: Iterable[datetime], *, keep_daily: int, keep_weekly: int) -> set[datetime]:
    """The times to keep: per calendar day the newest, for the ``keep_daily`` newest days; per ISO week
    the newest, for the ``keep_weekly`` newest weeks. The newest backup is always kept."""
    ordered = sorted(set(times), reverse=True)
    keep: set[datetime] = set(ordered[:1])
    days: list = []
    weeks: list = []
    for moment in ordered:
        day = moment.date()
        week = moment.isocalendar()[:2]
        if day not in days:
            days.append(day)
            if len(days) <= keep_daily:
                keep.add(moment)
        if week not in weeks:
            weeks.append(week)
            if len(weeks) <= keep_weekly:
                keep.add(moment)
    return keep
