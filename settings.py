"""Worker configuration: every setting from the environment (and `.env`), validated once.

`Settings.from_env()` collects *every* problem before failing, so an operator fixes a
broken deployment in one pass instead of one restart per variable. Secret values are
never part of an error message or of `repr()`.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import load_dotenv

from desk import week
from desk.phone import normalize_phone

Mode = Literal["dev", "start", "console", "connect", "tools"]
"""`tools` is any non-worker use (operator CLI, tests): nothing LiveKit-related is required."""

SUPPORTED_LANGUAGES = ("en", "ar")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOCAL_API_KEY_PLACEHOLDER = "local-no-key"
"""Sent as the OpenAI key when only OPENAI_BASE_URL is set: local servers ignore it,
but the OpenAI SDK refuses to start without one."""

BROWSER_CALLER_ATTRIBUTES = ("phone",)
"""Participant attributes the worker reads from a browser caller, each only when the deployment
names it in TRUSTED_CALLER_ATTRIBUTES (its token server sets it; the caller cannot change it)."""
TAVUS_MAX_CALL_DURATION = 3600.0
"""Tavus's documented maximum for a conversation's `max_call_duration`."""
CONSOLE_TOKEN_MIN_CHARS = 16
APP_DIR_NAME = "callcenter-voice-agent"

T = TypeVar("T")


def default_data_dir(env: Mapping[str, str]) -> Path:
    """Where records and journals live when DATA_DIR is not set, whatever the current directory:
    `$XDG_DATA_HOME/callcenter-voice-agent`, else `~/.local/share/callcenter-voice-agent`."""
    xdg = env.get("XDG_DATA_HOME", "").strip()
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path(env.get("HOME") or Path.home()) / ".local" / "share"
    return base / APP_DIR_NAME


class SettingsError(Exception):
    """Raised with one line per invalid or missing setting."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    # LiveKit
    livekit_url: str = ""
    livekit_api_key: str = field(default="", repr=False)
    livekit_api_secret: str = field(default="", repr=False)
    # OpenAI or any OpenAI-compatible endpoint
    openai_api_key: str = field(default="", repr=False)
    openai_base_url: str | None = None
    llm_model: str = "gpt-4.1-mini"
    stt_model: str = "gpt-4o-mini-transcribe"
    stt_streaming: bool = True
    """Transcribe over the realtime API while the caller speaks, instead of one request per utterance."""
    tts_model: str = "gpt-4o-mini-tts"
    tts_voice: str = "alloy"
    tts_voice_overrides: tuple[tuple[str, str], ...] = ()
    """(language, voice) pairs from OPENAI_TTS_VOICE_<LANG>: a voice for one language only."""
    # Conversation
    language: str = "en"
    """The default language: the first of `languages`."""
    languages: tuple[str, ...] = ("en", "ar")
    """Every language one worker serves (AGENT_LANGUAGES, or AGENT_LANGUAGE alone)."""
    assistant_name: str = "Sara"
    company_name: str = "Nour Clinic"
    default_country_code: str = "963"
    clinic_timezone: str = "Asia/Damascus"
    clinic_open_days: frozenset[int] = week.SUNDAY_TO_THURSDAY
    """`date.weekday()` numbers; the default follows the clinic's time zone (desk/week.py)."""
    max_verification_attempts: int = 3
    verification_window: int = 3600
    verification_phone_limit: int = 6
    verification_source_limit: int = 10
    keypad_timeout: float = 5.0
    typed_chat: bool = False
    typed_chat_max_chars: int = 500
    acknowledgement_delay: float = 1.0
    still_working_after: float = 8.0
    summary_timeout: float = 3.0
    llm_history_messages: int = 20
    escalation_phone_number: str | None = None
    """E.164 (`+963112223344`) or a SIP URI (`sip:desk@pbx.example.com`), validated at start-up."""
    trusted_caller_attributes: frozenset[str] = frozenset()
    """Browser callers' attributes taken as true (see BROWSER_CALLER_ATTRIBUTES); a SIP caller's
    `sip.phoneNumber` is set by LiveKit SIP and always trusted."""
    sip_outbound_trunk_id: str | None = None
    transfer_mode: str = "cold"
    """`warm` (hold, a briefed human, a callback if nobody answers; needs the outbound trunk) or `cold`."""
    transfer_ringing_timeout: float = 25.0
    # Storage
    supabase_url: str | None = None
    supabase_service_role_key: str = field(default="", repr=False)
    data_dir: Path = field(default_factory=lambda: default_data_dir(os.environ))
    journal_dir: Path = field(default_factory=lambda: default_data_dir(os.environ) / "journal")
    journal_retention_days: float = 14.0
    single_machine: bool = False
    """`start` with the embedded SQLite store: only when one machine runs every worker."""
    journal_fallback_dir: Path = Path("/var/tmp/call-agent-journal")
    """Where a call whose journal disk failed writes its whole journal at the end if the store
    cannot take the record (README "Recovery"); replay reads it too."""
    # Tavus avatar
    tavus_api_key: str = field(default="", repr=False)
    tavus_face_id: str | None = None
    tavus_pal_id: str | None = None
    avatar_join_timeout: float = 6.0
    avatar_left_early_window: float = 20.0
    avatar_max_call_duration: float = 3600.0
    avatar_participant_left_timeout: float = 10.0
    avatar_late_join_window: float = 15.0
    """Seconds after AVATAR_JOIN_TIMEOUT in which a late replica still takes over (0: none)."""
    avatar_playout_latency: float = 0.5
    """Seconds Tavus buffers audio before its face plays it (the early-leave replay allows for it)."""
    # Turn handling (measured with bench/bargein.py; README "Turn handling and barge-in")
    turn_detection: str = "rules"
    vad_min_silence: float = 0.2
    endpointing_min_delay: float = 0.2
    endpointing_max_delay: float = 2.5
    interruption_min_duration: float = 0.2
    interruption_min_words: int = 0
    false_interruption_timeout: float = 1.0
    resume_false_interruption: bool = True
    preemptive_generation: bool = True
    avatar_interruption_min_duration: float = 0.8
    # Worker scaling and time budgets
    agent_name: str = ""
    load_threshold: float | None = None
    """None leaves LiveKit's own (0.7 in start); LiveKit Cloud hosting ignores a custom one."""
    num_idle_processes: int | None = None
    job_memory_warn_mb: float = 1000.0
    job_memory_limit_mb: float = 0.0
    shutdown_process_timeout: float = 10.0
    session_end_timeout: float = 30.0
    flush_timeout: float = 8.0
    store_timeout: float = 5.0
    slow_turn_ms: float = 2000.0
    log_level: str | None = None
    """None keeps LiveKit's default: DEBUG in dev and console, INFO in start."""
    log_transcripts: bool = False
    """Keep the transcript, tool-argument and tool-output fields of LiveKit's log lines (logs.py)."""
    # Operator console (`python -m conversation_manager serve`)
    console_host: str = "127.0.0.1"
    console_port: int = 8089
    console_token: str = field(default="", repr=False)
    """The operator credential; required to bind anywhere but loopback, checked on every request when set."""

    @property
    def record_retry_timeout(self) -> float:
        """What the shutdown window leaves after the summary and the first write (less a 2 s margin):
        the time a record with no journal anywhere gets for retries before the process exits."""
        return max(0.0, self.session_end_timeout - self.summary_timeout - self.flush_timeout - 2.0)

    @property
    def uses_supabase(self) -> bool:
        return self.supabase_url is not None

    @property
    def tavus_enabled(self) -> bool:
        return bool(self.tavus_api_key and self.tavus_face_id)

    def voice_for(self, language: str) -> str:
        """The TTS voice for `language`: its override, else OPENAI_TTS_VOICE."""
        return dict(self.tts_voice_overrides).get(language, self.tts_voice)

    @property
    def openai_key_for_client(self) -> str:
        return self.openai_api_key or LOCAL_API_KEY_PLACEHOLDER

    def secret_values(self) -> list[str]:
        """The configured secrets, so logs and stored records can be checked against them."""
        return [getattr(self, f.name) for f in fields(self) if not f.repr and getattr(self, f.name)]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, mode: Mode = "tools") -> Settings:
        """Read and validate; raises `SettingsError` listing every problem found."""
        reader = _Reader(os.environ if env is None else env)
        data_dir = Path(reader.text("DATA_DIR")) if reader.text("DATA_DIR") else default_data_dir(reader.env)
        country_code = reader.country_code("DEFAULT_COUNTRY_CODE", cls.default_country_code)
        languages = reader.languages("AGENT_LANGUAGES", "AGENT_LANGUAGE", SUPPORTED_LANGUAGES, cls.languages)
        s = cls(
            livekit_url=reader.text("LIVEKIT_URL"),
            livekit_api_key=reader.text("LIVEKIT_API_KEY"),
            livekit_api_secret=reader.text("LIVEKIT_API_SECRET"),
            openai_api_key=reader.text("OPENAI_API_KEY"),
            openai_base_url=reader.url("OPENAI_BASE_URL"),
            llm_model=reader.text("OPENAI_LLM_MODEL", cls.llm_model),
            stt_model=reader.text("OPENAI_STT_MODEL", cls.stt_model),
            stt_streaming=reader.choice("STT_STREAMING", ("true", "false"), str(cls.stt_streaming).lower()) == "true",
            tts_model=reader.text("OPENAI_TTS_MODEL", cls.tts_model),
            tts_voice=reader.text("OPENAI_TTS_VOICE", cls.tts_voice),
            tts_voice_overrides=tuple(
                (lang, voice)
                for lang in SUPPORTED_LANGUAGES
                if (voice := reader.text(f"OPENAI_TTS_VOICE_{lang.upper()}"))
            ),
            language=languages[0],
            languages=languages,
            assistant_name=reader.text("ASSISTANT_NAME", cls.assistant_name),
            company_name=reader.text("COMPANY_NAME", cls.company_name),
            default_country_code=country_code,
            clinic_timezone=(timezone := reader.timezone("CLINIC_TIMEZONE", cls.clinic_timezone)),
            clinic_open_days=reader.open_days("CLINIC_OPEN_DAYS", week.default_open_days(timezone)),
            escalation_phone_number=reader.transfer_target("ESCALATION_PHONE_NUMBER", country_code),
            trusted_caller_attributes=reader.names("TRUSTED_CALLER_ATTRIBUTES", BROWSER_CALLER_ATTRIBUTES),
            sip_outbound_trunk_id=(trunk := reader.text("SIP_OUTBOUND_TRUNK_ID") or None),
            transfer_mode=reader.choice("TRANSFER_MODE", ("warm", "cold"), "warm" if trunk else "cold"),
            transfer_ringing_timeout=reader.number("TRANSFER_RINGING_TIMEOUT", cls.transfer_ringing_timeout),
            max_verification_attempts=reader.integer("MAX_VERIFICATION_ATTEMPTS") or cls.max_verification_attempts,
            verification_window=reader.positive_integer("VERIFICATION_WINDOW", cls.verification_window, minimum=60),
            verification_phone_limit=reader.positive_integer("VERIFICATION_PHONE_LIMIT", cls.verification_phone_limit),
            verification_source_limit=reader.positive_integer(
                "VERIFICATION_SOURCE_LIMIT", cls.verification_source_limit
            ),
            keypad_timeout=reader.number("KEYPAD_TIMEOUT", cls.keypad_timeout),
            typed_chat=reader.choice("TYPED_CHAT", ("true", "false"), "false") == "true",
            typed_chat_max_chars=reader.positive_integer("TYPED_CHAT_MAX_CHARS", cls.typed_chat_max_chars),
            acknowledgement_delay=reader.number("ACK_DELAY", cls.acknowledgement_delay),
            still_working_after=reader.number("STILL_WORKING_AFTER", cls.still_working_after),
            summary_timeout=reader.number("SUMMARY_TIMEOUT", cls.summary_timeout),
            llm_history_messages=reader.integer("LLM_HISTORY_MESSAGES") or cls.llm_history_messages,
            supabase_url=reader.url("SUPABASE_URL"),
            supabase_service_role_key=reader.text("SUPABASE_SERVICE_ROLE_KEY"),
            data_dir=data_dir,
            journal_dir=Path(reader.text("JOURNAL_DIR")) if reader.text("JOURNAL_DIR") else data_dir / "journal",
            journal_retention_days=reader.number("JOURNAL_RETENTION_DAYS", cls.journal_retention_days),
            single_machine=reader.flag("SINGLE_MACHINE_DEPLOYMENT"),
            journal_fallback_dir=Path(reader.text("JOURNAL_FALLBACK_DIR") or cls.journal_fallback_dir),
            tavus_api_key=reader.text("TAVUS_API_KEY"),
            tavus_face_id=reader.text("TAVUS_FACE_ID") or reader.text("TAVUS_REPLICA_ID") or None,
            tavus_pal_id=reader.text("TAVUS_PAL_ID") or reader.text("TAVUS_PERSONA_ID") or None,
            avatar_join_timeout=reader.number("AVATAR_JOIN_TIMEOUT", cls.avatar_join_timeout),
            avatar_left_early_window=reader.number("AVATAR_LEFT_EARLY_WINDOW", cls.avatar_left_early_window),
            avatar_max_call_duration=reader.number(
                "AVATAR_MAX_CALL_DURATION", cls.avatar_max_call_duration, maximum=TAVUS_MAX_CALL_DURATION
            ),
            avatar_participant_left_timeout=reader.number(
                "AVATAR_PARTICIPANT_LEFT_TIMEOUT", cls.avatar_participant_left_timeout
            ),
            avatar_late_join_window=reader.number("AVATAR_LATE_JOIN_WINDOW", cls.avatar_late_join_window),
            avatar_playout_latency=reader.number("AVATAR_PLAYOUT_LATENCY", cls.avatar_playout_latency, maximum=5.0),
            turn_detection=reader.choice("TURN_DETECTION", ("rules", "model", "vad"), cls.turn_detection),
            vad_min_silence=reader.number("VAD_MIN_SILENCE", cls.vad_min_silence),
            endpointing_min_delay=reader.number("ENDPOINTING_MIN_DELAY", cls.endpointing_min_delay),
            endpointing_max_delay=reader.number("ENDPOINTING_MAX_DELAY", cls.endpointing_max_delay),
            interruption_min_duration=reader.number("INTERRUPTION_MIN_DURATION", cls.interruption_min_duration),
            interruption_min_words=reader.integer("INTERRUPTION_MIN_WORDS") or cls.interruption_min_words,
            false_interruption_timeout=reader.number("FALSE_INTERRUPTION_TIMEOUT", cls.false_interruption_timeout),
            resume_false_interruption=reader.flag("RESUME_FALSE_INTERRUPTION", default=True),
            preemptive_generation=reader.flag("PREEMPTIVE_GENERATION", default=True),
            avatar_interruption_min_duration=reader.number(
                "AVATAR_INTERRUPTION_MIN_DURATION", cls.avatar_interruption_min_duration
            ),
            agent_name=reader.text("AGENT_NAME"),
            load_threshold=reader.number("LOAD_THRESHOLD", 0.0, maximum=1.0) if reader.text("LOAD_THRESHOLD") else None,
            num_idle_processes=reader.integer("NUM_IDLE_PROCESSES"),
            job_memory_warn_mb=reader.number("JOB_MEMORY_WARN_MB", cls.job_memory_warn_mb),
            job_memory_limit_mb=reader.number("JOB_MEMORY_LIMIT_MB", cls.job_memory_limit_mb),
            shutdown_process_timeout=reader.number("SHUTDOWN_PROCESS_TIMEOUT", cls.shutdown_process_timeout),
            session_end_timeout=reader.number("SESSION_END_TIMEOUT", cls.session_end_timeout),
            flush_timeout=reader.number("FLUSH_TIMEOUT", cls.flush_timeout),
            store_timeout=reader.number("STORE_TIMEOUT", cls.store_timeout),
            slow_turn_ms=reader.number("SLOW_TURN_MS", cls.slow_turn_ms),
            log_level=reader.choice("LOG_LEVEL", LOG_LEVELS, "INFO", upper=True) if reader.text("LOG_LEVEL") else None,
            log_transcripts=reader.choice("LOG_TRANSCRIPTS", ("true", "false"), "false") == "true",
            console_host=reader.text("CONSOLE_HOST", cls.console_host),
            console_port=reader.integer("CONSOLE_PORT") or cls.console_port,
            console_token=reader.text("CONSOLE_TOKEN"),
        )
        reader.problems.extend(_cross_field_problems(s, mode))
        if reader.problems:
            raise SettingsError(reader.problems)
        return s


