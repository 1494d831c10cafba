"""The operator CLI against hostile input: bounds, invalid UTF-8, control characters stored by
callers. Every case exits with a code and one message, never a traceback, and no escape
sequence reaches the terminal raw."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conversation_manager import ConversationManager
from conversation_manager.cli import main
from settings import Settings
from storage.sqlite_records import SQLiteConversationStore
from testkit.local_supabase import Stack

ROOT = Path(__file__).resolve().parent.parent
RAW_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
HOSTILE = "Omar \x1b[2J\x1b]0;owned\x07\rX \x9b31m \u202egnp.exe <script>x</script>"


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def store_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An embedded store holding one call whose caller typed escape sequences; returns its id."""
    for name in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("JOURNAL_DIR", str(tmp_path / "journal"))

    async def seed() -> str:
        store = await SQLiteConversationStore.open(tmp_path / "records.sqlite3")
        manager = ConversationManager.from_settings(store, Settings(), journal_dir=tmp_path / "journal")
        cid = await manager.start_conversation(None, "room\x1b[2J", "caller")
        manager.add_message_to_local_transcript("user", HOSTILE)
        manager.add_tool_call("lookup\x1b[31m", {"q": "\x1b]0;t\x07"}, "out\r\x1b[1A")
        manager.set_caller_details(name="Omar\x1b[2J")
        await manager.end_conversation(summary="done \x1b[2J")
        # The worker held one more turn than reached the store: the record is marked incomplete.
        manager.add_message_to_local_transcript("user", "a turn that never reached the store")
        await store.mark_incomplete(manager.transcript.to_record(), "journal lost: \x1b[2J disk full")
        await store.aclose()
        return cid

    return asyncio.run(seed())


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["list", "--limit", "99999999999999999999"], "--limit: must be a whole number from 1 to 1000"),
        (["list", "--limit", "0"], "--limit"),
        (["list", "--limit", "-5"], "--limit"),
        (["list", "--limit", "1e9"], "--limit"),
        (["list", "--limit", "٣"], "--limit"),  # an Arabic-Indic digit is not a bound an operator typed
        (["stats", "--days", "100000000"], "--days: must be a whole number from 1 to 3660"),
        (["list", "--phone", "9" * 100_000], "--phone: must be at most 32 characters"),
        (["list", "--phone", "\x1b[2J"], "--phone: must not contain control characters"),
        (["list", "--phone", "not a phone"], "--phone: not a phone number"),
        (["show", "x" * 10_000], "must be at most 200 characters"),
        (["show", "id\x00"], "control characters"),
        (["show", "a\udcff"], "is not valid UTF-8"),
        (["list", "--status", "\x1b[2J"], "invalid choice"),
        (["nope\x1b[2J"], "invalid choice"),
        (["serve", "--port", "70000"], "--port"),
    ],
)
def test_hostile_arguments_exit_2_with_a_message(store_env: str, args: list[str], says: str) -> None:
    code, out, err = run_cli(*args)
    assert code == 2 and says in err
    assert "Traceback" not in err and not RAW_CONTROLS.search(out + err)


def test_a_huge_phone_on_supabase_is_refused_before_any_request(
    supabase_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPABASE_URL", supabase_stack.url)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", supabase_stack.service_key)
    code, _, err = run_cli("list", "--phone", "9" * 100_000)
    assert code == 2 and "--phone" in err and "InvalidURL" not in err


def test_invalid_utf8_from_the_shell(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    for argv in ([b"show", b"\xff\xfe"], [b"list", b"--phone", b"\xc3\x28"]):
        done = subprocess.run(
            [sys.executable.encode(), b"-m", b"conversation_manager", *argv], env=env, capture_output=True, timeout=60
        )
        assert done.returncode == 2 and b"not valid UTF-8" in done.stderr and b"Traceback" not in done.stderr


def test_stored_escape_sequences_are_shown_not_sent(store_env: str) -> None:
    for args in (["list"], ["show", store_env], ["show", store_env, "--json"], ["list", "--json"], ["stats"]):
        code, out, err = run_cli(*args)
        assert code == 0, err
        assert not RAW_CONTROLS.search(out), f"{args}: {out!r}"
    _, shown, _ = run_cli("show", store_env)
    assert "\\x1b[2J" in shown and "\\x07" in shown and "\\x0d" in shown and "\\u202e" in shown
    assert "<script>x</script>" in shown  # a terminal does not run markup: shown as typed
    assert "RECORD INCOMPLETE: journal lost: \\x1b[2J disk full" in shown
    _, listed, _ = run_cli("list")
    assert "Omar\\x1b[2J" in listed


def test_an_unknown_conversation_is_exit_1(store_env: str) -> None:
    code, _, err = run_cli("show", "no-such-call")
    assert code == 1 and "no conversation" in err


ARGUMENT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60) | st.sampled_from(
    ["99999999999999999999", "-1", "0", "\x1b[2J", "--json", "--help", "'; drop table conversations; --"]
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(["list", "show", "stats", "replay", "bogus"]), rest=st.lists(ARGUMENT, max_size=4))
def test_any_command_line_ends_in_an_exit_code(store_env: str, command: str, rest: list[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main([command, *rest], out, err)
    assert code in (0, 1, 2)
    assert "Traceback" not in err.getvalue()
    assert not RAW_CONTROLS.search(out.getvalue()), "nothing raw reaches stdout"
    if code == 2:
        assert err.getvalue().strip(), "a usage error says what was wrong"
