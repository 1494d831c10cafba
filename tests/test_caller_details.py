"""Caller details heard in English and Arabic speech; phones normalised to E.164."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conversation_manager.caller_details import CallerDetails, extract, normalize_phone


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("0991 234 567", "+963991234567"),
        ("0991-234-567", "+963991234567"),
        ("991234567", "+963991234567"),
        ("+963 991 234 567", "+963991234567"),
        ("00963991234567", "+963991234567"),
        ("963991234567", "+963991234567"),
        ("٠٩٩١٢٣٤٥٦٧", "+963991234567"),
        ("۰۹۹۱۲۳۴۵۶۷", "+963991234567"),
        ("+١ (٤١٥) ٥٥٥-٠١٠٠", "+14155550100"),
        ("+1 (415) 555-0100", "+14155550100"),
        ("12", None),
        ("+1234567890123456", None),
        ("", None),
    ],
)
def test_normalize_phone(raw: str, e164: str | None) -> None:
    assert normalize_phone(raw, "963") == e164


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        (
            "Hi, my name is ahmad khalil and my number is 0991 234 567",
            CallerDetails("Ahmad Khalil", "+963991234567", None),
        ),
        ("this is Mary-Jane Watson speaking", CallerDetails("Mary-Jane Watson", None, None)),
        ("you can email me at lina.h@example.com", CallerDetails(None, None, "lina.h@example.com")),
        ("it's john dot smith at example dot com", CallerDetails(None, None, "john.smith@example.com")),
        ("اسمي أحمد محمد ورقمي ٠٩٩١٢٣٤٥٦٧", CallerDetails("أحمد محمد", "+963991234567", None)),
        ("أنا سارة، رقمي 00963-944-111-222", CallerDetails("سارة", "+963944111222", None)),
        ("أنا أريد إلغاء موعدي", CallerDetails(None, None, None)),
        ("I am fine thanks, call me at 0991234567", CallerDetails(None, "+963991234567", None)),
        ("I have 3 appointments on the 12th", CallerDetails(None, None, None)),
    ],
)
def test_extract(said: str, expected: CallerDetails) -> None:
    assert extract(said, "963") == expected


@given(st.text(max_size=400))
def test_extraction_never_fails_on_any_text(text: str) -> None:
    details = extract(text, "963")
    if details.phone is not None:
        assert details.phone.startswith("+") and details.phone[1:].isdigit() and 8 <= len(details.phone) - 1 <= 15
    if details.name is not None:
        assert 0 < len(details.name.split()) <= 3


@given(st.text(alphabet="0123456789٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹ -+()", max_size=30))
def test_normalised_phones_are_always_e164_or_none(raw: str) -> None:
    phone = normalize_phone(raw, "963")
    assert phone is None or (phone.startswith("+") and phone[1:].isascii() and phone[1:].isdigit())


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        # bidirectional marks and isolates around names and numbers (STT, typed chat)
        ("\u200fاسمي هدى الخطيب\u200f", CallerDetails("هدى الخطيب", None, None)),
        ("my name is \u2068Huda Khatib\u2069", CallerDetails("Huda Khatib", None, None)),
        ("ورقمي \u2066+963 944 111 222\u2069", CallerDetails(None, "+963944111222", None)),
        ("رقمي ٠٩٩١\u200f٢٣٤\u200e٥٦٧", CallerDetails(None, "+963991234567", None)),
        # و (and), ف (so), ب (with / in the name of) joined to the phrase or the number
        ("واسمي أحمد ورقمي ٠٩٩١٢٣٤٥٦٧", CallerDetails("أحمد", "+963991234567", None)),
        ("فأنا سارة", CallerDetails("سارة", None, None)),
        ("الحجز باسم أحمد خليل من فضلك", CallerDetails("أحمد خليل", None, None)),
        ("وباسم هدى الخطيب", CallerDetails("هدى الخطيب", None, None)),
        ("اتصل فيني ب٠٩٩١٢٣٤٥٦٧", CallerDetails(None, "+963991234567", None)),
        ("رقمي٠٩٩١٢٣٤٥٦٧", CallerDetails(None, "+963991234567", None)),
        ("أنا اسمي هدى", CallerDetails("هدى", None, None)),
        ("وأنا متصل بخصوص موعدي", CallerDetails(None, None, None)),
    ],
)
def test_extract_arabic_joined_and_bidi(said: str, expected: CallerDetails) -> None:
    assert extract(said, "963") == expected
