"""The appointment desk's data: customers, slots, appointments, callback requests.

Every read and change of a customer's data takes that customer's id and is filtered by
it inside the store, so an appointment id from another customer is simply not found.
Double booking is impossible by a database constraint (a partial unique index on the
slot of scheduled appointments); a lost race surfaces as `SlotTaken`.
"""

from __future__ import annotations

import abc
import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Literal

from storage.records import StoreError

APPOINTMENT_STATUSES = ("scheduled", "cancelled", "completed")


class NotFound(StoreError):
    """No such row for this customer (including: it belongs to someone else)."""


class SlotTaken(StoreError):
    """The slot was booked by someone else first."""


E164 = re.compile(r"\+[1-9][0-9]{6,14}")
"""What a stored phone looks like; anything else cannot match a customer."""


def canonical_uuid(value: object, what: str) -> str:
    """The canonical form of a UUID, or `NotFound`: nothing else may reach a query."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise NotFound(f"no such {what}: malformed id")


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    phone: str  # E.164
    zip_code: str
    language: str  # "en" | "ar"


@dataclass(frozen=True)
class Slot:
    id: str
    starts_at: dt.datetime  # timezone-aware
    ends_at: dt.datetime
    provider: str | None = None


@dataclass(frozen=True)
class Appointment:
    id: str
    customer_id: str
    slot: Slot
    status: str
    reason: str | None = None


@dataclass(frozen=True)
class VerificationLimits:
    """How many failed verifications a phone (and a call source) may have in a sliding window."""

    window_seconds: int = 3600
    phone_limit: int = 6
    source_limit: int = 10

    def __post_init__(self) -> None:
        if self.window_seconds < 1 or self.phone_limit < 1 or self.source_limit < 1:
            raise ValueError("verification window and limits must be at least 1")


@dataclass(frozen=True)
class VerificationClaim:
    """The answer to `begin_verification_attempt`.

    `status` "locked": no attempt was recorded, one is allowed again in `retry_after` seconds.
    "claimed": the attempt is recorded as a failure (`attempt_id`), `failures` counts the
    phone's failures in the window with this one, `customer` is the phone's customer (None
    for an unknown phone) and `retry_after` is how long the phone stays locked if this
    attempt fails and reaches the limit.
    """

    status: Literal["locked", "claimed"]
    failures: int
    retry_after: float
    attempt_id: str | None = None
    customer: Customer | None = None


MAX_SOURCE_LENGTH = 300


class AppointmentStore(abc.ABC):
    @abc.abstractmethod
    async def find_customer_by_phone(self, phone: str) -> Customer | None:
        """The customer with this E.164 phone, if any."""

    @abc.abstractmethod
    async def list_appointments(self, customer_id: str, *, upcoming_only: bool = True) -> list[Appointment]:
        """The customer's scheduled appointments, soonest first."""

    @abc.abstractmethod
    async def list_open_slots(self, start: dt.datetime, end: dt.datetime, *, limit: int = 10) -> list[Slot]:
        """Slots starting in [start, end) with no scheduled appointment, soonest first."""

    @abc.abstractmethod
    async def book(self, customer_id: str, slot_id: str, *, reason: str | None = None) -> Appointment:
        """Raises `SlotTaken` if the slot is taken, `NotFound` if it does not exist."""

    @abc.abstractmethod
    async def reschedule(self, customer_id: str, appointment_id: str, new_slot_id: str) -> Appointment:
        """Atomically move a scheduled appointment of this customer; the old slot frees up.

        Raises `NotFound` (not this customer's scheduled appointment, or no such slot) or
        `SlotTaken`; on either, nothing changed.
        """

    @abc.abstractmethod
    async def cancel(self, customer_id: str, appointment_id: str) -> Appointment:
        """Cancel a scheduled appointment of this customer; raises `NotFound` otherwise."""

    @abc.abstractmethod
    async def create_callback_request(
        self,
        *,
        customer_id: str | None,
        name: str | None,
        phone: str | None,
        reason: str,
        conversation_id: str | None,
    ) -> str:
        """Store a request for a human to call back; returns its id."""

    @abc.abstractmethod
    async def begin_verification_attempt(
        self, phone: str, *, source: str | None, conversation_id: str | None, limits: VerificationLimits
    ) -> VerificationClaim:
        """Claim one verification attempt for `phone` (E.164) before its ZIP code is compared.

        Atomic across calls, processes and workers: the phone's failures since its last
        success within the window (and the source's failures within the window) are counted,
        and either the phone or source is locked, or the attempt is recorded as a failure at
        once. Parallel claims for one phone are serialised, so at most `phone_limit` of them
        are claimed per window. An invalid phone raises `StoreError` without a request.
        """

    @abc.abstractmethod
    async def mark_verification_succeeded(self, attempt_id: str) -> None:
        """The claimed attempt matched: count it as a success, which resets the phone's failures."""

    @abc.abstractmethod
    async def aclose(self) -> None: ...


def check_verification_claim(phone: str, source: str | None) -> None:
    """What both stores require of a claim before it goes near a query."""
    if not isinstance(phone, str) or not E164.fullmatch(phone):
        raise StoreError("verification attempt: the phone must be E.164")
    if source is not None and not (isinstance(source, str) and 1 <= len(source) <= MAX_SOURCE_LENGTH):
        raise StoreError(f"verification attempt: the source must be 1-{MAX_SOURCE_LENGTH} characters")
