"""Caller name, phone and email from what the caller said, in English and Arabic.

Plain functions, no I/O. Phones are read by the domain's one rule (`desk.phone`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from desk.language import strip_controls
from desk.phone import ascii_digits, normalize_phone

_PHONE_CANDIDATE = re.compile(r"(?<![\w+])(?:\+|00)?\d[\d\s\-.()/]{5,}\d(?!\w)")
# Each part starts where a word starts and is bounded (RFC 5321 lengths), so one turn of
# 32,000 word characters costs one pass, not one pass per character (seconds of a blocked
# event loop with unbounded `[\w.+-]+`).
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}", re.UNICODE)
_SPOKEN_EMAIL = re.compile(
    r"(?<![\w+-])([\w+-]{1,64}(?:\s+dot\s+[\w+-]{1,64}){0,8})\s+at\s+([\w-]{1,63}(?:\s+dot\s+[\w-]{1,63}){1,8})\b",
    re.IGNORECASE | re.UNICODE,
)
_SPOKEN_DOT = re.compile(r"\s+dot\s+", re.IGNORECASE)
MAX_NAME_WORDS = 3

_EN_NAME = re.compile(
    r"\b(?:my name is|my name's|this is|call me|i am called|name is)\s+(?P<name>[^\W\d_]+(?:[ '\-][^\W\d_]+){0,5})",
    re.IGNORECASE | re.UNICODE,
)
_AR_NAME = re.compile(
    # "و" (and) or "ف" (so) may be joined to the phrase ("واسمي"); "باسم" is "in the name of".
    r"(?:^|\s|[،,.!؟?:])(?:[وف]?(?:اسمي|إسمي|معك|معاك|أنا|انا)|[وف]?ب(?:اسم|إسم))\s+"
    r"(?P<name>[^\W\d_]+(?:\s+[^\W\d_]+){0,5})",
    re.UNICODE,
)
_LETTER_THEN_DIGIT = re.compile(r"([^\W\d_])(?=\d)")
"""An Arabic clitic or word joined to a number ("ب0991...", "رقمي٠٩٩١..."): split before reading it."""
_NAME_STOPWORDS = frozenset(
    (
        "and but calling here to from with about i my the a an please because who want need would "
        "at on back later tomorrow today now fine good ok okay not just also so speaking looking "
        "trying wondering your "
        "و أريد اريد بدي بدّي عايز عاوز ابغى أبغى أحتاج احتاج أتصل اتصل متصل بخير هنا من في على عن "
        "لا نعم مش ما كنت أود اود أرغب ارغب اسمي إسمي"
    ).split()
)
_CONTACT_WORDS_AR = ("رقم", "ايميل", "إيميل", "بريد", "هاتف", "جوال", "موبايل", "تلفون", "تليفون")


def _ends_name(word: str) -> bool:
    """Stop words, and Arabic "و" + stop word or contact word ("ورقمي": "and my number")."""
    lowered = word.lower()
    if lowered in _NAME_STOPWORDS or lowered == "و":
        return True
    rest = word[1:]
    return word.startswith("و") and (rest in _NAME_STOPWORDS or rest.startswith(_CONTACT_WORDS_AR))


@dataclass(frozen=True)
class CallerDetails:
    name: str | None = None
    phone: str | None = None
    email: str | None = None

    def merged_over(self, fallback: CallerDetails) -> CallerDetails:
        """These values where set, `fallback`'s elsewhere."""
        return CallerDetails(
            name=self.name or fallback.name,
            phone=self.phone or fallback.phone,
            email=self.email or fallback.email,
        )


def find_phone(text: str, default_country_code: str) -> str | None:
    for match in _PHONE_CANDIDATE.finditer(_LETTER_THEN_DIGIT.sub(r"\1 ", ascii_digits(text))):
        if phone := normalize_phone(match.group(), default_country_code):
            return phone
    return None


def find_email(text: str) -> str | None:
    if match := _EMAIL.search(text):
        return match.group().strip(".").lower()
    if match := _SPOKEN_EMAIL.search(text):
        local, domain = (_SPOKEN_DOT.sub(".", part) for part in match.groups())
        return f"{local}@{domain}".lower()
    return None


def _clean_name(words: list[str]) -> str | None:
    kept: list[str] = []
    for word in words:
        if _ends_name(word):
            break
        kept.append(word)
        if len(kept) == MAX_NAME_WORDS:
            break
    if not kept:
        return None
    return " ".join(w if not w.isascii() else w[:1].upper() + w[1:] for w in kept)


def find_name(text: str) -> str | None:
    for pattern in (_EN_NAME, _AR_NAME):
        at = 0
        # overlapping: in "أنا اسمي هدى" the name follows the second phrase, inside the first match
        while match := pattern.search(text, at):
            if name := _clean_name(re.split(r"\s+", match.group("name").strip())):
                return name
            at = max(at + 1, match.start("name") - 1)
    return None


def extract(text: str, default_country_code: str) -> CallerDetails:
    """What one user turn reveals about the caller (fields it does not reveal are None).

    Bidirectional marks and isolates (which STT and typed Arabic chat often carry around
    names and numbers) are removed first."""
    text = strip_controls(text)
    return CallerDetails(
        name=find_name(text),
        phone=find_phone(text, default_country_code),
        email=find_email(text),
    )


def accumulate(known: CallerDetails, turn: CallerDetails) -> CallerDetails:
    """Later turns correct earlier ones ("sorry, my name is ...")."""
    return replace(
        known,
        name=turn.name or known.name,
        phone=turn.phone or known.phone,
        email=turn.email or known.email,
    )
