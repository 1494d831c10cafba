"""Digits, phone numbers and ZIP codes as callers and speech-to-text write them. Plain functions.

Digits may arrive in ASCII, Arabic-Indic (٠-٩) or Persian (۰-۹) form; phones are normalised
to E.164 however they were grouped (spaces, dashes, dots, brackets, a leading 00 or +, a
national trunk 0). The desk, the tools and the call's record all use these, so a number is
read the same way everywhere.
"""

from __future__ import annotations

import re

_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")


def ascii_digits(text: str) -> str:
    return text.translate(_DIGITS)


def normalize_phone(raw: str, default_country_code: str) -> str | None:
    """E.164 (`+<country><number>`) or None when `raw` cannot be a phone number."""
    text = ascii_digits(raw).strip()
    international = text.startswith(("+", "00"))
    digits = re.sub(r"\D", "", text)
    if text.startswith("00"):
        digits = digits[2:]
    if not international:
        if digits.startswith(default_country_code) and len(digits) > 10:
            pass  # already carries the country code, written without + or 00
        else:
            digits = default_country_code + digits.removeprefix("0")
    if not 8 <= len(digits) <= 15 or digits.startswith("0"):
        return None
    return "+" + digits


def zip_key(value: str) -> str:
    """ "١٢٣ ٤٥" -> "12345", "sw1a-1aa" -> "SW1A1AA": the form ZIP codes are compared in."""
    return re.sub(r"[\s\-]", "", ascii_digits(value)).upper()
