"""Checks and normalisation of what the LLM passes to tools. Plain Python.

Everything is stripped and length-limited, control characters are refused, and digits
in Arabic-Indic (٠-٩) or Persian (۰-۹) form are accepted and turned into ASCII. A bad
value is a `DeskError` naming the prompt the caller should hear.
"""

from __future__ import annotations

import datetime as dt
import re

from desk.call_state import DeskError, has_control_chars
from desk.phone import ascii_digits, normalize_phone, zip_key

MAX_ZIP = 12
MAX_NAME = 80
MAX_EMAIL = 254
MAX_PHONE = 32
MAX_REASON = 300
MAX_DATE = 20

_ZIP = re.compile(r"[0-9A-Z]{3,10}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.]+(?:\.[^@\s.]+)+")
_NAME = re.compile(r"[^\W\d_]+(?:[ '.\-][^\W\d_]*)*", re.UNICODE)


def _text(value: object, limit: int, error: str) -> str:
    if not isinstance(value, str) or len(value) > limit * 2 or has_control_chars(value):
        raise DeskError(error)
    text = " ".join(value.split())
    if len(text) > limit:
        raise DeskError(error)
    return text


def zip_code(value: object) -> str:
    """ "١٢٣ ٤٥" -> "12345"; upper-cased, spaces and dashes dropped."""
    text = zip_key(_text(value, MAX_ZIP, "zip_invalid"))
    if not _ZIP.fullmatch(text):
        raise DeskError("zip_invalid")
    return text


def phone(value: object, default_country_code: str) -> str:
    normalized = normalize_phone(_text(value, MAX_PHONE, "phone_invalid"), default_country_code)
    if normalized is None:
        raise DeskError("phone_invalid")
    return normalized


def optional_phone(value: object, default_country_code: str) -> str | None:
    if isinstance(value, str) and not value.strip():
        return None
    return phone(value, default_country_code)


def name(value: object) -> str | None:
    text = _text(value, MAX_NAME, "name_invalid")
    if not text:
        return None
    if not _NAME.fullmatch(text):
        raise DeskError("name_invalid")
    return text


def email(value: object) -> str | None:
    text = _text(value, MAX_EMAIL, "email_invalid").replace(" ", "")
    if not text:
        return None
    if not _EMAIL.fullmatch(text) or not text.isprintable():  # invisible marks (U+202E, U+200B) spoof addresses
        raise DeskError("email_invalid")
    return text.lower()


def reason(value: object) -> str:
    text = _text(value, MAX_REASON, "reason_invalid")
    if not text:
        raise DeskError("reason_invalid")
    return text


def confirmation(value: object) -> bool:
    """A JSON boolean and nothing else: "t", "yes", 1 or a repaired fragment is not a caller's yes."""
    if value is True or value is False:
        return value
    raise DeskError("confirmation_not_boolean")


def date(value: object) -> dt.date:
    """An ISO date, YYYY-MM-DD (Arabic-Indic digits allowed)."""
    text = ascii_digits(_text(value, MAX_DATE, "date_invalid"))
    if not re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}", text):
        raise DeskError("date_invalid")
    try:
        return dt.date(*(int(part) for part in text.split("-")))
    except ValueError:
        raise DeskError("date_invalid") from None
