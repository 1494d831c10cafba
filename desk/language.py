"""Which language a caller's turn is in, and whether it asks for another one. Plain functions.

The switch rule (measured on `testkit/language_turns.py` by `bench/language.py`):

- A turn is read word by word by *script*: Arabic letters, Latin letters, or neutral (digits,
  and the handful of words Arabic speakers borrow whole: "ok", "hello", "sorry", "merci"...).
  Latin words that are Arabic written in Latin letters ("baddi", "maw3ed", "shukran") count
  as Arabic.
- A *whole* turn is one language only and carries that language's evidence: at least one of
  its everyday function words ("I", "the", "want", "في", "بدي", "ممكن") or, failing that,
  at least `LONG_TURN_WORDS` words. So a name alone ("أحمد خليل", "Sarah Johnson") or a
  number alone never counts, whatever the script.
- A turn with words of both scripts is *code-mixed* ("بدي appointment يوم الأحد", "my name is
  أحمد") and never switches: the caller is still in the call's language, borrowing a word.
- The STT-reported language is the second signal: when it names a supported language other
  than the script's, the turn is not whole (the two disagree, so nothing switches); a long
  Latin-script turn with no English evidence that the STT hears as Arabic is Arabizi.
- An explicit request ("English please", "ممكن عربي", "do you speak Arabic?") names the
  language wanted and wins over everything else; "I don't speak English" asks for the other.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

LONG_TURN_WORDS = 5
"""A single-script turn this long is a sentence even without a function word (Arabic full
names run to four words: name, father, grandfather, family)."""
ARABIZI_MIN_WORDS = 2
MAX_READ_CHARS = 2_000
"""A turn's language is plain from its start; longer typed turns are read this far (bounded cost)."""

Kind = Literal["whole", "mixed", "neutral"]

