"""The desk's plain rules, without LiveKit: call state, references, arguments, spoken times."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

import prompts
from desk import arguments
from desk.call_state import (
    CallState,
    DeskError,
    RefBook,
    Verification,
    is_unclear,
    normalize_ref,
)
from desk.phrases import Phrases
from settings import Settings
from storage.demo_data import DEMO_TIMEZONE
from storage.domain import Appointment, Customer, Slot

CUSTOMER = Customer(str(uuid.uuid4()), "Sarah Johnson", "+14155550100", "94103", "en")


def slot(hour: int, minute: int = 0, *, day: int = 1) -> Slot:
    starts = dt.datetime(2030, 3, day, hour, minute, tzinfo=dt.UTC)
    return Slot(str(uuid.uuid4()), starts, starts + dt.timedelta(minutes=30), "Dr. Test")


def verified_state(**kwargs: int) -> CallState:
    state = CallState(**kwargs)
    state.set_call_phone(CUSTOMER.phone)
    state.bind_customer(CUSTOMER)
    return state


def error_key(excinfo: pytest.ExceptionInfo[DeskError]) -> str:
    return excinfo.value.key


# ------------------------------------------------------------------------- references


def test_refs_are_short_stable_and_never_reused() -> None:
    book: RefBook[Slot] = RefBook("S", lambda s: s.id)
    a, b, c = slot(9), slot(10), slot(11)
    assert [ref for ref, _ in book.add([a, b])] == ["S1", "S2"]
    assert [ref for ref, _ in book.add([b, c])] == ["S2", "S3"], "a slot listed again keeps its reference"
    book.forget(b.id)
    with pytest.raises(DeskError) as e:
        book.resolve("S2")
    assert (e.value.key, e.value.fields) == ("unknown_slot", {"ref": "S2"})
    assert book.resolve("s3") is c
    assert [ref for ref, _ in book.add([slot(12)])] == ["S4"], "a forgotten reference is not handed out again"


def test_replace_makes_only_the_current_list_resolvable() -> None:
    book: RefBook[Slot] = RefBook("A", lambda s: s.id)
    old, kept, new = slot(9), slot(10), slot(11)
    book.replace([old, kept])
    assert [ref for ref, _ in book.replace([kept, new])] == ["A2", "A3"]
    with pytest.raises(DeskError, match="unknown_appointment"):
        book.resolve("A1")
    assert book.resolve("A2") is kept


@pytest.mark.parametrize(("raw", "expected"), [("S1", "S1"), (" s 12 ", "S12"), ("S١٢", "S12"), ("S-3", "S3")])
def test_references_are_normalised(raw: str, expected: str) -> None:
    assert normalize_ref(raw, "S") == expected


@pytest.mark.parametrize("raw", ["", "A1", "S0", "S", "S1x", "S12345", "S1\n", "S1; drop table", "x" * 40, 7, None])
def test_malformed_references_are_refused(raw: object) -> None:
    with pytest.raises(DeskError) as e:
        normalize_ref(raw, "S")
    assert e.value.key == "bad_reference"


# ------------------------------------------------------------------------- verification


def test_failures_offer_a_human_then_lock() -> None:
    state = CallState()
    assert [state.record_failed_attempt() for _ in range(3)] == [
        "verify_failed",
        "verify_failed_offer_human",
        "verify_locked_now",
    ]
    assert state.locked and state.verification is Verification.LOCKED
    with pytest.raises(DeskError, match="verify_locked"):
        state.require_not_locked()
    with pytest.raises(DeskError, match="verify_locked"):
        state.bind_customer(CUSTOMER)
    with pytest.raises(DeskError, match="verify_locked"):
        state.require_customer()


def test_the_maximum_is_configurable() -> None:
    state = CallState(max_attempts=5, offer_human_after=2)
    keys = [state.record_failed_attempt() for _ in range(5)]
    assert keys == ["verify_failed", *["verify_failed_offer_human"] * 3, "verify_locked_now"]
    with pytest.raises(ValueError, match="at least 1"):
        CallState(max_attempts=0)


def test_data_needs_a_verified_customer() -> None:
    state = CallState()
    with pytest.raises(DeskError, match="not_verified"):
        state.require_customer()
    with pytest.raises(DeskError, match="not_verified"):
        state.propose("cancel")
    assert verified_state().require_customer() == CUSTOMER


def test_a_stated_phone_only_when_the_call_brought_none() -> None:
    state = CallState()
    state.set_stated_phone("+963991234567")
    assert (state.phone, state.phone_source) == ("+963991234567", "caller")
    state.set_call_phone("+14155550100", is_sip=True, participant_identity="sip_caller")
    with pytest.raises(DeskError, match="phone_from_call"):
        state.set_stated_phone("+963991234567")
    assert state.phone == "+14155550100"
    with pytest.raises(DeskError, match="already_verified"):
        verified_state().set_stated_phone("+963991234567")


# ------------------------------------------------------------------------- turns


def test_a_turn_counts_once_however_many_llm_calls_answer_it() -> None:
    state = CallState()
    assert state.note_user_message("m1", "hello")
    assert not state.note_user_message("m1", "hello")
    assert state.note_user_message("m2", "yes")
    assert state.turn == 2


def test_unclear_turns_are_counted_and_reset_by_a_clear_one() -> None:
    state = CallState(unclear_before_human=2)
    state.note_user_message("m1", "...")
    assert not state.should_offer_human_for_unclear
    state.note_user_message("m2", "mumble", confidence=0.1)
    assert state.should_offer_human_for_unclear
    state.note_user_message("m3", "I need an appointment")
    assert not state.should_offer_human_for_unclear
    assert (state.unclear_turns, state.consecutive_unclear) == (2, 0)
    assert is_unclear("") and is_unclear(" ؟ ") and not is_unclear("نعم") and not is_unclear("yes", 0.9)
    assert is_unclear("yes", 0.2), "a low confidence the STT reported"


def test_an_stt_that_reports_no_confidence_does_not_make_every_turn_unclear() -> None:
    state = CallState()
    for i in range(3):  # LiveKit's SpeechData.confidence defaults to 0.0; the OpenAI STT leaves it there
        state.note_user_message(f"m{i}", "I need an appointment", 0.0)
    assert (state.unclear_turns, state.should_offer_human_for_unclear) == (0, False)


def test_one_acknowledgement_per_turn() -> None:
    state = CallState()
    state.note_user_message("m1", "hi")
    assert state.claim_acknowledgement()
    assert not state.claim_acknowledgement()
    state.note_user_message("m2", "and?")
    assert state.claim_acknowledgement()


# ------------------------------------------------------------------------- confirmation


def test_a_change_is_confirmed_only_in_a_later_turn() -> None:
    state = verified_state()
    state.note_user_message("m1", "book S1")
    state.propose("book", slot=slot(9))
    with pytest.raises(DeskError, match="confirm_same_turn"):
        state.take_confirmable()
    assert state.pending is not None, "a refused confirmation keeps the question open"
    state.note_user_message("m2", "yes")
    pending = state.take_confirmable()
    assert pending.kind == "book" and pending.proposed_turn == 1
    with pytest.raises(DeskError, match="nothing_pending"):
        state.take_confirmable()


def test_declining_clears_the_proposal_and_a_new_one_replaces_the_old() -> None:
    state = verified_state()
    state.propose("book", slot=slot(9))
    later = slot(10)
    state.propose("book", slot=later)
    assert state.pending is not None and state.pending.slot is later
    appointment = Appointment(str(uuid.uuid4()), CUSTOMER.id, later, "scheduled")
    state.propose("cancel", appointment=appointment)
    assert state.decline_pending().appointment is appointment
    assert state.pending is None
    with pytest.raises(DeskError, match="nothing_pending"):
        state.decline_pending()


# ------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("94103", "94103"), ("٩٤١٠٣", "94103"), ("۹۴۱ ۰۳", "94103"), (" 94-103 ", "94103"), ("sw1a 1aa", "SW1A1AA")],
)
def test_zip_codes_are_normalised(raw: str, expected: str) -> None:
    assert arguments.zip_code(raw) == expected


@pytest.mark.parametrize("raw", ["", "12", "941\x0003", "94103\n", "9" * 13, "zip code please", "٩٤١٠٣٩٤١٠٣٩", 94103])
def test_bad_zip_codes_are_refused(raw: object) -> None:
    with pytest.raises(DeskError, match="zip_invalid"):
        arguments.zip_code(raw)


def test_phones_names_emails_reasons_and_dates() -> None:
    assert arguments.phone("٠٩٩١ ٢٣٤ ٥٦٧", "963") == "+963991234567"
    assert arguments.phone("+1 (415) 555-0100", "963") == "+14155550100"
    assert arguments.optional_phone("  ", "963") is None
    for bad in ("12", "call me", "+1 415\t555 0100"):
        with pytest.raises(DeskError, match="phone_invalid"):
            arguments.phone(bad, "963")
    assert arguments.name("  John   Doe ") == "John Doe"
    assert arguments.name("هدى الخطيب") == "هدى الخطيب"
    assert arguments.name("") is None
    for bad in ("x" * 81, "John\x1bDoe", "<script>", "R2D2"):
        with pytest.raises(DeskError, match="name_invalid"):
            arguments.name(bad)
    assert arguments.email(" John.Doe@Example.COM ") == "john.doe@example.com"
    with pytest.raises(DeskError, match="email_invalid"):
        arguments.email("john at example")
    assert arguments.reason(" needs  a new time ") == "needs a new time"
    for bad in ("", "x" * 301, "a\x07b"):
        with pytest.raises(DeskError, match="reason_invalid"):
            arguments.reason(bad)
    assert arguments.date("٢٠٣٠-٠٣-٠٤") == dt.date(2030, 3, 4)
    for bad in ("2030-02-30", "tomorrow", "04/03/2030", "2030-03-04T10:00"):
        with pytest.raises(DeskError, match="date_invalid"):
            arguments.date(bad)


# ------------------------------------------------------------------------- spoken times


NOW = dt.datetime(2030, 3, 4, 6, 0, tzinfo=dt.UTC)  # Monday 09:00 in Damascus (UTC+3)


@pytest.mark.parametrize(
    ("lang", "moment", "expected"),
    [
        ("en", NOW.replace(hour=7, minute=30), "today at 10:30 AM"),
        ("en", NOW + dt.timedelta(days=1, hours=6), "tomorrow at 3 PM"),
        ("en", NOW + dt.timedelta(days=2, hours=3, minutes=15), "Wednesday, March 6 at 12:15 PM"),
        ("en", NOW + dt.timedelta(days=3, minutes=5), "Thursday, March 7 at 9:05 AM"),
        ("ar", NOW.replace(hour=7, minute=30), "اليوم الساعة العاشرة والنصف صباحاً"),
        ("ar", NOW + dt.timedelta(days=1, hours=6), "غداً الساعة الثالثة بعد الظهر"),
        ("ar", NOW + dt.timedelta(days=2, hours=10, minutes=45), "الأربعاء 6 مارس الساعة السابعة و45 دقيقة مساءً"),
    ],
)
def test_times_are_spoken_in_the_clinic_time_zone(lang: str, moment: dt.datetime, expected: str) -> None:
    assert Phrases(lang, "Asia/Damascus").when(moment, NOW) == expected


def test_the_clinic_day_decides_today_and_tomorrow() -> None:
    late = dt.datetime(2030, 3, 4, 22, 30, tzinfo=dt.UTC)  # already Tuesday 01:30 in Damascus
    phrases = Phrases("en", "Asia/Damascus")
    assert phrases.when(late + dt.timedelta(hours=8), late) == "today at 9:30 AM"
    assert Phrases("en", "UTC").when(late + dt.timedelta(hours=8), late) == "tomorrow at 6:30 AM"


def test_the_default_time_zone_is_the_demo_datas() -> None:
    assert Settings().clinic_timezone == DEMO_TIMEZONE


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_calendar_lists_are_complete(lang: str, monkeypatch: pytest.MonkeyPatch) -> None:
    Phrases(lang, "UTC")
    real = prompts.load

    def short_months(language: str, name: str, **fields: object) -> str:
        text = real(language, name, **fields)
        return "\n".join(text.splitlines()[:11]) if name == "months" else text

    monkeypatch.setattr(prompts, "load", short_months)
    with pytest.raises(prompts.PromptError, match="months must have 12 lines"):
        Phrases(lang, "UTC")
