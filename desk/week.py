"""The clinic's week: which days it opens. Plain Python.

Days use `datetime.date.weekday()` numbers (Monday 0 ... Sunday 6). `CLINIC_OPEN_DAYS`
names them ("sun-thu", "mon,tue,thu", "sunday-thursday"); without it the default fits the
clinic's time zone: Sunday to Thursday where the weekend is Friday and Saturday (Syria,
Saudi Arabia, Jordan, Iraq, Egypt, the Gulf states but the UAE, ...), else Monday to Friday.
"""

from __future__ import annotations

NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SUNDAY_TO_THURSDAY = frozenset({6, 0, 1, 2, 3})
MONDAY_TO_FRIDAY = frozenset({0, 1, 2, 3, 4})
FRIDAY_SATURDAY_WEEKEND = frozenset(
    {
        "Asia/Damascus",
        "Asia/Riyadh",
        "Asia/Amman",
        "Asia/Baghdad",
        "Asia/Kuwait",
        "Asia/Qatar",
        "Asia/Bahrain",
        "Asia/Muscat",
        "Asia/Aden",
        "Asia/Jerusalem",
        "Africa/Cairo",
        "Africa/Algiers",
        "Africa/Tripoli",
        "Africa/Khartoum",
    }
)


def default_open_days(timezone: str) -> frozenset[int]:
    return SUNDAY_TO_THURSDAY if timezone in FRIDAY_SATURDAY_WEEKEND else MONDAY_TO_FRIDAY


def parse_open_days(text: str) -> frozenset[int]:
    """ "sun-thu" -> {6, 0, 1, 2, 3}; ranges wrap around the week. `ValueError` if not days."""
    days: set[int] = set()
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        first, _, last = (p.strip() for p in part.partition("-"))
        start, end = _day(first), _day(last or first)
        days.update((start + k) % 7 for k in range((end - start) % 7 + 1))
    if not days:
        raise ValueError("no days named")
    return frozenset(days)


def describe(days: frozenset[int]) -> str:
    """ "sun,mon,tue,wed,thu": the settings form, in week order from Monday."""
    return ",".join(NAMES[d] for d in sorted(days))


def _day(name: str) -> int:
    short = name[:3]
    if short not in NAMES or (len(name) > 3 and not _full_name(short).startswith(name)):
        raise ValueError(f"not a day: {name!r}")
    return NAMES.index(short)


def _full_name(short: str) -> str:
    return {
        "mon": "monday",
        "tue": "tuesday",
        "wed": "wednesday",
        "thu": "thursday",
        "fri": "friday",
        "sat": "saturday",
        "sun": "sunday",
    }[short]
