"""A hand-over to a human: the briefing they hear and the report of how it went. Plain Python.

The briefing is built from the call's state, the same facts the end-of-call outcome comes
from (who the caller is and whether verified, the verification failures, the changes and
callback the tools made), never from the model's account of the call; only the reason is
the caller's, as the model passed it to `transfer_to_human`, and it is labelled as such.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from desk.call_state import CallState
from desk.phrases import Phrases

HandoverResult = Literal["answered", "no_answer", "declined", "caller_left", "failed"]
DONE_EFFECTS = ("booked", "rescheduled", "cancelled", "callback_requested")


@dataclass(frozen=True)
class HandoverReport:
    """What the record keeps of a transfer (`metadata.transfer`)."""

    kind: Literal["warm", "cold"]
    started_at: float
    """Unix time the caller was put on hold (warm) or the transfer was asked for (cold)."""
    answered: bool
    """A human took the call."""
    waited_seconds: float
    """How long the caller waited: until the human answered, or until they were told nobody did."""
    result: HandoverResult

    def as_record(self) -> dict[str, Any]:
        return {**asdict(self), "waited_seconds": round(self.waited_seconds, 1)}


WarmHandover = Callable[[str, str], Awaitable[HandoverReport]]
"""`warm(briefing, hold_line)`: say the hold line, hold the caller, call a human, brief them; the
report of what happened. Both texts are in the call's language."""


def briefing(phrases: Phrases, state: CallState, effects: Sequence[str], reason: str) -> str:
    customer = state.customer if state.verified else None
    if customer is not None:
        caller = phrases.line("handover_caller_verified", customer=customer.name, phone=_spoken(customer.phone))
        verification = phrases.line("handover_verification_done")
    else:
        phone = state.contact_phone or state.phone
        caller = (
            phrases.line("handover_caller_unverified", phone=_spoken(phone))
            if phone
            else phrases.line("handover_caller_unknown")
        )
        verification = (
            phrases.line("handover_verification_failed", attempts=state.failed_attempts)
            if state.failed_attempts
            else phrases.line("handover_verification_none")
        )
    done = [phrases.line(f"handover_done_{e}") for e in dict.fromkeys(effects) if e in DONE_EFFECTS]
    return phrases.line(
        "handover_briefing",
        caller=caller,
        verification=verification,
        done=" ".join(done) or phrases.line("handover_done_none"),
        reason=reason,
    )


def _spoken(phone: str) -> str:
    """Digits one by one, so text-to-speech reads a number a colleague can write down."""
    return " ".join(phone)