def _cross_field_problems(s: Settings, mode: Mode) -> list[str]:
    problems: list[str] = []
    if mode in ("dev", "start", "connect"):
        for name, value, hint in (
            ("LIVEKIT_URL", s.livekit_url, "your LiveKit server URL, e.g. wss://<project>.livekit.cloud"),
            ("LIVEKIT_API_KEY", s.livekit_api_key, "the API key of your LiveKit project"),
            ("LIVEKIT_API_SECRET", s.livekit_api_secret, "the API secret of your LiveKit project"),
        ):
            if not value:
                problems.append(f"{name} is not set: set it to {hint} (needed by `{mode}`)")
        if s.livekit_url and not s.livekit_url.startswith(("ws://", "wss://", "http://", "https://")):
            problems.append("LIVEKIT_URL must start with wss:// (or ws:// for a local server)")
    if mode != "tools" and not s.openai_api_key and not s.openai_base_url:
        problems.append(
            "OPENAI_API_KEY is not set: set it to your OpenAI key, or set OPENAI_BASE_URL "
            "to an OpenAI-compatible server"
        )
    if s.supabase_url and not s.supabase_service_role_key:
        problems.append(
            "SUPABASE_SERVICE_ROLE_KEY is not set but SUPABASE_URL is: set it to the project's "
            "service-role key, or unset SUPABASE_URL to use the embedded SQLite store"
        )
    if s.supabase_service_role_key and not s.supabase_url:
        problems.append(
            "SUPABASE_URL is not set but SUPABASE_SERVICE_ROLE_KEY is: set it to https://<project>.supabase.co"
        )
    if mode == "start" and not s.uses_supabase and not s.single_machine:
        problems.append(
            "SUPABASE_URL is not set: `start` is production, where every worker must write to the same "
            "Supabase; set SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY, or set SINGLE_MACHINE_DEPLOYMENT=true "
            f"if one machine runs every worker and keeps the records and appointments under DATA_DIR ({s.data_dir})"
        )
    if s.console_token and len(s.console_token) < CONSOLE_TOKEN_MIN_CHARS:
        problems.append(
            f"CONSOLE_TOKEN must be at least {CONSOLE_TOKEN_MIN_CHARS} characters (e.g. `openssl rand -hex 24`)"
        )
    if not 1 <= s.console_port <= 65535:
        problems.append(f"CONSOLE_PORT must be 1..65535, got {s.console_port}")
    if s.tavus_api_key and not s.tavus_face_id:
        problems.append("TAVUS_FACE_ID is not set but TAVUS_API_KEY is: set the Tavus replica (face) id")
    if s.still_working_after <= s.acknowledgement_delay:
        problems.append(
            f"STILL_WORKING_AFTER ({s.still_working_after:g}) must be above ACK_DELAY "
            f"({s.acknowledgement_delay:g}): the 'still working' line comes after the acknowledgement"
        )
    if s.transfer_mode == "warm" and not s.sip_outbound_trunk_id:
        problems.append(
            "TRANSFER_MODE is warm but SIP_OUTBOUND_TRUNK_ID is not set: set the LiveKit outbound trunk "
            "the human colleague is called through, or set TRANSFER_MODE=cold"
        )
    if not 5.0 <= s.transfer_ringing_timeout <= 120.0:
        problems.append(
            f"TRANSFER_RINGING_TIMEOUT ({s.transfer_ringing_timeout:g}) must be 5-120 seconds: how long a caller "
            "on hold waits for a colleague to answer"
        )
    if s.keypad_timeout < 1.0:
        problems.append(f"KEYPAD_TIMEOUT ({s.keypad_timeout:g}) must be at least 1 second: callers pause between keys")
    if s.endpointing_max_delay < s.endpointing_min_delay:
        problems.append(
            f"ENDPOINTING_MAX_DELAY ({s.endpointing_max_delay:g}) must not be below ENDPOINTING_MIN_DELAY "
            f"({s.endpointing_min_delay:g}): an unfinished-sounding turn waits the longer delay"
        )
    if s.summary_timeout + s.flush_timeout >= s.session_end_timeout:
        problems.append(
            f"SUMMARY_TIMEOUT + FLUSH_TIMEOUT ({s.summary_timeout:g} + {s.flush_timeout:g}) must be below "
            f"SESSION_END_TIMEOUT ({s.session_end_timeout:g}) so the end-of-call record fits the shutdown window"
        )
    return problems


