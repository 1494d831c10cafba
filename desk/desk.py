"""The appointment desk's rules, as plain Python over an `AppointmentStore`.

`AppointmentDesk` is what the tools call; the `@function_tool` layer in `tools/agents.py`
only forwards arguments and turns a `DeskError` into a `ToolError`. One desk per call.

- Verification binds the call to one customer: the phone comes from the call (or, when
  the call has none, from the caller) and the caller gives the ZIP code. Failures are
  counted; a locked call stays locked.
- Every read and change uses the bound customer's id, and references ("A1", "S3")
  resolve only against what this customer was shown in this call.
- Book, reschedule and cancel are proposed first and written only by `confirm()` in a
  later caller turn. A slot taken meanwhile yields fresh options.
- Everything said comes from `prompts/<lang>/` through `Phrases`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from desk import arguments
from desk.call_language import CallLanguage, Cause, HeardTurn, LanguageChange
from desk.call_state import AlreadyAnswered, CallState, Channel, DeskError, PendingChange
from desk.config import DeskConfig, DeskRecord, Transfer
from desk.handover import HandoverReport, WarmHandover, briefing
from desk.phone import zip_key
from desk.phrases import Phrases
from desk.status import StatusSink
from storage.domain import Appointment, AppointmentStore, Customer, NotFound, Slot, SlotTaken
from storage.records import StoreError

__all__ = ["AppointmentDesk", "DeskConfig", "DeskRecord", "Transfer", "Verified"]

logger = logging.getLogger("desk")

T = TypeVar("T")
PART_OF_DAY_HOURS: dict[str, tuple[int, int]] = {
    "any": (0, 24),
    "morning": (0, 12),
    "afternoon": (12, 17),
    "evening": (17, 24),
}


def _minutes(seconds: float) -> int:
    """Whole minutes to wait, rounded up: a caller told "1 minute" must not be refused after it."""
    return max(1, -int(-seconds // 60))


@dataclass(frozen=True)
class Verified:
    customer: Customer
    newly: bool
    """False when the call was already verified (no second handoff)."""


@dataclass(frozen=True)
class KeypadResult:
    line: str
    """What the model is told happened (a prompt line; never the digits)."""
    verified: Verified | None = None
    """Set when the entry verified the call just now (the caller is handed over)."""


class AppointmentDesk:
    def __init__(
        self,
        store: AppointmentStore,
        config: DeskConfig,
        *,
        record: DeskRecord | None = None,
        transfer: Transfer | None = None,
        warm_transfer: WarmHandover | None = None,
        status: StatusSink | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.record = record
        self.status = status
        """Where tool progress goes for a front end (the room's `agent.status` topic)."""
        self._transfer = transfer
        self._warm_transfer = warm_transfer
        """Set when this call can be handed over warm (a SIP call with an outbound trunk)."""
        self.effects: list[str] = []
        """What the tools did on this call, in order (the record's `metadata.effects`)."""
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.language = CallLanguage(self.config.call_languages)
        """The call's language: every line below is said in `language.current`."""
        self.language.listeners.append(self._language_changed)
        self._phrases = {lang: Phrases(lang, self.config.timezone) for lang in self.language.languages}
        self.said_in: dict[str, str] = {}
        """Caller message id -> the language that turn was said in (for the record)."""
        self._final_turns: set[str] = set()
        self._draft_switch: str | None = None
        """The message (a preemptive reply's draft of the turn) whose reading switched the language."""
        self.state = CallState(
            max_attempts=self.config.max_verification_attempts,
            offer_human_after=self.config.offer_human_after_failures,
            unclear_before_human=self.config.unclear_turns_before_human,
        )
        self._verify_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()

    # -- words ----------------------------------------------------------------------------

    @property
    def phrases(self) -> Phrases:
        """The desk's words in the call's current language."""
        return self._phrases[self.language.current]

    def start_language(self, language: str | None, cause: Cause) -> LanguageChange:
        """The call's first language, from the dispatch or a known caller (agent.py)."""
        return self.language.start(language, cause)

    def hear(self, message_id: str, text: str | None) -> HeardTurn | None:
        """A final caller turn, once per message: it may switch the call's language."""
        if message_id in self.said_in or not text:
            return None
        heard = self.language.hear(text, self.state.turn)
        self.said_in[message_id] = heard.language
        if heard.change is not None and message_id not in self._final_turns:
            self._draft_switch = message_id
        return heard

    def turn_ended(self, message_id: str, text: str | None) -> LanguageChange | None:
        """A voice turn ended with its whole transcript: a switch made on a draft of it (the first
        words, before the caller finished) stands only if the whole turn bears it out."""
        self._final_turns.add(message_id)
        draft, self._draft_switch = self._draft_switch, None
        if draft is None or draft == message_id or not text:
            return None
        return self.language.reconsider(text)

    def _language_changed(self, change: LanguageChange) -> None:
        if change.undone:
            logger.info("call language back to %s: the whole turn did not bear the switch out", change.language)
            if self.record is not None:
                self.record.undo_language()
            return
        logger.info("call language %s (%s) at turn %d", change.language, change.cause, change.turn)
        if self.record is not None:
            self.record.record_language(change.language, change.cause, change.turn)

    async def language_of_caller(self) -> str | None:
        """The stored language of the customer a SIP caller's number belongs to (None if unknown)."""
        if self.state.phone is None or not self.state.is_sip:
            return None
        try:
            customer = await self._store(self.store.find_customer_by_phone(self.state.phone))
        except DeskError:
            return None
        return customer.language if customer is not None else None

    def render(self, error: DeskError) -> str:
        return self.phrases.line(error.key, **error.fields)

    def now(self) -> dt.datetime:
        return self._clock()

    def when(self, moment: dt.datetime) -> str:
        return self.phrases.when(moment, self.now())

    def call_context(self) -> str:
        """Today's date, the time zone and the verification state, for the LLM's instructions."""
        now = self.now()
        state = self.state
        if state.verified and state.customer is not None:
            verification = self.phrases.line("state_verified", customer=state.customer.name)
        elif state.locked:
            verification = self.phrases.line("state_locked")
        elif state.phone is None:
            verification = self.phrases.line("state_needs_phone")
        else:
            verification = self.phrases.line("state_unverified")
        return self.phrases.line(
            "call_context",
            today=self.phrases.date(self.phrases.local(now).date()),
            today_iso=self.phrases.local(now).date().isoformat(),
            time_now=self.phrases.time(now),
            timezone=self.phrases.timezone_name,
            verification=verification,
        )

    def turn_hints(self) -> list[str]:
        """Extra guidance for this caller turn: after repeated unclear turns, offer a human; after
        the caller asked for another language, acknowledge it, in that language; on a phone line
        before verification, the keypad."""
        hints = [self.phrases.line("hint_offer_human")] if self.state.should_offer_human_for_unclear else []
        switches = self.language.switches
        if switches and switches[-1].cause == "request" and switches[-1].turn == self.state.turn:
            hints.append(self.phrases.line("hint_language_request"))
        if self.state.is_sip and not self.state.verified and not self.state.locked:
            hints.append(self.phrases.line("hint_keypad"))  # "say it, or type it and press #"
        return hints

    def acknowledgement(self, key: str) -> str | None:
        """The acknowledgement line `key`, or None if this caller turn already had one."""
        return self.phrases.line(key) if self.state.claim_acknowledgement() else None

    def still_working(self) -> str | None:
        """The "still working on it" line, or None if this caller turn already had one."""
        return self.phrases.line("still_working") if self.state.claim_still_working() else None

    # -- store access ---------------------------------------------------------------------

    async def _store(self, call: Coroutine[Any, Any, T]) -> T:
        """Run a store call; an unavailable store is something the caller should hear."""
        try:
            return await call
        except (NotFound, SlotTaken):
            raise
        except (StoreError, TimeoutError) as e:
            logger.warning("appointment store failed: %s", str(e) or type(e).__name__)
            raise DeskError("store_unavailable") from e

    def _note(self, **fields: Any) -> None:
        if self.record is not None:
            self.record.update_conversation(**fields)

    def _effect(self, effect: str) -> None:
        self.effects.append(effect)
        if self.record is not None:
            self.record.add_effect(effect)

    # -- who is calling -------------------------------------------------------------------

    def caller_identified(
        self,
        *,
        phone: str | None,
        is_sip: bool = False,
        participant_identity: str | None = None,
        channel: str | None = None,
    ) -> None:
        """Who is calling, as the call says (the telephony layer, never the LLM). The desk owns it:
        the record gets the participant, the channel and the same E.164 number the desk verifies
        with; a number that cannot be parsed is neither trusted nor recorded."""
        channel = channel or ("sip" if is_sip else "webrtc")  # or `connector`, ... (tools/caller_identity.py)
        self._note(participant_identity=participant_identity, metadata={"channel": channel})
        if phone:
            try:
                normalized = arguments.phone(phone, self.config.default_country_code)
            except DeskError:
                logger.warning("the call's phone number is not a phone number; asking the caller instead")
            else:
                self.state.set_call_phone(normalized, is_sip=is_sip, participant_identity=participant_identity)
                if self.record is not None:
                    self.record.set_caller_details(phone=normalized)
                return
        self.state.is_sip = is_sip
        self.state.participant_identity = participant_identity

    def provide_phone(self, raw: object) -> str:
        phone = arguments.phone(raw, self.config.default_country_code)
        self.state.set_stated_phone(phone)
        if self.record is not None:
            self.record.set_caller_details(phone=phone)
        return self.phrases.line("phone_noted")

    async def verify(self, raw_zip: object, *, channel: Channel = "speech") -> Verified:
        """Verify the call with a ZIP code said (through the model) or typed on the keypad."""
        async with self._verify_lock:  # parallel calls must not verify (and hand off) twice
            state = self.state
            if state.verified and state.customer is not None:
                return Verified(state.customer, newly=False)
            state.require_not_locked()
            zip_code = arguments.zip_code(raw_zip)
            if state.phone is None:
                raise DeskError("need_phone")
            at = self.now().timestamp()
            earlier = state.earlier_answer(channel, at, self.config.keypad_merge_window)
            if earlier is not None:
                raise earlier
            try:
                return await self._attempt(zip_code)
            except DeskError as e:
                if e.key != "store_unavailable" and not isinstance(e, AlreadyAnswered):
                    state.note_failed_attempt(channel, at, e)
                raise

    async def keypad_entry(self, digits: str) -> KeypadResult | None:
        """Digits a phone caller typed and ended with # (or a pause): the phone number while the
        call has none, else the ZIP code, validated as if said. None when nothing asks for digits
        or the caller already had the answer (they said the same code at once)."""
        state = self.state
        if state.verified:
            return None
        try:
            if state.phone is None:
                return KeypadResult(self.provide_phone(digits))
            verified = await self.verify(digits, channel="keypad")
        except AlreadyAnswered:
            return None
        except DeskError as e:
            return KeypadResult(self.render(e))
        if not verified.newly:  # said and verified at the same moment: the spoken one handed over
            return None
        return KeypadResult(self.phrases.line("keypad_verified"), verified)

    async def _attempt(self, zip_code: str) -> Verified:
        """One counted attempt (under the verification lock)."""
        state = self.state
        assert state.phone is not None
        # The attempt is counted in the store before the comparison, across calls.
        limits = self.config.verification_limits
        claim = await self._store(
            self.store.begin_verification_attempt(
                state.phone,
                source=state.call_source,
                conversation_id=self.record.conversation_id if self.record is not None else None,
                limits=limits,
            )
        )
        if claim.status == "locked":
            state.lock()
            self._effect("verification_failed")
            raise DeskError("verify_limit_reached", minutes=_minutes(claim.retry_after))
        customer = claim.customer
        # Unknown phone and wrong ZIP sound the same: nothing to learn by guessing.
        if customer is None or not hmac.compare_digest(zip_key(customer.zip_code), zip_code):
            self._effect("verification_failed")
            key = state.record_failed_attempt()
            if claim.failures >= limits.phone_limit:
                state.lock()
                raise DeskError("verify_limit_reached", minutes=_minutes(claim.retry_after))
            raise DeskError(key)
        assert claim.attempt_id is not None
        try:
            await self.store.mark_verification_succeeded(claim.attempt_id)
        except (StoreError, TimeoutError) as e:  # the ZIP matched: only the reset is lost
            logger.warning("could not mark the verification as succeeded: %s", str(e) or type(e).__name__)
        state.bind_customer(customer)
        self.language.known_customer(customer.language, state.turn)
        self._effect("verified")
        self._note(customer_id=customer.id)
        if self.record is not None:
            self.record.set_caller_details(name=customer.name, phone=customer.phone)
        return Verified(customer, newly=True)

    # -- reading --------------------------------------------------------------------------

    def _with_provider(self, slot: Slot) -> str:
        return self.phrases.line("with_provider", provider=slot.provider) if slot.provider else ""

    def _slot_lines(self, shown: Sequence[tuple[str, Slot]]) -> str:
        return "\n".join(
            self.phrases.line("slot_line", ref=ref, when=self.when(s.starts_at), provider=self._with_provider(s))
            for ref, s in shown
        )

    async def list_appointments(self) -> str:
        customer = self.state.require_customer()
        found = await self._store(self.store.list_appointments(customer.id))
        shown = self.state.appointments.replace(a for a in found if a.customer_id == customer.id)
        if not shown:
            return self.phrases.line("no_appointments")
        lines = "\n".join(
            self.phrases.line(
                "appointment_line",
                ref=ref,
                when=self.when(a.slot.starts_at),
                provider=self._with_provider(a.slot),
            )
            for ref, a in shown
        )
        return self.phrases.line("appointments_list", lines=lines)

    async def list_slots(self, from_date: object, to_date: object, part_of_day: str = "any") -> str:
        self.state.require_customer()
        first = arguments.date(from_date)
        blank = to_date is None or (isinstance(to_date, str) and not to_date.strip())
        last = first if blank else arguments.date(to_date)
        hours = PART_OF_DAY_HOURS.get(part_of_day)
        if hours is None:
            raise DeskError("part_of_day_invalid")
        now = self.now()
        today = self.phrases.local(now).date()
        if last < first:
            raise DeskError("date_range_invalid")
        if first < today:
            raise DeskError("date_past")
        if first > today + dt.timedelta(days=self.config.booking_horizon_days):
            raise DeskError("date_too_far", days=self.config.booking_horizon_days)
        if (last - first).days + 1 > self.config.max_search_days:
            raise DeskError("date_range_too_long", days=self.config.max_search_days)
        slots = await self._open_slots(first, last, hours)
        if not slots:
            days = (
                self.phrases.date(first)
                if first == last
                else self.phrases.line("date_range", start=self.phrases.date(first), end=self.phrases.date(last))
            )
            return self.phrases.line("no_slots", days=days)
        return self.phrases.line("slots_list", lines=self._slot_lines(self.state.slots.add(slots)))

    async def _open_slots(
        self, first: dt.date, last: dt.date, hours: tuple[int, int] = (0, 24), *, exclude: str | None = None
    ) -> list[Slot]:
        tz = self.phrases.tz
        start = max(self.now(), dt.datetime.combine(first, dt.time(), tz))
        end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tz)
        wanted = self.config.slots_per_answer
        filtered = hours != (0, 24) or exclude is not None
        found = await self._store(self.store.list_open_slots(start, end, limit=50 if filtered else wanted))
        return [s for s in found if hours[0] <= self.phrases.local(s.starts_at).hour < hours[1] and s.id != exclude][
            :wanted
        ]

    async def _fresh_options(self, taken: Slot) -> str:
        """Other open slots from the taken one's day onwards, as the caller's new choices."""
        self.state.slots.forget(taken.id)
        first = max(self.phrases.local(taken.starts_at).date(), self.phrases.local(self.now()).date())
        try:
            slots = await self._open_slots(first, first + dt.timedelta(days=6), exclude=taken.id)
        except DeskError:
            slots = []
        if not slots:
            return self.phrases.line("no_alternatives")
        return self._slot_lines(self.state.slots.add(slots))

    async def _require_open(self, slot: Slot) -> None:
        if slot.starts_at <= self.now():
            self.state.slots.forget(slot.id)
            raise DeskError("slot_taken", options=await self._fresh_options(slot))
        found = await self._store(
            self.store.list_open_slots(slot.starts_at, slot.starts_at + dt.timedelta(seconds=1), limit=100)
        )
        if all(s.id != slot.id for s in found):
            raise DeskError("slot_taken", options=await self._fresh_options(slot))

    def _appointment(self, ref: object, customer: Customer) -> Appointment:
        appointment = self.state.appointments.resolve(ref)
        if appointment.customer_id != customer.id:  # cannot happen: lists are per customer
            raise DeskError("unknown_appointment", ref=str(ref))
        return appointment

    # -- changes: propose, then confirm in a later turn ------------------------------------

    async def propose_booking(self, slot_ref: object) -> str:
        self.state.require_customer()
        self.state.begin_proposal()
        slot = self.state.slots.resolve(slot_ref)
        await self._require_open(slot)
        self.state.propose("book", slot=slot)
        return self.phrases.line("confirm_book", when=self.when(slot.starts_at), provider=self._with_provider(slot))

    async def propose_reschedule(self, appointment_ref: object, slot_ref: object) -> str:
        customer = self.state.require_customer()
        self.state.begin_proposal()
        appointment = self._appointment(appointment_ref, customer)
        slot = self.state.slots.resolve(slot_ref)
        if slot.id == appointment.slot.id:
            raise DeskError("same_slot")
        await self._require_open(slot)
        self.state.propose("reschedule", appointment=appointment, slot=slot)
        return self.phrases.line(
            "confirm_reschedule", old=self.when(appointment.slot.starts_at), new=self.when(slot.starts_at)
        )

    def propose_cancel(self, appointment_ref: object) -> str:
        customer = self.state.require_customer()
        self.state.begin_proposal()
        appointment = self._appointment(appointment_ref, customer)
        self.state.propose("cancel", appointment=appointment)
        return self.phrases.line("confirm_cancel", when=self.when(appointment.slot.starts_at))

    async def confirm(self, confirmed: object) -> str:
        if not arguments.confirmation(confirmed):
            self.state.decline_pending()
            return self.phrases.line("change_declined")
        customer = self.state.require_customer()
        pending = self.state.take_confirmable()
        async with self._write_lock:
            try:
                return await self._commit(customer, pending)
            except SlotTaken:
                assert pending.slot is not None
                raise DeskError("slot_taken", options=await self._fresh_options(pending.slot)) from None
            except NotFound:
                raise DeskError("change_failed") from None
            except DeskError as e:
                if e.key == "store_unavailable":  # the write may or may not have happened
                    raise DeskError("change_unknown") from e
                raise

    async def _commit(self, customer: Customer, pending: PendingChange) -> str:
        state = self.state
        if pending.kind == "book" and pending.slot is not None:
            booked = await self._store(self.store.book(customer.id, pending.slot.id))
            state.slots.forget(pending.slot.id)
            state.appointments.add([booked])
            self._effect("booked")
            return self.phrases.line("booked", when=self.when(booked.slot.starts_at))
        if pending.kind == "reschedule" and pending.slot is not None and pending.appointment is not None:
            moved = await self._store(self.store.reschedule(customer.id, pending.appointment.id, pending.slot.id))
            state.slots.forget(pending.slot.id)
            state.appointments.add([moved])
            self._effect("rescheduled")
            return self.phrases.line("rescheduled", when=self.when(moved.slot.starts_at))
        if pending.kind == "cancel" and pending.appointment is not None:
            await self._store(self.store.cancel(customer.id, pending.appointment.id))
            state.appointments.forget(pending.appointment.id)
            self._effect("cancelled")
            return self.phrases.line("cancelled", when=self.when(pending.appointment.slot.starts_at))
        raise DeskError("nothing_pending")

    # -- contact details, callbacks, a human ------------------------------------------------

    def save_details(self, name: object, phone: object, email: object) -> str:
        clean_name = arguments.name(name)
        clean_phone = arguments.optional_phone(phone, self.config.default_country_code)
        clean_email = arguments.email(email)
        if not (clean_name or clean_phone or clean_email):
            raise DeskError("details_empty")
        state = self.state
        state.contact_name = clean_name or state.contact_name
        state.contact_phone = clean_phone or state.contact_phone
        state.contact_email = clean_email or state.contact_email
        if self.record is not None:
            self.record.set_caller_details(name=clean_name, phone=clean_phone, email=clean_email)
        return self.phrases.line("details_saved")

    async def request_callback(self, reason: object, *, saved_key: str = "callback_saved") -> str:
        text = arguments.reason(reason)
        state = self.state
        customer = state.customer if state.verified else None
        phone = customer.phone if customer else state.contact_phone or state.phone
        if phone is None:
            raise DeskError("callback_needs_phone")
        async with self._write_lock:
            if state.callback_id is not None:
                return self.phrases.line("callback_exists")
            state.callback_id = await self._store(
                self.store.create_callback_request(
                    customer_id=customer.id if customer else None,
                    name=customer.name if customer else state.contact_name,
                    phone=phone,
                    reason=text,
                    conversation_id=self.record.conversation_id if self.record is not None else None,
                )
            )
        self._effect("callback_requested")
        return self.phrases.line(saved_key)

    def escalation_target(self) -> tuple[str, str] | None:
        """(participant, destination) when a live transfer is possible: SIP call, number, transferrer."""
        number = self.config.escalation_phone_number
        identity = self.state.participant_identity
        if self._transfer is None or not number or not self.state.is_sip or not identity:
            return None
        return identity, number if number.startswith(("tel:", "sip:")) else f"tel:{number}"

    def set_warm_transfer(self, handover: WarmHandover | None) -> None:
        """Wire the warm hand-over (it needs the call's session, which exists after the desk)."""
        self._warm_transfer = handover

    @property
    def warm(self) -> bool:
        """The next hand-over is warm: hold, a briefed human, a callback if nobody answers."""
        return self._warm_transfer is not None and self.escalation_target() is not None

    def briefing(self, reason: str) -> str:
        return briefing(self.phrases, self.state, self.effects, reason)

    async def warm_transfer(self, reason: object) -> str:
        """Hold the caller, call a human and brief them from the call state; if nobody takes the
        call, a callback request. The record keeps the transfer; `transferred` only if answered."""
        text = arguments.reason(reason)
        if self._warm_transfer is None or self.escalation_target() is None:
            return await self.transfer(text)
        try:
            report = await self._warm_transfer(self.briefing(text), self.phrases.line("transfer_hold"))
        except Exception as e:
            logger.warning("warm transfer failed (%s); taking a callback request", str(e) or type(e).__name__)
            report = HandoverReport("warm", self.now().timestamp(), False, 0.0, "failed")
        self._note_transfer(report)
        if report.answered:
            self._effect("transferred")
            return self.phrases.line("transfer_done")
        # Nobody took the call (or the caller hung up on hold): a human calls them back.
        saved_key = {
            "no_answer": "transfer_no_answer_callback",
            "declined": "transfer_declined_callback",
        }.get(report.result, "transfer_failed_callback")
        return await self.request_callback(text, saved_key=saved_key)

    async def transfer(self, reason: object) -> str:
        """Transfer the caller to a human; if that fails, take a callback request instead."""
        text = arguments.reason(reason)
        target = self.escalation_target()
        if target is None or self._transfer is None:
            return await self.request_callback(text, saved_key="transfer_unavailable_callback")
        started = self.now()
        try:
            await self._transfer(*target)
        except Exception as e:
            logger.warning("transfer to a human failed (%s); taking a callback request", str(e) or type(e).__name__)
            self._note_transfer(HandoverReport("cold", started.timestamp(), False, self._since(started), "failed"))
            return await self.request_callback(text, saved_key="transfer_failed_callback")
        # LiveKit answers a cold transfer once the far end took it (SIP REFER accepted).
        self._note_transfer(HandoverReport("cold", started.timestamp(), True, self._since(started), "answered"))
        self._effect("transferred")
        return self.phrases.line("transfer_done")

    def _since(self, started: dt.datetime) -> float:
        return max((self.now() - started).total_seconds(), 0.0)

    def _note_transfer(self, report: HandoverReport) -> None:
        self._note(metadata={"transfer": report.as_record()})
