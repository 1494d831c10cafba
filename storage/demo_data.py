"""Demo data for the embedded store, so `python agent.py console --text` works with no setup.

The same customers, slots and appointments as sql/seed_demo.sql (the Supabase seed); a
contract test checks that the two agree. Keep them in step when either changes.

Demo customers (verify with the phone and the ZIP code):

| name           | phone          | ZIP   | language | appointment (n-th weekday after today, local time) |
|----------------|----------------|-------|----------|-----------------------------------------------------|
| أحمد المصري    | +963991234567  | 11001 | ar       | 2nd weekday, 10:00, "فحص دوري"                       |
| Sarah Johnson  | +14155550100   | 94103 | en       | 3rd weekday, 14:30, "Annual check-up"               |
| ليلى حداد      | +963944556677  | 21100 | ar       | 5th weekday, 11:00, "متابعة نتائج التحاليل"           |
| Omar Khalil    | +14155550123   | 94110 | en       | none                                                |

Slots: one provider (Dr. Rana Khoury), on the clinic's opening days (`CLINIC_OPEN_DAYS`;
for the default Asia/Damascus, Sunday to Thursday: never a Friday), 09:00-17:00 in the
clinic's time zone, 30 minutes each, from today (future slots only) through the next 13 days.
"n-th weekday" is the n-th opening day. Everything is relative to the time the store is first loaded; a store that
already has customers is never touched again.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from storage.domain import Appointment, Customer, Slot
from storage.domain_sqlite import SQLiteAppointmentStore

logger = logging.getLogger("storage.demo_data")

DEMO_TIMEZONE = "Asia/Damascus"
DEMO_PROVIDER = "Dr. Rana Khoury"
DAYS = 14
"""Today and the next 13 days."""
DEMO_OPEN_DAYS = frozenset({6, 0, 1, 2, 3})
"""Sunday to Thursday (`date.weekday()` numbering): the week of the demo clinic's time zone,
as sql/seed_demo.sql lays it out."""
FIRST_SLOT = dt.time(9, 0)
SLOT_MINUTES = 30
SLOTS_PER_DAY = 16
"""09:00 to 17:00."""

DEMO_CUSTOMERS: tuple[Customer, ...] = (
    Customer("5eed0000-0000-4000-8000-000000000001", "أحمد المصري", "+963991234567", "11001", "ar"),
    Customer("5eed0000-0000-4000-8000-000000000002", "Sarah Johnson", "+14155550100", "94103", "en"),
    Customer("5eed0000-0000-4000-8000-000000000003", "ليلى حداد", "+963944556677", "21100", "ar"),
    Customer("5eed0000-0000-4000-8000-000000000004", "Omar Khalil", "+14155550123", "94110", "en"),
)


@dataclass(frozen=True)
class PlannedAppointment:
    id: str
    customer_id: str
    nth_weekday: int
    """1 is the first weekday after today."""
    local_time: dt.time
    reason: str


DEMO_APPOINTMENTS: tuple[PlannedAppointment, ...] = (
    PlannedAppointment("5eed0000-0000-4000-8000-0000000000a1", DEMO_CUSTOMERS[0].id, 2, dt.time(10, 0), "فحص دوري"),
    PlannedAppointment(
        "5eed0000-0000-4000-8000-0000000000a2", DEMO_CUSTOMERS[1].id, 3, dt.time(14, 30), "Annual check-up"
    ),
    PlannedAppointment(
        "5eed0000-0000-4000-8000-0000000000a3", DEMO_CUSTOMERS[2].id, 5, dt.time(11, 0), "متابعة نتائج التحاليل"
    ),
)


def demo_slots(now: dt.datetime, tz: ZoneInfo, open_days: frozenset[int] = DEMO_OPEN_DAYS) -> list[Slot]:
    """The bookable future slots of the demo clinic, soonest first (times in UTC)."""
    today = now.astimezone(tz).date()
    slots: list[Slot] = []
    for offset in range(DAYS):
        day = today + dt.timedelta(days=offset)
        if day.weekday() not in open_days:
            continue
        opening = dt.datetime.combine(day, FIRST_SLOT, tzinfo=tz)
        for k in range(SLOTS_PER_DAY):
            starts = opening + dt.timedelta(minutes=SLOT_MINUTES * k)
            if starts <= now:
                continue
            ends = starts + dt.timedelta(minutes=SLOT_MINUTES)
            slots.append(Slot(str(uuid.uuid4()), starts.astimezone(dt.UTC), ends.astimezone(dt.UTC), DEMO_PROVIDER))
    return slots


def demo_appointments(
    now: dt.datetime, tz: ZoneInfo, slots: list[Slot], open_days: frozenset[int] = DEMO_OPEN_DAYS
) -> list[Appointment]:
    """The planned appointments, each on its slot among `slots`."""
    today = now.astimezone(tz).date()
    weekdays = [day for day in (today + dt.timedelta(days=i) for i in range(1, DAYS)) if day.weekday() in open_days]
    by_start = {slot.starts_at: slot for slot in slots}
    appointments: list[Appointment] = []
    for plan in DEMO_APPOINTMENTS:
        if plan.nth_weekday > len(weekdays):  # a short week: fewer opening days in the demo's two weeks
            continue
        starts = dt.datetime.combine(weekdays[plan.nth_weekday - 1], plan.local_time, tzinfo=tz).astimezone(dt.UTC)
        slot = by_start[starts]
        appointments.append(Appointment(plan.id, plan.customer_id, slot, "scheduled", plan.reason))
    return appointments


async def load_demo_data(
    store: SQLiteAppointmentStore,
    *,
    timezone: str = DEMO_TIMEZONE,
    open_days: frozenset[int] = DEMO_OPEN_DAYS,
    now: dt.datetime | None = None,
) -> bool:
    """Fill an empty store with the demo; returns whether it did (a store with customers is left alone)."""
    tz = ZoneInfo(timezone)
    now = now or dt.datetime.now(dt.UTC)
    slots = demo_slots(now, tz, open_days)
    loaded = await store.load(
        customers=DEMO_CUSTOMERS,
        slots=slots,
        appointments=demo_appointments(now, tz, slots, open_days),
        only_if_empty=True,
    )
    if loaded:
        logger.info(
            "embedded store was empty: loaded %d demo customers and %d slots (%s)",
            len(DEMO_CUSTOMERS),
            len(slots),
            timezone,
        )
    return loaded
