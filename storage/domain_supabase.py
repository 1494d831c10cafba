"""The appointment desk in Supabase (PostgREST) through the async `supabase` client.

Reads go to tables and the `appointment_details` view; every change is one SQL function
called with `rpc(...)` (sql/migrations/0003_appointment_desk.sql), so each change is one
transaction in Postgres and double booking is stopped by the partial unique index, not by
a check-then-insert here.

Every id is parsed as a UUID before it goes near a query: a caller-supplied string such as
`eq.1,or=(id.gt.0)` could otherwise become PostgREST filter syntax and widen a query.
A malformed id raises `NotFound` without any request.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any, ClassVar

from postgrest import ReturnMethod

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
from storage.supabase_client import SupabaseBackend

logger = logging.getLogger("storage.domain.supabase")

MAX_SLOTS = 100
"""The most open slots one search returns (the SQL function caps at the same number)."""
MAX_APPOINTMENTS = 100
"""A customer with more scheduled appointments than this is not a phone-desk case."""
CUSTOMER_COLUMNS = "id,name,phone,zip_code,language"
APPOINTMENT_COLUMNS = "id,customer_id,status,reason,slot_id,starts_at,ends_at,provider"

NOT_FOUND_CODES = frozenset({"PT404", "P0002", "22P02", "23503"})
"""PT404 (what the functions raise: HTTP 404 through PostgREST), no_data_found, invalid_text_representation
(a bad uuid that got past the checks here), foreign_key_violation (a callback for a customer that does not exist)."""
SLOT_TAKEN_CODES = frozenset({"23505"})


class SupabaseAppointmentStore(SupabaseBackend, AppointmentStore):
    errors_by_code: ClassVar[dict[str, type[StoreError]]] = {
        **dict.fromkeys(NOT_FOUND_CODES, NotFound),
        **dict.fromkeys(SLOT_TAKEN_CODES, SlotTaken),
    }

    async def find_customer_by_phone(self, phone: str) -> Customer | None:
        if not isinstance(phone, str) or not E164.fullmatch(phone):
            return None
        query = self._client.table("customers").select(CUSTOMER_COLUMNS).eq("phone", phone).limit(1)
        rows = (await self._call("find customer", query.execute())).data
        return _customer(rows[0]) if rows else None

    async def list_appointments(self, customer_id: str, *, upcoming_only: bool = True) -> list[Appointment]:
        cid = canonical_uuid(customer_id, "customer")
        query = (
            self._client.table("appointment_details")
            .select(APPOINTMENT_COLUMNS)
            .eq("customer_id", cid)
            .eq("status", "scheduled")
        )
        if upcoming_only:
            query = query.gte("starts_at", _iso(dt.datetime.now(dt.UTC)))
        query = query.order("starts_at").order("id").limit(MAX_APPOINTMENTS)
        rows = (await self._call("list appointments", query.execute())).data
        return [_appointment(row) for row in rows]

    async def list_open_slots(self, start: dt.datetime, end: dt.datetime, *, limit: int = 10) -> list[Slot]:
        limit = max(0, min(int(limit), MAX_SLOTS))
        if limit == 0:
            return []
        params = {"p_from": _iso(start), "p_to": _iso(end), "p_limit": limit}
        rows = (await self._call("list open slots", self._client.rpc("open_slots", params).execute())).data
        return [_slot(row) for row in rows]

    async def book(self, customer_id: str, slot_id: str, *, reason: str | None = None) -> Appointment:
        params = {
            "p_customer_id": canonical_uuid(customer_id, "customer"),
            "p_slot_id": canonical_uuid(slot_id, "slot"),
            "p_reason": reason,
        }
        return await self._change("book", "book_appointment", params)

    async def reschedule(self, customer_id: str, appointment_id: str, new_slot_id: str) -> Appointment:
        params = {
            "p_customer_id": canonical_uuid(customer_id, "customer"),
            "p_appointment_id": canonical_uuid(appointment_id, "appointment"),
            "p_new_slot_id": canonical_uuid(new_slot_id, "slot"),
        }
        return await self._change("reschedule", "reschedule_appointment", params)

    async def cancel(self, customer_id: str, appointment_id: str) -> Appointment:
        params = {
            "p_customer_id": canonical_uuid(customer_id, "customer"),
            "p_appointment_id": canonical_uuid(appointment_id, "appointment"),
        }
        return await self._change("cancel", "cancel_appointment", params)

    async def _change(self, what: str, function: str, params: dict[str, Any]) -> Appointment:
        data = (await self._call(what, self._client.rpc(function, params).execute())).data
        row = data[0] if isinstance(data, list) and data else data
        if not isinstance(row, dict) or not row.get("id"):
            raise StoreError(f"{what}: unexpected answer from {function}: {type(data).__name__}")
        return _appointment(row)

    async def create_callback_request(
        self,
        *,
        customer_id: str | None,
        name: str | None,
        phone: str | None,
        reason: str,
        conversation_id: str | None,
    ) -> str:
        # The id is made here, so a retried insert is recognisably the same request.
        request_id = str(uuid.uuid4())
        row = {
            "id": request_id,
            "customer_id": canonical_uuid(customer_id, "customer") if customer_id is not None else None,
            "name": name,
            "phone": phone,
            "reason": reason,
            "conversation_id": conversation_id,
        }
        query = self._client.table("callback_requests").insert(row, returning=ReturnMethod.minimal)
        await self._call("create callback request", query.execute())
        return request_id

    async def begin_verification_attempt(
        self, phone: str, *, source: str | None, conversation_id: str | None, limits: VerificationLimits
    ) -> VerificationClaim:
        check_verification_claim(phone, source)
        params = {
            "p_phone": phone,
            "p_source": source,
            "p_conversation_id": conversation_id,
            "p_window_seconds": limits.window_seconds,
            "p_phone_limit": limits.phone_limit,
            "p_source_limit": limits.source_limit,
        }
        call = self._client.rpc("begin_verification_attempt", params).execute()
        data = (await self._call("begin verification attempt", call)).data
        row = data[0] if isinstance(data, list) and data else data
        if not isinstance(row, dict) or row.get("status") not in ("locked", "claimed"):
            raise StoreError(f"begin verification attempt: unexpected answer: {type(data).__name__}")
        customer = None
        if row.get("customer_id"):
            customer = _customer({**row, "id": row["customer_id"]})
        return VerificationClaim(
            status=row["status"],
            failures=int(row["failures"]),
            retry_after=float(row["retry_after_seconds"]),
            attempt_id=str(row["attempt_id"]) if row.get("attempt_id") else None,
            customer=customer,
        )

    async def mark_verification_succeeded(self, attempt_id: str) -> None:
        params = {"p_attempt_id": canonical_uuid(attempt_id, "verification attempt")}
        call = self._client.rpc("mark_verification_succeeded", params).execute()
        await self._call("mark verification succeeded", call)


def _iso(moment: dt.datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: pass a timezone-aware time (clinic hours are local)")
    return moment.astimezone(dt.UTC).isoformat()


def _timestamp(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value).astimezone(dt.UTC)


def _customer(row: dict[str, Any]) -> Customer:
    return Customer(
        id=str(row["id"]), name=row["name"], phone=row["phone"], zip_code=row["zip_code"], language=row["language"]
    )


def _slot(row: dict[str, Any]) -> Slot:
    return Slot(
        id=str(row["id"]),
        starts_at=_timestamp(row["starts_at"]),
        ends_at=_timestamp(row["ends_at"]),
        provider=row.get("provider"),
    )


def _appointment(row: dict[str, Any]) -> Appointment:
    slot = Slot(
        id=str(row["slot_id"]),
        starts_at=_timestamp(row["starts_at"]),
        ends_at=_timestamp(row["ends_at"]),
        provider=row.get("provider"),
    )
    return Appointment(
        id=str(row["id"]), customer_id=str(row["customer_id"]), slot=slot, status=row["status"], reason=row["reason"]
    )
