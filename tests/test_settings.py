"""Settings: every bad value named, with what to set, before anything connects."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dotenv import dotenv_values

from settings import Settings, SettingsError

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
    s = Settings.from_env(WORKER_ENV, mode="start")
    assert (s.language, s.uses_supabase, s.tavus_enabled) == ("en", False, False)
    assert s.journal_dir == Path(".data/journal")


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
    ],
)
def test_each_bad_value_gets_its_own_line(override: dict[str, str], expected: str) -> None:
    found = problems({**WORKER_ENV, **override})
    assert any(expected in p for p in found), found


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
    ]
    assert "sk-test-openai-value-456" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_env_example_lists_every_setting_and_its_defaults_are_valid() -> None:
    example = {k: v or "" for k, v in dotenv_values(ROOT / ".env.example").items()}
    read = set(re.findall(r'reader\.\w+\(\s*"([A-Z_]+)"', (ROOT / "settings.py").read_text()))
    assert read - {"TAVUS_REPLICA_ID", "TAVUS_PERSONA_ID"} <= set(example), read - set(example)
    s = Settings.from_env({**example, "OPENAI_API_KEY": "sk-test"}, mode="console")
    assert s == Settings.from_env({"OPENAI_API_KEY": "sk-test"}, mode="console")
