"""The appointment desk in the embedded SQLite file: the default when no Supabase is set.

It mirrors the Supabase store rule for rule (storage/sqlite_domain_schema.sql mirrors
sql/migrations/0003_appointment_desk.sql): the same partial unique index makes double
booking impossible, and each change runs in one `BEGIN IMMEDIATE` transaction, which takes
the file's write lock up front, so job processes sharing the file (LiveKit runs every job
in its own process) cannot interleave a check and a write.

Inside one process the store shares one connection between coroutines; a lock keeps one
coroutine's statements out of another's open transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from storage.domain import (
    E164,
    Appointment,
    AppointmentStore,
    Customer,
    NotFound,
    Slot,
    SlotTaken,
    VerificationClaim,
    VerificationLimits,
    canonical_uuid,
    check_verification_claim,
)
from storage.records import StoreError
from storage.sqlite_records import open_sqlite

SCHEMA = Path(__file__).with_name("sqlite_domain_schema.sql")
MAX_SLOTS = 100
MAX_APPOINTMENTS = 100
APPOINTMENT_COLUMNS = "id, customer_id, status, reason, slot_id, starts_at, ends_at, provider"
SLOT_TAKEN_MESSAGE = "UNIQUE constraint failed: appointments.slot_id"


Clock = Callable[[], dt.datetime]


class SQLiteAppointmentStore(AppointmentStore):
    def __init__(self, db: aiosqlite.Connection, *, clock: Clock | None = None) -> None:
        self._db = db
        self._lock = asyncio.Lock()
        self._clock = clock or _now
        """The time verification attempts are counted in (Postgres uses its own `now()`)."""

    @classmethod
    async def open(cls, path: Path, *, timeout: float = 5.0, clock: Clock | None = None) -> SQLiteAppointmentStore:
        """Open (creating if needed) the file; `timeout` is how long to wait for another writer."""
        try:
            return cls(await open_sqlite(path, SCHEMA, timeout=timeout), clock=clock)
        except sqlite3.Error as e:
            raise StoreError(f"open {path}: {e}") from e

    # ------------------------------------------------------------------ plumbing

    @contextlib.asynccontextmanager
    async def _write(self, what: str) -> AsyncIterator[None]:
        """One write transaction; constraint failures become `SlotTaken`/`NotFound`, and any
        failure (or cancellation) rolls everything back."""
        async with self._lock:
            try:
                await self._db.execute("begin immediate")
            except sqlite3.Error as e:
                raise StoreError(f"{what}: {e}") from e
            try:
                yield
                await self._db.commit()
            except BaseException as e:
                with contextlib.suppress(sqlite3.Error):
                    await self._db.rollback()
                if isinstance(e, sqlite3.IntegrityError):
                    if SLOT_TAKEN_MESSAGE in str(e):
                        raise SlotTaken(f"{what}: the slot is already booked") from e
                    if "FOREIGN KEY" in str(e):
                        raise NotFound(f"{what}: {e}") from e
                if isinstance(e, sqlite3.Error):
                    raise StoreError(f"{what}: {e}") from e
                raise

    async def _rows(self, sql: str, params: Sequence[Any]) -> list[aiosqlite.Row]:
        async with self._db.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def _read(self, what: str, sql: str, params: Sequence[Any]) -> list[aiosqlite.Row]:
        async with self._lock:
            try:
                return await self._rows(sql, params)
            except sqlite3.Error as e:
                raise StoreError(f"{what}: {e}") from e

    async def _appointment(self, customer_id: str, appointment_id: str) -> Appointment:
        rows = await self._rows(
            f"select {APPOINTMENT_COLUMNS} from appointment_details where id = ? and customer_id = ?",
            [appointment_id, customer_id],
        )
        if not rows:
            raise NotFound(f"appointment {appointment_id} not found")
        return _appointment(rows[0])

    async def _require(self, sql: str, params: Sequence[Any], message: str) -> None:
        if not await self._rows(sql, params):
            raise NotFound(message)

    # ------------------------------------------------------------------ reads

    async def find_customer_by_phone(self, phone: str) -> Customer | None:
        if not isinstance(phone, str) or not E164.fullmatch(phone):
            return None
        rows = await self._read(
            "find customer", "select id, name, phone, zip_code, language from customers where phone = ?", [phone]
        )
        return Customer(**dict(rows[0])) if rows else None

    async def list_appointments(self, customer_id: str, *, upcoming_only: bool = True) -> list[Appointment]:
        cid = canonical_uuid(customer_id, "customer")
        sql = f"select {APPOINTMENT_COLUMNS} from appointment_details where customer_id = ? and status = 'scheduled'"
        params: list[Any] = [cid]
        if upcoming_only:
            sql += " and starts_at >= ?"
            params.append(_text(_now()))
        sql += " order by starts_at, id limit ?"
        rows = await self._read("list appointments", sql, [*params, MAX_APPOINTMENTS])
        return [_appointment(row) for row in rows]

    async def list_open_slots(self, start: dt.datetime, end: dt.datetime, *, limit: int = 10) -> list[Slot]:
        limit = max(0, min(int(limit), MAX_SLOTS))
        if limit == 0:
            return []
        rows = await self._read(
            "list open slots",
            "select id, starts_at, ends_at, provider from slots s where starts_at >= ? and starts_at < ? "
            "and not exists (select 1 from appointments a where a.slot_id = s.id and a.status = 'scheduled') "
            "order by starts_at, id limit ?",
            [_text(start), _text(end), limit],
        )
        return [_slot(row) for row in rows]

    # ------------------------------------------------------------------ changes

    async def book(self, customer_id: str, slot_id: str, *, reason: str | None = None) -> Appointment:
        cid, sid = canonical_uuid(customer_id, "customer"), canonical_uuid(slot_id, "slot")
        appointment_id = str(uuid.uuid4())
        now = _text(_now())
        async with self._write("book"):
            await self._require("select 1 from customers where id = ?", [cid], f"customer {cid} not found")
            await self._require("select 1 from slots where id = ?", [sid], f"slot {sid} not found")
            await self._db.execute(
                "insert into appointments (id, customer_id, slot_id, status, reason, created_at, updated_at) "
                "values (?, ?, ?, 'scheduled', ?, ?, ?)",
                [appointment_id, cid, sid, reason, now, now],
            )
            booked = await self._appointment(cid, appointment_id)
        return booked

    async def reschedule(self, customer_id: str, appointment_id: str, new_slot_id: str) -> Appointment:
        cid, aid = canonical_uuid(customer_id, "customer"), canonical_uuid(appointment_id, "appointment")
        sid = canonical_uuid(new_slot_id, "slot")
        async with self._write("reschedule"):
            await self._require(
                "select 1 from appointments where id = ? and customer_id = ? and status = 'scheduled'",
                [aid, cid],
                f"appointment {aid} not found",
            )
            await self._require("select 1 from slots where id = ?", [sid], f"slot {sid} not found")
            # One statement frees the old slot and takes the new one; a taken slot fails
            # the unique index and the transaction rolls back whole.
            await self._db.execute(
                "update appointments set slot_id = ?, updated_at = ? where id = ? and customer_id = ?",
                [sid, _text(_now()), aid, cid],
            )
            moved = await self._appointment(cid, aid)
        return moved

    async def cancel(self, customer_id: str, appointment_id: str) -> Appointment:
        cid, aid = canonical_uuid(customer_id, "customer"), canonical_uuid(appointment_id, "appointment")
        async with self._write("cancel"):
            cursor = await self._db.execute(
                "update appointments set status = 'cancelled', updated_at = ? "
                "where id = ? and customer_id = ? and status = 'scheduled'",
                [_text(_now()), aid, cid],
            )
            if cursor.rowcount != 1:
                raise NotFound(f"appointment {aid} not found")
            cancelled = await self._appointment(cid, aid)
        return cancelled

    async def create_callback_request(
        self,
        *,
        customer_id: str | None,
        name: str | None,
        phone: str | None,
        reason: str,
        conversation_id: str | None,
    ) -> str:
        cid = canonical_uuid(customer_id, "customer") if customer_id is not None else None
        request_id = str(uuid.uuid4())
        async with self._write("create callback request"):
            await self._db.execute(
                "insert into callback_requests (id, customer_id, name, phone, reason, conversation_id, created_at) "
                "values (?, ?, ?, ?, ?, ?, ?)",
                [request_id, cid, name, phone, reason, conversation_id, _text(_now())],
            )
        return request_id

    # ------------------------------------------------------------------ verification limits

    async def begin_verification_attempt(
        self, phone: str, *, source: str | None, conversation_id: str | None, limits: VerificationLimits
    ) -> VerificationClaim:
        """As the Postgres function: `BEGIN IMMEDIATE` takes the file's write lock before the
        count, so claims from every process sharing the file are serialised."""
        check_verification_claim(phone, source)
        window = dt.timedelta(seconds=limits.window_seconds)
        async with self._write("begin verification attempt"):
            now = self._clock()  # once the write lock is held: attempts are stored in lock order
            window_start = _text(now - window)
            last_success = await self._rows(
                "select max(attempted_at) as at from verification_attempts where phone = ? and succeeded = 1", [phone]
            )
            since = max(window_start, last_success[0]["at"] or "")
            phone_failures = "from verification_attempts where phone = ? and succeeded = 0 and attempted_at > ?"
            count = await self._count(phone_failures, [phone, since])
            if count >= limits.phone_limit:
                return await self._locked(phone_failures, [phone, since], count, limits.phone_limit, window, now)
            if source is not None:
                source_failures = "from verification_attempts where source = ? and succeeded = 0 and attempted_at > ?"
                source_count = await self._count(source_failures, [source, window_start])
                if source_count >= limits.source_limit:
                    params = [source, window_start]
                    return await self._locked(source_failures, params, source_count, limits.source_limit, window, now)
            attempt_id = str(uuid.uuid4())
            await self._db.execute(
                "insert into verification_attempts (id, phone, source, conversation_id, succeeded, attempted_at) "
                "values (?, ?, ?, ?, 0, ?)",
                [attempt_id, phone, source, conversation_id, _text(now)],
            )
            await self._db.execute(
                "delete from verification_attempts where (phone = ? or source = ?) and attempted_at < ?",
                [phone, source, _text(now - max(window, dt.timedelta(days=1)))],
            )
            oldest = await self._rows(f"select min(attempted_at) as at {phone_failures}", [phone, since])
            customers = await self._rows(
                "select id, name, phone, zip_code, language from customers where phone = ?", [phone]
            )
        return VerificationClaim(
            status="claimed",
            failures=count + 1,
            retry_after=_retry_after(oldest[0]["at"], window, now),
            attempt_id=attempt_id,
            customer=Customer(**dict(customers[0])) if customers else None,
        )

    async def _count(self, failures: str, params: Sequence[Any]) -> int:
        return int((await self._rows(f"select count(*) as n {failures}", params))[0]["n"])

    async def _locked(
        self, failures: str, params: Sequence[Any], count: int, limit: int, window: dt.timedelta, now: dt.datetime
    ) -> VerificationClaim:
        """Locked until enough failures leave the window to allow one more attempt."""
        freeing = await self._rows(
            f"select attempted_at as at {failures} order by attempted_at limit 1 offset ?", [*params, count - limit]
        )
        return VerificationClaim(
            status="locked", failures=count, retry_after=_retry_after(freeing[0]["at"], window, now)
        )

    async def mark_verification_succeeded(self, attempt_id: str) -> None:
        aid = canonical_uuid(attempt_id, "verification attempt")
        async with self._write("mark verification succeeded"):
            cursor = await self._db.execute("update verification_attempts set succeeded = 1 where id = ?", [aid])
            if cursor.rowcount != 1:
                raise NotFound(f"verification attempt {aid} not found")

    # ------------------------------------------------------------------ loading

    async def load(
        self,
        *,
        customers: Sequence[Customer] = (),
        slots: Sequence[Slot] = (),
        appointments: Sequence[Appointment] = (),
        only_if_empty: bool = False,
    ) -> bool:
        """Insert rows as given (ids included) in one transaction; returns whether it did.

        With `only_if_empty`, nothing is written if the store has any customer. The check
        runs inside the write transaction, so two processes opening a new file load once.
        Appointments take their slot from `appointment.slot.id`.
        """
        now = _text(_now())
        async with self._write("load"):
            if only_if_empty and await self._rows("select 1 from customers limit 1", []):
                return False
            await self._db.executemany(
                "insert into customers (id, name, phone, zip_code, language, created_at) values (?, ?, ?, ?, ?, ?)",
                [[canonical_uuid(c.id, "customer"), c.name, c.phone, c.zip_code, c.language, now] for c in customers],
            )
            await self._db.executemany(
                "insert into slots (id, starts_at, ends_at, provider, created_at) values (?, ?, ?, ?, ?)",
                [[canonical_uuid(s.id, "slot"), _text(s.starts_at), _text(s.ends_at), s.provider, now] for s in slots],
            )
            await self._db.executemany(
                "insert into appointments (id, customer_id, slot_id, status, reason, created_at, updated_at) "
                "values (?, ?, ?, ?, ?, ?, ?)",
                [
                    [
                        canonical_uuid(a.id, "appointment"),
                        canonical_uuid(a.customer_id, "customer"),
                        canonical_uuid(a.slot.id, "slot"),
                        a.status,
                        a.reason,
                        now,
                        now,
                    ]
                    for a in appointments
                ],
            )
        return True

    async def aclose(self) -> None:
        await self._db.close()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _retry_after(oldest: str, window: dt.timedelta, now: dt.datetime) -> float:
    return max((_timestamp(oldest) + window - now).total_seconds(), 1.0)


def _text(moment: dt.datetime) -> str:
    """One fixed-width UTC format, so that comparing the text compares the instants."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: pass a timezone-aware time (clinic hours are local)")
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _timestamp(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value).astimezone(dt.UTC)


def _slot(row: aiosqlite.Row) -> Slot:
    return Slot(
        id=row["id"],
        starts_at=_timestamp(row["starts_at"]),
        ends_at=_timestamp(row["ends_at"]),
        provider=row["provider"],
    )


def _appointment(row: aiosqlite.Row) -> Appointment:
    slot = Slot(
        id=row["slot_id"],
        starts_at=_timestamp(row["starts_at"]),
        ends_at=_timestamp(row["ends_at"]),
        provider=row["provider"],
    )
    return Appointment(
        id=row["id"], customer_id=row["customer_id"], slot=slot, status=row["status"], reason=row["reason"]
    )