_BIDI_CONTROLS = dict.fromkeys(map(ord, "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))
_ARABIC_LETTER = re.compile(r"[\u0621-\u064a\u066e-\u06d3\u06fa-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufefc]")
_LATIN_LETTER = re.compile(r"[A-Za-z\u00c0-\u024f]")
_TOKEN = re.compile(r"[\w']+", re.UNICODE)
_ALEF = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه", "ؤ": "و", "ئ": "ي"})
_ARABIZI_DIGIT_WORD = re.compile(r"^(?=.*[a-z])(?=.*[235789])[a-z235789']{3,}$")
_ORDINAL_OR_TIME = re.compile(r"^\d+(st|nd|rd|th|am|pm|h|min|s)$")
_CLITICS = ("و", "ف", "ب", "ل", "ك")


def strip_controls(text: str) -> str:
    """Without bidirectional marks and isolates (LRM, RLM, ALM, embeddings, isolates)."""
    return text.translate(_BIDI_CONTROLS)


def normalize(text: str) -> str:
    """NFKC, no bidi controls, no tashkeel or tatweel, lower case: the form words are compared in."""
    text = unicodedata.normalize("NFKC", strip_controls(text)).lower().replace("\u0640", "").replace("\u2019", "'")
    return "".join(c for c in text if unicodedata.category(c) != "Mn")


def _ar_key(word: str) -> str:
    return word.translate(_ALEF)


def _words(*groups: str) -> frozenset[str]:
    return frozenset(_ar_key(w) for group in groups for w in group.split())


EN_MARKERS = _words(
    """i i'm i'd i'll i've me my mine you you're your we our us he she it it's they them their the a an
    this that these those there here is are was were be been am do does did don't can can't could would
    will won't should shall have has had want wanted need like to of in on at for from with about and or
    but not no yes what when where which who why how please thanks thank hello hi okay ok sorry speak
    just also some any time today tomorrow morning afternoon evening appointment book cancel change move"""
)
"""English words a sentence rarely goes without (names and numbers never are these)."""

AR_MARKERS = _words(
    """في من على الى إلى عن مع هل ما ماذا شو ايش إيش ليش لماذا كيف كيفك متى امتى وين أين انا أنا انت أنت
    انتي هو هي نحن احنا هذا هذه هاد هادا هذي ذلك يلي اللي الذي التي بدي بدّي أريد اريد ابغى أبغى عايز
    عاوز ممكن لو بس لكن يعني عندي لدي عندك كان كنت صار رح راح سوف يوم موعد موعدي الموعد مواعيد غدا غداً
    بكرا بكرة بكره اليوم بعد قبل الساعة صباحا صباحاً مساء مساءً الصبح نعم لا لأ أيوه ايوه اه إي طيب
    تمام شكرا شكراً مرحبا مرحباً أهلا اهلا السلام عليكم وعليكم فضلك سمحت رقمي اسمي الرمز البريدي
    أحجز احجز حجز الغاء إلغاء ألغي الغي تغيير أغير غير أقدر اقدر تقدر بتقدر تحكي نحكي احكي أحكي تتكلم
    اتكلم أتكلم"""
)
"""Arabic (MSA and Levantine/Gulf/Egyptian everyday) words a sentence rarely goes without."""

BORROWED = _words(
    """ok okay okey hello hi hey bye alo allo aloo halo merci mersi sorry thanks thx yes no yeah yep nope
    please pls sure alright fine cool super"""
    " أوكي اوكي أوكيه اوكيه ألو الو هلو باي ميرسي سوري مرسي"
)
"""Words one language's callers use whole in the other: alone they are no evidence of a language."""
BORROWED_PHRASES = re.compile(r"\b(?:thank you|excuse me)\b")

ARABIZI = _words(
    """ana enta enti inta inti baddi badi bidi biddi bdi ariid ureed abgha 3ayez 3awez mumkin momken mmkn
    shu shou sho eish lesh leish kif keef kifak kifik kaifa wein fein emta imta bukra bokra bukrah ghadan
    elyom alyom ilyom elyoum maw3ed mawed maw3id mawa3id mow3ed 3ndi 3andi 3indi mafi ma3 ma3i ma3ak
    ma3ek 3ala 3an la2 laa na3am aywa aiwa tayeb tayyeb tamam shukran shokran shukrn marhaba marhaban
    mar7aba ahlan alaykum 3alaykum inshallah insha'allah yalla yallah habibi 7abibi wallah wallahi
    khalas 5alas ismi esmi rakmi ra2mi raqmi saa3a sa3a ya3ni ya3ne lakin kaman kamen hek heik hal2a
    halla2 al7in hala2 e7jez a7jez ahjez 7ajz elgha2 alghi ghayyer ghayer ba3d 2abl te7ki ne7ki"""
)
"""Arabic written in Latin letters (chat and some STT output); digits stand for letters (3=ع, 7=ح)."""

_LANGUAGE_NAMES = {
    "en": _words(
        "english inglish engleesh inglizi ingilizi انجليزي إنجليزي انكليزي إنكليزي الإنجليزية الانجليزية "
        "انجليزية الانكليزية انجلش إنجلش"
    ),
    "ar": _words("arabic arabi 3arabi arabe 3arabe عربي العربي العربية عربية"),
}
"""How callers name each language (in English, Arabic and Arabizi), clitics (بال-) aside."""

_REQUEST_CUES = _words(
    """speak talk continue switch change answer reply respond use prefer in please pls can could do would
    let's lets want like someone anyone"""
    " ممكن بدي أريد اريد تحكي بتحكي نحكي احكي أحكي تتكلم بتتكلم نتكلم اتكلم أتكلم تكلم تكلمني كلمني "
    "حكيني لو فضلك سمحت رد ردي جاوب في فيه حدا احد أحد يحكي يتكلم mumkin momken baddi bidi te7ki ne7ki"
)
_NEGATIONS = _words("don't dont not can't cannot no never ما مش مو لا ماني مابعرف مابحكي بعرفش")


@dataclass(frozen=True)
class TurnReading:
    """What one caller turn says about its language."""

    language: str | None
    """The turn's language (the majority script of a mixed turn), None for names and numbers only."""
    kind: Kind
    request: str | None = None
    """A language the caller explicitly asked for, if any."""

    @property
    def whole(self) -> bool:
        return self.kind == "whole"


@dataclass(frozen=True)
class _Counts:
    ar: int = 0
    ar_markers: int = 0
    en: int = 0
    en_markers: int = 0
    arabizi: int = 0


def _marker(word: str, markers: frozenset[str]) -> bool:
    if word in markers:
        return True
    # Arabic attaches و (and), ف (so), ب (with/in), ل (for), ك (like) to the next word.
    return len(word) > 2 and word.startswith(_CLITICS) and word[1:] in markers


def _count(words: Sequence[str]) -> _Counts:
    ar = ar_markers = en = en_markers = arabizi = 0
    for raw in words:
        word = _ar_key(raw)
        if word.isdigit() or _ORDINAL_OR_TIME.match(word):
            continue
        if word in BORROWED:
            continue
        if _ARABIC_LETTER.search(word):
            ar += 1
            ar_markers += _marker(word, AR_MARKERS)
        elif _LATIN_LETTER.search(word) or _ARABIZI_DIGIT_WORD.match(word):
            if word in ARABIZI or _ARABIZI_DIGIT_WORD.match(word):
                arabizi += 1
            else:
                en += 1
                en_markers += word in EN_MARKERS
    return _Counts(ar, ar_markers, en, en_markers, arabizi)


def read_turn(text: str, stt_language: str | None = None, languages: Sequence[str] = ("en", "ar")) -> TurnReading:
    """The language of one final transcript. See the module doc for the rule."""
    normalized = normalize(text[:MAX_READ_CHARS])
    request = requested_language(_TOKEN.findall(normalized), languages)
    c = _count(_TOKEN.findall(BORROWED_PHRASES.sub(" ", normalized)))
    stt = (stt_language or "").split("-")[0].lower() or None
    if c.ar and (c.en or c.arabizi):
        return TurnReading("ar" if c.ar >= c.en + c.arabizi else "en", "mixed", request)
    if c.ar:
        reading = TurnReading("ar", "whole" if c.ar_markers or c.ar >= LONG_TURN_WORDS else "neutral", request)
    elif c.arabizi and not c.en_markers:
        long_enough = c.arabizi >= ARABIZI_MIN_WORDS or c.arabizi + c.en >= LONG_TURN_WORDS
        reading = TurnReading("ar", "whole" if long_enough else "neutral", request)
    elif c.arabizi >= ARABIZI_MIN_WORDS and c.arabizi > c.en_markers:
        reading = TurnReading("ar", "mixed", request)
    elif c.arabizi:
        reading = TurnReading("en", "mixed", request)
    elif c.en:
        whole = c.en_markers > 0 or c.en >= LONG_TURN_WORDS
        if not c.en_markers and c.en >= LONG_TURN_WORDS and stt == "ar" and "ar" in languages:
            return TurnReading("ar", "whole", request)  # Arabizi the word list does not know
        reading = TurnReading("en", "whole" if whole else "neutral", request)
    else:
        return TurnReading(None, "neutral", request)
    if reading.whole and stt in languages and stt != reading.language:
        return TurnReading(reading.language, "mixed", request)  # the two signals disagree
    return reading


def requested_language(words: Sequence[str], languages: Sequence[str]) -> str | None:
    """The language a turn explicitly asks for ("English please", "بتحكي عربي؟"), or None.

    A language is asked for when the turn names it next to a request word, or names nothing
    else; a negated name ("I don't speak English") asks for the other language when the
    deployment has exactly one other.
    """
    keys = [_ar_key(w) for w in words]
    for index, word in enumerate(keys):
        named = _named_language(word)
        if named is None:
            continue
        near = keys[max(0, index - 4) : index] + keys[index + 1 : index + 3]
        content = [k for k in keys if not k.isdigit()]
        if any(k in _NEGATIONS for k in keys[max(0, index - 3) : index]):
            others = [lang for lang in languages if lang != named]
            return others[0] if len(others) == 1 else None
        if named in languages and (len(content) <= 2 or any(k in _REQUEST_CUES for k in near)):
            return named
    return None


def _named_language(word: str) -> str | None:
    for language, names in _LANGUAGE_NAMES.items():
        if word in names:
            return language
        for prefix in ("بال", "عال", "ال", "ب"):
            rest = word[len(prefix) :] if word.startswith(prefix) else ""
            if rest and (rest in names or "ال" + rest in names):
                return language
    return None