def startup_warnings(s: Settings, mode: Mode) -> list[str]:
    """What may work here but not for real callers: one line each, printed at start-up."""
    warnings: list[str] = []
    if mode in ("dev", "start", "connect") and s.tavus_enabled and s.livekit_url:
        host = urlsplit(s.livekit_url).hostname or ""
        if not internet_reachable_host(host):
            warnings.append(
                f"LIVEKIT_URL's host {host!r} is not reachable from the internet, but Tavus's servers join "
                "the room at LIVEKIT_URL themselves: every avatar would end in join_timeout. Use a public "
                "wss:// URL (LiveKit Cloud, or your server's public name), or unset TAVUS_API_KEY"
            )
    return warnings


def internet_reachable_host(host: str) -> bool:
    """False for loopback, private, link-local and reserved addresses and for names that only
    resolve inside a network (single labels such as a container name, .local, .internal, ...)."""
    host = host.strip("[]").lower().rstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." in host and not host.endswith(_PRIVATE_SUFFIXES) and host != "localhost"
    return address.is_global


_PRIVATE_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa", ".localdomain", ".intranet", ".corp")


class _Reader:
    """Parses raw strings and records a readable problem instead of raising."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def text(self, name: str, default: str = "") -> str:
        return self.env.get(name, "").strip() or default

    def url(self, name: str) -> str | None:
        value = self.text(name)
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            self.problems.append(f"{name} must be an http(s) URL, got {value!r}")
            return None
        return value.rstrip("/")

    def flag(self, name: str, *, default: bool = False) -> bool:
        return self.choice(name, ("true", "false"), "true" if default else "false") == "true"

    def names(self, name: str, allowed: tuple[str, ...]) -> frozenset[str]:
        """A comma-separated list, each one of `allowed` (a misspelt name must not trust nothing silently)."""
        values = frozenset(v.strip() for v in self.text(name).split(",") if v.strip())
        if unknown := sorted(values - set(allowed)):
            self.problems.append(
                f"{name} names {', '.join(unknown)}, which the worker does not read; it reads: {', '.join(allowed)}"
            )
        return values & set(allowed)

    def transfer_target(self, name: str, country_code: str) -> str | None:
        """A phone number normalised to E.164, or a SIP URI kept as it is; None when unset."""
        raw = self.text(name)
        if not raw:
            return None
        if re.fullmatch(r"sips?:[^@\s]+@[^@\s]+", raw):
            return raw
        phone = normalize_phone(raw.removeprefix("tel:"), country_code)
        if phone is None or re.search(r"[^\d\s()+.\-\u0660-\u0669\u06f0-\u06f9]", raw.removeprefix("tel:")):
            self.problems.append(
                f"{name} must be a phone number (E.164 such as +963112223344, or national with "
                f"DEFAULT_COUNTRY_CODE {country_code}) or a SIP URI such as sip:desk@pbx.example.com, got {raw!r}"
            )
            return None
        return phone

    def choice(self, name: str, allowed: tuple[str, ...], default: str, *, upper: bool = False) -> str:
        raw = self.text(name, default)
        value = raw.upper() if upper else raw.lower()
        if value not in allowed:
            self.problems.append(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
            return default
        return value

    def languages(self, name: str, single: str, allowed: tuple[str, ...], default: tuple[str, ...]) -> tuple[str, ...]:
        """A comma-separated language list (the first is the default); `single` is the one-language form."""
        raw = self.text(name)
        one = self.choice(single, allowed, default[0])
        if not raw:
            return (one,) if self.text(single) else default
        codes = [code.strip().lower() for code in raw.split(",") if code.strip()]
        unknown = [code for code in codes if code not in allowed]
        if unknown or not codes:
            self.problems.append(f"{name} must be a comma-separated list of {', '.join(allowed)}, got {raw!r}")
            return (one,)
        if len(set(codes)) != len(codes):
            self.problems.append(f"{name} lists a language twice: {raw!r}")
        if self.text(single) and codes[0] != one:
            self.problems.append(
                f"{single} ({one}) must be the first of {name} ({raw}), or unset: the first listed is the default"
            )
        return tuple(dict.fromkeys(codes))

    def number(self, name: str, default: float, *, maximum: float | None = None) -> float:
        value = self._parse(name, float, default, "a number")
        if not math.isfinite(value) or value < 0:
            self.problems.append(f"{name} must be a non-negative number, got {self.text(name)!r}")
            return default
        if maximum is not None and value > maximum:
            self.problems.append(f"{name} must be at most {maximum:g}, got {self.text(name)!r}")
            return default
        return value

    def integer(self, name: str) -> int | None:
        if not self.text(name):
            return None
        value = self._parse(name, int, 0, "a whole number")
        if value < 0:
            self.problems.append(f"{name} must be zero or more, got {self.text(name)!r}")
            return None
        return value

    def open_days(self, name: str, default: frozenset[int]) -> frozenset[int]:
        if not self.text(name):
            return default
        try:
            return week.parse_open_days(self.text(name))
        except ValueError:
            self.problems.append(
                f"{name} must name days such as sun-thu or mon,tue,wed,thu,fri, got {self.text(name)!r}"
            )
            return default

    def positive_integer(self, name: str, default: int, *, minimum: int = 1) -> int:
        if not self.text(name):
            return default
        value = self._parse(name, int, default, "a whole number")
        if value < minimum:
            self.problems.append(f"{name} must be a whole number of at least {minimum}, got {self.text(name)!r}")
            return default
        return value

    def country_code(self, name: str, default: str) -> str:
        value = self.text(name, default).lstrip("+")
        if not (value.isascii() and value.isdigit() and 1 <= len(value) <= 3):
            self.problems.append(f"{name} must be a 1-3 digit calling code such as 963 or 1, got {value!r}")
            return default
        return value

    def timezone(self, name: str, default: str) -> str:
        value = self.text(name, default)
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            self.problems.append(f"{name} must be an IANA time zone such as Asia/Damascus, got {value!r}")
            return default
        return value

    def _parse(self, name: str, kind: Callable[[str], T], default: T, what: str) -> T:
        raw = self.text(name)
        if not raw:
            return default
        try:
            return kind(raw)
        except ValueError:
            self.problems.append(f"{name} must be {what}, got {raw!r}")
            return default


def load_or_exit(mode: Mode, *, dotenv_path: str | os.PathLike[str] | None = None) -> Settings:
    """Load `.env`, validate, and exit with status 2 and one line per problem if invalid."""
    load_dotenv(dotenv_path=dotenv_path or Path.cwd() / ".env", override=False)
    try:
        settings = Settings.from_env(mode=mode)
    except SettingsError as e:
        sys.stderr.write("Configuration error; the worker did not start:\n")
        for problem in e.problems:
            sys.stderr.write(f"  - {problem}\n")
        sys.stderr.write("See .env.example for every setting.\n")
        raise SystemExit(2) from None
    for warning in startup_warnings(settings, mode):
        sys.stderr.write(f"Warning: {warning}\n")
    return settings
