"""Every word the agent says or is instructed with, one file per prompt and language.

Templates use `{field}` placeholders. `load()` fails loudly on a missing file, a missing
field or an unexpected one, and `check()` runs at worker start-up over every prompt the
agent needs, so a broken translation stops the deploy instead of a live call.
"""

from __future__ import annotations

import string
from functools import cache
from pathlib import Path

PROMPTS_DIR = Path(__file__).parent

REQUIRED: dict[str, frozenset[str]] = {
    "system": frozenset({"agent_name", "company"}),
    "greeting": frozenset({"agent_name", "company"}),
    # The appointment desk (tools/): agent roles, call context, acknowledgements, calendar
    # words (weekdays, months, hours, periods are lists, one entry per line), tool results.
    "ack_appointments": frozenset(),
    "ack_change": frozenset(),
    "ack_saving": frozenset(),
    "ack_slots": frozenset(),
    "ack_verify": frozenset(),
    "already_verified": frozenset({"customer"}),
    "appointment_line": frozenset({"provider", "ref", "when"}),
    "appointments": frozenset(),
    "appointments_list": frozenset({"lines"}),
    "arguments_broken": frozenset(),
    "bad_reference": frozenset(),
    "booked": frozenset({"when"}),
    "call_context": frozenset({"time_now", "timezone", "today", "today_iso", "verification"}),
    "callback_exists": frozenset(),
    "callback_needs_phone": frozenset(),
    "callback_saved": frozenset(),
    "cancelled": frozenset({"when"}),
    "change_declined": frozenset(),
    "change_failed": frozenset(),
    "change_interrupted": frozenset(),
    "confirmation_not_boolean": frozenset(),
    "change_unknown": frozenset(),
    "confirm_book": frozenset({"provider", "when"}),
    "confirm_cancel": frozenset({"when"}),
    "confirm_reschedule": frozenset({"new", "old"}),
    "confirm_same_turn": frozenset(),
    "date_format": frozenset({"day", "month", "weekday"}),
    "date_invalid": frozenset(),
    "date_past": frozenset(),
    "date_range": frozenset({"end", "start"}),
    "date_range_invalid": frozenset(),
    "date_range_too_long": frozenset({"days"}),
    "date_too_far": frozenset({"days"}),
    "details_empty": frozenset(),
    "details_saved": frozenset(),
    "email_invalid": frozenset(),
    "hint_language_request": frozenset(),
    "handover_briefing": frozenset({"caller", "done", "reason", "verification"}),
    "handover_caller_unknown": frozenset(),
    "handover_caller_unverified": frozenset({"phone"}),
    "handover_caller_verified": frozenset({"customer", "phone"}),
    "handover_done_booked": frozenset(),
    "handover_done_callback_requested": frozenset(),
    "handover_done_cancelled": frozenset(),
    "handover_done_none": frozenset(),
    "handover_done_rescheduled": frozenset(),
    "handover_verification_done": frozenset(),
    "handover_verification_failed": frozenset({"attempts"}),
    "handover_verification_none": frozenset(),
    "hint_keypad": frozenset(),
    "hint_offer_human": frozenset(),
    "keypad_entry": frozenset({"result"}),
    "keypad_verified": frozenset(),
    "hours": frozenset(),
    "language_offer": frozenset(),
    "months": frozenset(),
    "name_invalid": frozenset(),
    "need_phone": frozenset(),
    "no_alternatives": frozenset(),
    "no_appointments": frozenset(),
    "no_slots": frozenset({"days"}),
    "not_verified": frozenset(),
    "nothing_pending": frozenset(),
    "part_of_day_invalid": frozenset(),
    "periods": frozenset(),
    "phone_from_call": frozenset(),
    "phone_invalid": frozenset(),
    "phone_noted": frozenset(),
    "reason_invalid": frozenset(),
    "reception": frozenset(),
    "rescheduled": frozenset({"when"}),
    "same_slot": frozenset(),
    "slot_line": frozenset({"provider", "ref", "when"}),
    "slot_taken": frozenset({"options"}),
    "slot_when": frozenset({"day", "time"}),
    "slots_list": frozenset({"lines"}),
    "state_locked": frozenset(),
    "state_needs_phone": frozenset(),
    "state_unverified": frozenset(),
    "state_verified": frozenset({"customer"}),
    "still_working": frozenset(),
    "store_unavailable": frozenset(),
    "summary_abandoned": frozenset({"caller"}),
    "summary_booked": frozenset({"caller"}),
    "summary_callback_requested": frozenset({"caller"}),
    "summary_cancelled": frozenset({"caller"}),
    "summary_information_only": frozenset({"caller"}),
    "summary_instructions": frozenset(),
    "summary_rescheduled": frozenset({"caller"}),
    "summary_transferred": frozenset({"caller"}),
    "summary_unknown_caller": frozenset(),
    "summary_verification_failed": frozenset({"caller"}),
    "time_exact": frozenset({"hour", "period"}),
    "time_half": frozenset({"hour", "period"}),
    "time_minutes": frozenset({"hour", "minute", "period"}),
    "time_minutes_few": frozenset({"hour", "minute", "period"}),
    "time_quarter": frozenset({"hour", "period"}),
    "today": frozenset(),
    "tomorrow": frozenset(),
    "transfer_done": frozenset(),
    "transfer_failed_callback": frozenset(),
    "transfer_started": frozenset(),
    "transfer_unavailable_callback": frozenset(),
    "unknown_appointment": frozenset({"ref"}),
    "unknown_slot": frozenset({"ref"}),
    "verify_failed": frozenset(),
    "verify_failed_offer_human": frozenset(),
    "verify_interrupted": frozenset(),
    "transfer_declined_callback": frozenset(),
    "transfer_hold": frozenset(),
    "transfer_no_answer_callback": frozenset(),
    "typed_too_long": frozenset({"limit"}),
    "verify_limit_reached": frozenset({"minutes"}),
    "verify_locked": frozenset(),
    "verify_locked_now": frozenset(),
    "weekdays": frozenset(),
    "with_provider": frozenset({"provider"}),
    "zip_invalid": frozenset(),
}
"""Prompt name -> the fields its template must use (same set in every language)."""


class PromptError(Exception):
    pass


@cache
def _template(lang: str, name: str) -> str:
    path = PROMPTS_DIR / lang / f"{name}.txt"
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise PromptError(f"prompt {lang}/{name}.txt is missing (looked in {path})") from None
    if not text:
        raise PromptError(f"prompt {lang}/{name}.txt is empty")
    return text


def fields_of(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def load(lang: str, name: str, **fields: object) -> str:
    """Render prompt `name` in `lang` with exactly the fields its template uses."""
    template = _template(lang, name)
    wanted = fields_of(template)
    if missing := wanted - fields.keys():
        raise PromptError(f"prompt {lang}/{name} needs field(s) {', '.join(sorted(missing))}")
    if unused := fields.keys() - wanted:
        raise PromptError(f"prompt {lang}/{name} does not use field(s) {', '.join(sorted(unused))}")
    return template.format(**fields)


def check(lang: str) -> None:
    """Verify every required prompt of `lang` exists and uses exactly its declared fields."""
    problems = []
    for name, declared in REQUIRED.items():
        try:
            used = fields_of(_template(lang, name))
        except PromptError as e:
            problems.append(str(e))
            continue
        if used != declared:
            problems.append(f"prompt {lang}/{name} uses fields {sorted(used)}, expected {sorted(declared)}")
    if problems:
        raise PromptError("; ".join(problems))
