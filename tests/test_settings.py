"""Settings: every bad value named, with what to set, before anything connects."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dotenv import dotenv_values

from settings import Settings, SettingsError, load_or_exit, startup_warnings

ROOT = Path(__file__).resolve().parent.parent
WORKER_ENV = {
    "LIVEKIT_URL": "wss://example.livekit.cloud",
    "LIVEKIT_API_KEY": "APIabc",
    "LIVEKIT_API_SECRET": "lk-secret-value-123",
    "OPENAI_API_KEY": "sk-test-openai-value-456",
}


def problems(env: dict[str, str], mode: str = "start") -> list[str]:
    with pytest.raises(SettingsError) as e:
        Settings.from_env(env, mode=mode)  # type: ignore[arg-type]
    return e.value.problems


def test_a_complete_environment_is_accepted_with_defaults() -> None:
    s = Settings.from_env(WORKER_ENV, mode="dev")
    assert (s.language, s.uses_supabase, s.tavus_enabled) == ("en", False, False)
    assert s.journal_dir == s.data_dir / "journal" and s.data_dir.is_absolute()
    assert (s.trusted_caller_attributes, s.load_threshold, s.escalation_phone_number) == (frozenset(), None, None)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"LIVEKIT_URL": ""}, "LIVEKIT_URL is not set"),
        ({"LIVEKIT_API_KEY": ""}, "LIVEKIT_API_KEY is not set"),
        ({"LIVEKIT_API_SECRET": ""}, "LIVEKIT_API_SECRET is not set"),
        ({"LIVEKIT_URL": "example.livekit.cloud"}, "LIVEKIT_URL must start with wss://"),
        ({"OPENAI_API_KEY": ""}, "OPENAI_API_KEY is not set: set it to your OpenAI key, or set OPENAI_BASE_URL"),
        ({"OPENAI_BASE_URL": "localhost:8000"}, "OPENAI_BASE_URL must be an http(s) URL"),
        ({"SUPABASE_URL": "https://x.supabase.co"}, "SUPABASE_SERVICE_ROLE_KEY is not set but SUPABASE_URL is"),
        ({"SUPABASE_SERVICE_ROLE_KEY": "k"}, "SUPABASE_URL is not set but SUPABASE_SERVICE_ROLE_KEY is"),
        ({"AGENT_LANGUAGE": "fr"}, "AGENT_LANGUAGE must be one of en, ar, got 'fr'"),
        ({"FLUSH_TIMEOUT": "-1"}, "FLUSH_TIMEOUT must be a non-negative number"),
        ({"STORE_TIMEOUT": "soon"}, "STORE_TIMEOUT must be a number, got 'soon'"),
        ({"SESSION_END_TIMEOUT": "nan"}, "SESSION_END_TIMEOUT must be a non-negative number"),
        ({"FLUSH_TIMEOUT": "40", "SESSION_END_TIMEOUT": "30"}, "SUMMARY_TIMEOUT + FLUSH_TIMEOUT (3 + 40) must be"),
        ({"SUMMARY_TIMEOUT": "25", "SESSION_END_TIMEOUT": "30"}, "SUMMARY_TIMEOUT + FLUSH_TIMEOUT (25 + 8) must be"),
        ({"ACK_DELAY": "9"}, "STILL_WORKING_AFTER (8) must be above ACK_DELAY (9)"),
        ({"LOAD_THRESHOLD": "1.5"}, "LOAD_THRESHOLD must be at most 1"),
        ({"NUM_IDLE_PROCESSES": "two"}, "NUM_IDLE_PROCESSES must be a whole number"),
        ({"NUM_IDLE_PROCESSES": "-2"}, "NUM_IDLE_PROCESSES must be zero or more"),
        ({"DEFAULT_COUNTRY_CODE": "syria"}, "DEFAULT_COUNTRY_CODE must be a 1-3 digit calling code"),
        ({"TAVUS_API_KEY": "tv"}, "TAVUS_FACE_ID is not set but TAVUS_API_KEY is"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR"),
        ({"CLINIC_TIMEZONE": "Mars/Olympus"}, "CLINIC_TIMEZONE must be an IANA time zone"),
        ({"ESCALATION_PHONE_NUMBER": "0991 abc 567"}, "ESCALATION_PHONE_NUMBER must be a phone number"),
        ({"ESCALATION_PHONE_NUMBER": "12"}, "ESCALATION_PHONE_NUMBER must be a phone number"),
        ({"ESCALATION_PHONE_NUMBER": "sip:desk"}, "ESCALATION_PHONE_NUMBER must be a phone number"),
        ({"TRUSTED_CALLER_ATTRIBUTES": "phone,phone_number"}, "TRUSTED_CALLER_ATTRIBUTES names phone_number"),
        ({"SINGLE_MACHINE_DEPLOYMENT": "yes"}, "SINGLE_MACHINE_DEPLOYMENT must be one of true, false"),
        ({"AVATAR_MAX_CALL_DURATION": "7200"}, "AVATAR_MAX_CALL_DURATION must be at most 3600"),
    ],
)
def test_each_bad_value_gets_its_own_line(override: dict[str, str], expected: str) -> None:
    found = problems({**WORKER_ENV, **override})
    assert any(expected in p for p in found), found


@pytest.mark.parametrize(
    ("raw", "target"),
    [
        ("0991 234 567", "+963991234567"),  # national, with DEFAULT_COUNTRY_CODE
        ("+1 (415) 555-0100", "+14155550100"),
        ("00963-11-222-3344", "+963112223344"),
        ("tel:+963 11 222 3344", "+963112223344"),
        ("٠٩٩١٢٣٤٥٦٧", "+963991234567"),
        ("sip:desk@pbx.example.com", "sip:desk@pbx.example.com"),
    ],
)
def test_the_escalation_number_is_normalised_at_start_up(raw: str, target: str) -> None:
    s = Settings.from_env({**WORKER_ENV, "ESCALATION_PHONE_NUMBER": raw}, mode="dev")
    assert s.escalation_phone_number == target


def test_start_requires_supabase_unless_single_machine_is_declared() -> None:
    [problem] = problems(WORKER_ENV, mode="start")
    assert problem.startswith("SUPABASE_URL is not set: `start` is production")
    assert "SINGLE_MACHINE_DEPLOYMENT=true" in problem
    assert not Settings.from_env({**WORKER_ENV, "SINGLE_MACHINE_DEPLOYMENT": "true"}, mode="start").uses_supabase
    supabase = {"SUPABASE_URL": "https://x.supabase.co", "SUPABASE_SERVICE_ROLE_KEY": "k"}
    assert Settings.from_env({**WORKER_ENV, **supabase}, mode="start").uses_supabase
    assert not Settings.from_env(WORKER_ENV, mode="dev").uses_supabase  # dev and console: the embedded store


def test_trusted_caller_attributes_are_declared_not_assumed() -> None:
    assert Settings.from_env({"TRUSTED_CALLER_ATTRIBUTES": " phone , "}).trusted_caller_attributes == {"phone"}


@pytest.mark.parametrize(
    ("url", "warned"),
    [
        ("wss://project.livekit.cloud", False),
        ("wss://livekit.example.com", False),
        ("wss://203.0.113.0.nip.io", False),
        ("ws://127.0.0.1:7880", True),
        ("ws://localhost:7880", True),
        ("ws://livekit:7880", True),  # a container name
        ("wss://10.1.2.3", True),
        ("wss://livekit.internal", True),
        ("wss://lk.office.local", True),
        ("ws://[::1]:7880", True),
        ("wss://[fd00::5]", True),
    ],
)
def test_a_livekit_url_tavus_cannot_reach_is_warned_about(url: str, warned: bool) -> None:
    tavus = {"TAVUS_API_KEY": "tv", "TAVUS_FACE_ID": "face"}
    s = Settings.from_env({**WORKER_ENV, **tavus, "LIVEKIT_URL": url}, mode="dev")
    found = startup_warnings(s, "dev")
    assert bool(found) == warned, found
    assert all("Tavus" in w and "join_timeout" in w for w in found)
    voice_only = Settings.from_env({**WORKER_ENV, "LIVEKIT_URL": url}, mode="dev")
    assert startup_warnings(voice_only, "dev") == []  # nobody outside needs to reach it


def test_the_warning_is_written_at_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {**WORKER_ENV, "LIVEKIT_URL": "ws://127.0.0.1:7880", "TAVUS_API_KEY": "tv", "TAVUS_FACE_ID": "face"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_or_exit("dev", dotenv_path=tmp_path / "absent.env")
    assert settings.tavus_enabled
    assert "Warning: LIVEKIT_URL's host '127.0.0.1' is not reachable from the internet" in capsys.readouterr().err


def test_every_problem_is_reported_at_once() -> None:
    found = problems({"AGENT_LANGUAGE": "fr", "FLUSH_TIMEOUT": "-3"}, mode="dev")
    assert len(found) == 6  # three LiveKit, OpenAI, language, timeout


def test_console_needs_no_livekit_and_a_base_url_replaces_the_key() -> None:
    s = Settings.from_env({"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1/"}, mode="console")
    assert s.openai_base_url == "http://127.0.0.1:8000/v1"
    assert s.openai_key_for_client  # the SDK needs a non-empty key even for a local server


def test_secrets_stay_out_of_repr_and_messages() -> None:
    s = Settings.from_env(
        {**WORKER_ENV, "SUPABASE_URL": "https://x.supabase.co", "SUPABASE_SERVICE_ROLE_KEY": "service-role-secret-789"},
        mode="start",
    )
    text = repr(s)
    assert not any(secret in text for secret in s.secret_values())
    assert set(s.secret_values()) == {
        "APIabc",
        "lk-secret-value-123",
        "sk-test-openai-value-456",
        "service-role-secret-789",
    }
    bad = problems({**WORKER_ENV, "FLUSH_TIMEOUT": "x"})
    assert not any(v in p for p in bad for v in WORKER_ENV.values())


@pytest.mark.parametrize("mode", ["dev", "start"])
def test_the_worker_exits_non_zero_before_connecting(mode: str, tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "OPENAI_API_KEY": "sk-test-openai-value-456",
        "AGENT_LANGUAGE": "xx",
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "agent.py"), mode],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("  - ")]
    assert [line.split()[1] for line in lines] == [
        "AGENT_LANGUAGE",
        "LIVEKIT_URL",
        "LIVEKIT_API_KEY",
        "LIVEKIT_API_SECRET",
        *(["SUPABASE_URL"] if mode == "start" else []),
    ]
    assert "sk-test-openai-value-456" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_env_example_lists_every_setting_and_its_defaults_are_valid() -> None:
    example = {k: v or "" for k, v in dotenv_values(ROOT / ".env.example").items()}
    read = set(re.findall(r'reader\.\w+\(\s*"([A-Z_]+)"', (ROOT / "settings.py").read_text()))
    assert read - {"TAVUS_REPLICA_ID", "TAVUS_PERSONA_ID"} <= set(example), read - set(example)
    s = Settings.from_env({**example, "OPENAI_API_KEY": "sk-test"}, mode="console")
    assert s == Settings.from_env({"OPENAI_API_KEY": "sk-test"}, mode="console")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"ESCALATION_PHONE_NUMBER": "0991 234 56x", "SINGLE_MACHINE_DEPLOYMENT": "true"}, "ESCALATION_PHONE_NUMBER"),
        ({}, "SUPABASE_URL"),
    ],
    ids=["malformed_escalation_number", "start_without_supabase"],
)
def test_start_stops_with_one_clear_line(extra: dict[str, str], expected: str, tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **WORKER_ENV, **extra}
    done = subprocess.run(
        [sys.executable, str(ROOT / "agent.py"), "start"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    [line] = [line for line in done.stderr.splitlines() if line.startswith("  - ")]
    assert line.split()[1] == expected
    assert "Traceback" not in done.stderr and "starting worker" not in done.stderr + done.stdout


def test_verification_limits_and_keypad_settings_are_validated() -> None:
    s = Settings.from_env(
        {"VERIFICATION_PHONE_LIMIT": "4", "VERIFICATION_SOURCE_LIMIT": "8", "VERIFICATION_WINDOW": "1800"}
    )
    assert (s.verification_phone_limit, s.verification_source_limit, s.verification_window) == (4, 8, 1800)
    defaults = Settings.from_env({})
    assert (defaults.verification_phone_limit, defaults.verification_window, defaults.keypad_timeout) == (6, 3600, 5.0)
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(
            {
                "VERIFICATION_PHONE_LIMIT": "0",
                "VERIFICATION_SOURCE_LIMIT": "many",
                "VERIFICATION_WINDOW": "30",
                "KEYPAD_TIMEOUT": "0.2",
            }
        )
    problems = " ".join(refused.value.problems)
    for name in ("VERIFICATION_PHONE_LIMIT", "VERIFICATION_SOURCE_LIMIT", "VERIFICATION_WINDOW", "KEYPAD_TIMEOUT"):
        assert name in problems


def test_transfer_settings() -> None:
    assert Settings.from_env({}).transfer_mode == "cold"
    warm = Settings.from_env({"SIP_OUTBOUND_TRUNK_ID": "ST_abc", "ESCALATION_PHONE_NUMBER": "+963112223344"})
    assert (warm.transfer_mode, warm.sip_outbound_trunk_id, warm.transfer_ringing_timeout) == ("warm", "ST_abc", 25.0)
    assert Settings.from_env({"SIP_OUTBOUND_TRUNK_ID": "ST_abc", "TRANSFER_MODE": "cold"}).transfer_mode == "cold"
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"TRANSFER_MODE": "warm", "TRANSFER_RINGING_TIMEOUT": "600"})
    problems = " ".join(refused.value.problems)
    assert "SIP_OUTBOUND_TRUNK_ID" in problems and "TRANSFER_RINGING_TIMEOUT" in problems
