"""The clinic's week: opening days from settings, a default that fits the time zone, and demo
data (embedded and the Supabase seed) only on opening days: never a Friday in Damascus."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from desk import week
from settings import Settings, SettingsError
from storage.demo_data import DEMO_OPEN_DAYS, DEMO_TIMEZONE, demo_appointments, demo_slots
from storage.factory import open_appointment_store
from testkit.local_supabase import Stack

SEED_SQL = Path(__file__).resolve().parent.parent / "sql" / "seed_demo.sql"
FRIDAY, SATURDAY, SUNDAY = 4, 5, 6


def test_the_default_week_follows_the_time_zone() -> None:
    assert Settings.from_env({}).clinic_open_days == week.SUNDAY_TO_THURSDAY  # Asia/Damascus
    assert Settings.from_env({"CLINIC_TIMEZONE": "Asia/Riyadh"}).clinic_open_days == week.SUNDAY_TO_THURSDAY
    assert Settings.from_env({"CLINIC_TIMEZONE": "Europe/Berlin"}).clinic_open_days == week.MONDAY_TO_FRIDAY
    assert Settings.from_env({"CLINIC_TIMEZONE": "Asia/Dubai"}).clinic_open_days == week.MONDAY_TO_FRIDAY
    assert week.default_open_days(DEMO_TIMEZONE) == DEMO_OPEN_DAYS


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("sun-thu", {6, 0, 1, 2, 3}),
        ("Monday-Friday", {0, 1, 2, 3, 4}),
        ("sat, mon-wed", {5, 0, 1, 2}),
        ("fri-mon", {4, 5, 6, 0}),
        ("thu", {3}),
    ],
)
def test_open_days_are_read_from_settings(text: str, days: set[int]) -> None:
    assert Settings.from_env({"CLINIC_OPEN_DAYS": text}).clinic_open_days == frozenset(days)
    assert week.parse_open_days(week.describe(frozenset(days))) == frozenset(days)


@pytest.mark.parametrize("text", ["weekdays", "mon-funday", "1-5", ",", "sunnyday"])
def test_bad_open_days_are_refused_with_the_setting_named(text: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"CLINIC_OPEN_DAYS": text})
    assert "CLINIC_OPEN_DAYS" in " ".join(refused.value.problems)


def test_demo_data_is_only_on_opening_days() -> None:
    tz = ZoneInfo(DEMO_TIMEZONE)
    for offset in range(7):  # whatever day of the week the demo is loaded on
        now = dt.datetime(2026, 3, 1, 6, 0, tzinfo=dt.UTC) + dt.timedelta(days=offset)
        slots = demo_slots(now, tz)
        appointments = demo_appointments(now, tz, slots)
        days = {s.starts_at.astimezone(tz).weekday() for s in slots}
        assert days == DEMO_OPEN_DAYS and FRIDAY not in days and SATURDAY not in days
        assert all(a.slot.starts_at.astimezone(tz).weekday() in DEMO_OPEN_DAYS for a in appointments)
        berlin = ZoneInfo("Europe/Berlin")
        weekday_slots = demo_slots(now, berlin, week.MONDAY_TO_FRIDAY)
        assert {s.starts_at.astimezone(berlin).weekday() for s in weekday_slots} == week.MONDAY_TO_FRIDAY


@pytest.mark.asyncio
async def test_the_embedded_store_loads_the_configured_week(tmp_path: Path) -> None:
    settings = Settings.from_env({"DATA_DIR": str(tmp_path), "CLINIC_OPEN_DAYS": "sat-sun"})
    store = await open_appointment_store(settings)
    try:
        now = dt.datetime.now(dt.UTC)
        slots = await store.list_open_slots(now, now + dt.timedelta(days=14), limit=100)
        tz = ZoneInfo(settings.clinic_timezone)
        assert slots and {s.starts_at.astimezone(tz).weekday() for s in slots} <= {SATURDAY, SUNDAY}
    finally:
        await store.aclose()


def test_the_supabase_seed_puts_nothing_on_a_friday(clean_db: Stack) -> None:
    clean_db.psql(SEED_SQL.read_text())
    days = clean_db.psql(
        "select distinct extract(isodow from starts_at at time zone 'Asia/Damascus')::int from slots order by 1"
    )
    assert {int(d) for d in days.split()} <= {7, 1, 2, 3, 4}
    on_friday = clean_db.psql(
        "select count(*) from appointments a join slots s on s.id = a.slot_id "
        "where extract(isodow from s.starts_at at time zone 'Asia/Damascus') = 5"
    )
    assert on_friday.strip() == "0"
