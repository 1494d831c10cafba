"""Words for the desk in the call's language: prompt lines, and dates and times as spoken.

Plain Python over `prompts`: every word comes from `prompts/<lang>/`. Times are shown in
the clinic's time zone and spoken naturally ("Tuesday, March 4 at 10:30 AM", "الثلاثاء
4 مارس الساعة العاشرة والنصف صباحاً"), with "today" and "tomorrow" where they apply.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import prompts

LISTS = {"weekdays": 7, "months": 12, "hours": 12, "periods": 4}
"""Prompts that are lists, one entry per line: how many entries each must have."""


class Phrases:
    """Renders the desk's prompts in one language and time zone."""

    def __init__(self, language: str, timezone: str) -> None:
        self.language = language
        self.tz = ZoneInfo(timezone)
        self.timezone_name = timezone
        self._lists = {name: self._list(name, count) for name, count in LISTS.items()}

    def _list(self, name: str, count: int) -> list[str]:
        entries = [line.strip() for line in self.line(name).splitlines() if line.strip()]
        if len(entries) != count:
            raise prompts.PromptError(f"prompt {self.language}/{name} must have {count} lines, has {len(entries)}")
        return entries

    def line(self, key: str, **fields: object) -> str:
        return prompts.load(self.language, key, **fields)

    # -- dates and times ----------------------------------------------------------------

    def local(self, moment: dt.datetime) -> dt.datetime:
        return moment.astimezone(self.tz)

    def day(self, moment: dt.datetime, now: dt.datetime) -> str:
        """ "today", "tomorrow", or "Tuesday, March 4" in the clinic's time zone."""
        date = self.local(moment).date()
        today = self.local(now).date()
        if date == today:
            return self.line("today")
        if date == today + dt.timedelta(days=1):
            return self.line("tomorrow")
        return self.date(date)

    def date(self, date: dt.date) -> str:
        return self.line(
            "date_format",
            weekday=self._lists["weekdays"][date.weekday()],
            day=date.day,
            month=self._lists["months"][date.month - 1],
        )

    def time(self, moment: dt.datetime) -> str:
        local = self.local(moment)
        hour = self._lists["hours"][(local.hour + 11) % 12]
        period = self._lists["periods"][_period(local.hour)]
        if local.minute == 0:
            return self.line("time_exact", hour=hour, period=period)
        if local.minute == 15:
            return self.line("time_quarter", hour=hour, period=period)
        if local.minute == 30:
            return self.line("time_half", hour=hour, period=period)
        key = "time_minutes_few" if local.minute < 10 else "time_minutes"
        return self.line(key, hour=hour, minute=local.minute, period=period)

    def when(self, moment: dt.datetime, now: dt.datetime) -> str:
        """A slot's start, as said to the caller."""
        return self.line("slot_when", day=self.day(moment, now), time=self.time(moment))


def _period(hour: int) -> int:
    """0 morning, 1 noon, 2 afternoon, 3 evening (the `periods` list)."""
    if hour < 12:
        return 0
    if hour < 13:
        return 1
    if hour < 17:
        return 2
    return 3


def check(language: str, timezone: str = "UTC") -> None:
    """Fail with `PromptError` if a list prompt of `language` has the wrong number of lines."""
    Phrases(language, timezone)
