"""A call's outcome, derived from what its tools did, never from what the model said.

The tools report *effects* as they happen (a booking committed, a callback stored, a
failed verification attempt...); the outcome is a pure function of those effects and of
how the call ended, so the same journal always gives the same outcome, live or replayed.

Precedence, most consequential first:
1. `transferred`: a human took the call over.
2. the last committed change: `booked`, `rescheduled` or `cancelled`.
3. `callback_requested`.
4. `verification_failed`: verification failed and never succeeded.
5. `abandoned`: the call never ended cleanly (recovered from a crash) or the caller never spoke.
6. `information_only`: the caller was helped without any change.

`built_summary` turns the outcome and the caller's details into one sentence in the
call's language: the summary of record when no LLM summary came back in time.
"""

from __future__ import annotations

from collections.abc import Sequence

import prompts
from conversation_manager.caller_details import CallerDetails

CHANGES = ("booked", "rescheduled", "cancelled")
EFFECTS = frozenset({"verified", "verification_failed", "callback_requested", "transferred", *CHANGES})
OUTCOMES = (
    "booked",
    "rescheduled",
    "cancelled",
    "callback_requested",
    "transferred",
    "verification_failed",
    "information_only",
    "abandoned",
)


def derive_outcome(effects: Sequence[str], *, ended: bool, caller_spoke: bool) -> str:
    done = set(effects)
    if "transferred" in done:
        return "transferred"
    changes = [e for e in effects if e in CHANGES]
    if changes:
        return changes[-1]
    if "callback_requested" in done:
        return "callback_requested"
    if "verification_failed" in done and "verified" not in done:
        return "verification_failed"
    if not ended or not caller_spoke:
        return "abandoned"
    return "information_only"


def built_summary(language: str, outcome: str, caller: CallerDetails) -> str:
    """One factual sentence from the outcome and the caller's details (never empty)."""
    who = f"{caller.name} ({caller.phone})" if caller.name and caller.phone else caller.name or caller.phone
    return prompts.load(language, f"summary_{outcome}", caller=who or prompts.load(language, "summary_unknown_caller"))
