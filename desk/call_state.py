"""The state of one call at the appointment desk. Plain Python: no LiveKit, no I/O.

One `CallState` per call holds what the desk's rules need between tool calls:

- who is calling: the phone from the call (SIP caller id, room attributes) or, only when
  the call brought none, the one the caller stated; the verification status, the bound
  customer and the failed-attempt counter (a human is offered after
  `offer_human_after` failures, and after `max_attempts` the call is locked: no more
  attempts, whatever the caller says);
- the caller turn counter (`note_user_message`, once per caller turn) and the count of
  unclear turns;
- the short references the LLM uses ("A1" for appointments, "S3" for slots), each
  bound to one row of *this* customer's lists as the store returned them;
- the change proposed and awaiting the caller's yes, with the turn it was proposed in:
  it can only be confirmed in a later caller turn.

Refusals are `DeskError`s: a prompt key (`prompts/<lang>/<key>.txt`) plus the fields
that fill it, so no words live here.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from desk.phone import ascii_digits
from storage.domain import Appointment, Customer, Slot

T = TypeVar("T")

APPOINTMENT_PREFIX = "A"
SLOT_PREFIX = "S"
MAX_REF_LENGTH = 16
_WORDS = re.compile(r"\w", re.UNICODE)

ChangeKind = Literal["book", "reschedule", "cancel"]
Channel = Literal["speech", "keypad"]


class DeskError(Exception):
    """A refusal or problem the caller should hear, as a prompt key and its fields."""

    def __init__(self, key: str, **fields: Any) -> None:
        super().__init__(key)
        self.key = key
        self.fields = fields


class AlreadyAnswered(DeskError):
    """This attempt is the same one the caller already made on the other channel (typed and
    said at once): it was not counted, and the caller already has its answer."""

    def __init__(self, answer: DeskError) -> None:
        super().__init__(answer.key, **answer.fields)
        self.answer = answer


class Verification(enum.Enum):
    UNVERIFIED = "unverified"
    VERIFIED = "verified"
    LOCKED = "locked"


class RefBook(Generic[T]):
    """Short references ("A1", "S3") for rows shown to the LLM during this call.

    A reference is never reused for another row within the call, so a stale reference
    still in the LLM's context cannot silently point at something else. `replace()` makes
    only the given rows resolvable (the customer's current list); `add()` keeps earlier
    ones (slots listed for several days stay bookable until one is found taken).
    """

    def __init__(self, prefix: str, key: Callable[[T], str]) -> None:
        self.prefix = prefix
        self._key = key
        self._next = 1
        self._ref_of: dict[str, str] = {}
        self._live: dict[str, T] = {}

    def _ref_for(self, item: T) -> str:
        item_id = self._key(item)
        ref = self._ref_of.get(item_id)
        if ref is None:
            ref = f"{self.prefix}{self._next}"
            self._next += 1
            self._ref_of[item_id] = ref
        return ref

    def add(self, items: Iterable[T]) -> list[tuple[str, T]]:
        shown = []
        for item in items:
            ref = self._ref_for(item)
            self._live[ref] = item
            shown.append((ref, item))
        return shown

    def replace(self, items: Iterable[T]) -> list[tuple[str, T]]:
        self._live.clear()
        return self.add(items)

    def forget(self, item_id: str) -> None:
        ref = self._ref_of.get(item_id)
        if ref is not None:
            self._live.pop(ref, None)

    def ref_of(self, item_id: str) -> str | None:
        ref = self._ref_of.get(item_id)
        return ref if ref in self._live else None

    def resolve(self, raw: object) -> T:
        """The row behind a reference given by the LLM; `DeskError` if malformed or unknown."""
        ref = normalize_ref(raw, self.prefix)
        item = self._live.get(ref)
        if item is None:
            raise DeskError("unknown_appointment" if self.prefix == APPOINTMENT_PREFIX else "unknown_slot", ref=ref)
        return item

    def __len__(self) -> int:
        return len(self._live)


def normalize_ref(raw: object, prefix: str) -> str:
    """ "a1", " A 1 ", "A١" -> "A1"; anything else is `bad_reference`."""
    if not isinstance(raw, str) or len(raw) > MAX_REF_LENGTH or has_control_chars(raw):
        raise DeskError("bad_reference")
    ref = re.sub(r"[\s\-_#.]", "", ascii_digits(raw)).upper()
    if not re.fullmatch(rf"{prefix}[1-9][0-9]{{0,3}}", ref):
        raise DeskError("bad_reference")
    return ref


def has_control_chars(text: str) -> bool:
    """Control characters, line separators, and lone surrogates (which no store can encode)."""
    return any(ord(c) < 32 or 127 <= ord(c) < 160 or c in "\u2028\u2029" or "\ud800" <= c <= "\udfff" for c in text)


def is_unclear(text: str | None, confidence: float | None = None, *, min_confidence: float = 0.35) -> bool:
    """A caller turn with nothing to understand: no letters or digits, or low STT confidence.

    A confidence of 0 means "not reported": it is LiveKit's default, and the OpenAI STT never sets it.
    """
    if not text or not _WORDS.search(text):
        return True
    return confidence is not None and 0 < confidence < min_confidence


@dataclass
class PendingChange:
    """A change the caller was asked to confirm, not yet written."""

    kind: ChangeKind
    proposed_turn: int
    slot: Slot | None = None
    appointment: Appointment | None = None


@dataclass
class CallState:
    max_attempts: int = 3
    offer_human_after: int = 2
    unclear_before_human: int = 2

    phone: str | None = None
    phone_source: Literal["call", "caller"] | None = None
    is_sip: bool = False
    participant_identity: str | None = None

    verification: Verification = Verification.UNVERIFIED
    customer: Customer | None = None
    failed_attempts: int = 0

    turn: int = 0
    unclear_turns: int = 0
    consecutive_unclear: int = 0
    acknowledged_turn: int = -1
    still_working_turn: int = -1

    pending: PendingChange | None = None
    last_proposal_turn: int = -1
    """The last caller turn in which a change was proposed (or a proposal was attempted)."""
    appointments: RefBook[Appointment] = field(default_factory=lambda: RefBook(APPOINTMENT_PREFIX, lambda a: a.id))
    slots: RefBook[Slot] = field(default_factory=lambda: RefBook(SLOT_PREFIX, lambda s: s.id))

    contact_name: str | None = None
    contact_phone: str | None = None
    contact_email: str | None = None
    callback_id: str | None = None

    broken_calls: set[str] = field(default_factory=set)
    """Tool calls whose arguments the model sent as broken JSON (LiveKit repairs it): refused, never run."""

    _last_user_message: str | None = field(default=None, repr=False)
    _last_attempt: tuple[Channel, float, DeskError] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.offer_human_after < 1:
            raise ValueError("max_attempts and offer_human_after must be at least 1")

    # -- caller turns -------------------------------------------------------------------

    def note_user_message(self, message_id: str, text: str | None = None, confidence: float | None = None) -> bool:
        """Count a caller turn once, however many LLM calls answer it. True if it is new."""
        if message_id == self._last_user_message:
            return False
        self._last_user_message = message_id
        self.turn += 1
        if is_unclear(text, confidence):
            self.unclear_turns += 1
            self.consecutive_unclear += 1
        else:
            self.consecutive_unclear = 0
        return True

    @property
    def should_offer_human_for_unclear(self) -> bool:
        return self.consecutive_unclear >= self.unclear_before_human

    def claim_acknowledgement(self) -> bool:
        """True the first time in a caller turn: one acknowledgement line per turn at most."""
        if self.acknowledged_turn == self.turn:
            return False
        self.acknowledged_turn = self.turn
        return True

    def claim_still_working(self) -> bool:
        """True the first time in a caller turn: one "still working on it" line per turn at most."""
        if self.still_working_turn == self.turn:
            return False
        self.still_working_turn = self.turn
        return True

    # -- who is calling -----------------------------------------------------------------

    def set_call_phone(self, phone: str, *, is_sip: bool = False, participant_identity: str | None = None) -> None:
        """The phone the call itself carries (SIP caller id, room attributes)."""
        if self.verification is Verification.VERIFIED:
            return
        self.phone, self.phone_source = phone, "call"
        self.is_sip = is_sip
        self.participant_identity = participant_identity

    def set_stated_phone(self, phone: str) -> None:
        """The phone the caller said, accepted only when the call brought none."""
        self.require_not_locked()
        if self.verification is Verification.VERIFIED:
            raise DeskError("already_verified", customer=self.customer.name if self.customer else "")
        if self.phone_source == "call":
            raise DeskError("phone_from_call")
        self.phone, self.phone_source = phone, "caller"

    # -- verification -------------------------------------------------------------------

    @property
    def verified(self) -> bool:
        return self.verification is Verification.VERIFIED and self.customer is not None

    @property
    def locked(self) -> bool:
        return self.verification is Verification.LOCKED

    @property
    def call_source(self) -> str | None:
        """Where the attempts come from, for the store's per-source limit: the SIP caller's
        number, else the participant's identity (a browser caller's token identity)."""
        if self.is_sip and self.phone_source == "call" and self.phone:
            return f"sip:{self.phone}"
        if self.participant_identity:
            return f"{'sip' if self.is_sip else 'browser'}:{self.participant_identity}"[:300]
        return None

    def lock(self) -> None:
        """No more attempts on this call (the store's limit for this phone or source is reached)."""
        if self.verification is not Verification.VERIFIED:
            self.verification = Verification.LOCKED

    def require_not_locked(self) -> None:
        if self.locked:
            raise DeskError("verify_locked")

    def require_customer(self) -> Customer:
        """The verified customer; every data access goes through here."""
        if not self.verified or self.customer is None:
            raise DeskError("verify_locked" if self.locked else "not_verified")
        return self.customer

    def record_failed_attempt(self) -> str:
        """Count a failed verification; the prompt key of what to tell the caller."""
        self.failed_attempts += 1
        if self.failed_attempts >= self.max_attempts:
            self.verification = Verification.LOCKED
            return "verify_locked_now"
        if self.failed_attempts >= self.offer_human_after:
            return "verify_failed_offer_human"
        return "verify_failed"

    def earlier_answer(self, channel: Channel, at: float, merge_window: float) -> AlreadyAnswered | None:
        """The answer already given when the caller typed and said a code at once: an attempt from
        the other channel (keypad or speech) less than `merge_window` seconds ago. That one counted;
        this one does not, and gets the same answer."""
        if self._last_attempt is not None:
            last_channel, last_at, answer = self._last_attempt
            if last_channel != channel and 0 <= at - last_at < merge_window:
                return AlreadyAnswered(answer)
        return None

    def note_failed_attempt(self, channel: Channel, at: float, answer: DeskError) -> None:
        self._last_attempt = (channel, at, answer)

    def bind_customer(self, customer: Customer) -> None:
        if self.locked:
            raise DeskError("verify_locked")
        self.customer = customer
        self.verification = Verification.VERIFIED
        self.failed_attempts = 0

    # -- changes awaiting confirmation --------------------------------------------------

    def begin_proposal(self) -> None:
        """A new proposal is on its way: the earlier question is void, and nothing can be
        confirmed in this turn any more (not even alongside the new proposal)."""
        self.pending = None
        self.last_proposal_turn = self.turn

    def propose(self, kind: ChangeKind, *, slot: Slot | None = None, appointment: Appointment | None = None) -> None:
        """Replace any earlier proposal: only the latest question can be answered."""
        self.require_customer()
        self.pending = PendingChange(kind=kind, proposed_turn=self.turn, slot=slot, appointment=appointment)
        self.last_proposal_turn = self.turn

    def take_confirmable(self) -> PendingChange:
        """The pending change, removed, if the caller answered in a later turn than any proposal."""
        self.require_customer()
        if self.pending is None:
            raise DeskError("nothing_pending")
        if self.turn <= max(self.pending.proposed_turn, self.last_proposal_turn):
            raise DeskError("confirm_same_turn")
        pending, self.pending = self.pending, None
        return pending

    def decline_pending(self) -> PendingChange:
        self.require_customer()
        if self.pending is None:
            raise DeskError("nothing_pending")
        pending, self.pending = self.pending, None
        return pending
