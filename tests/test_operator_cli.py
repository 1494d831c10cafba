"""`python -m conversation_manager` against the embedded store and the local Supabase stack,
and the operator queries of sql/queries.sql run unchanged in Postgres."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conversation_manager import ConversationManager
from settings import Settings
from storage.records import ConversationStore
from testkit.local_supabase import Stack
from testkit.record_stores import open_store

ROOT = Path(__file__).resolve().parent.parent


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full_env = {"PATH": os.environ["PATH"], "HOME": env.get("HOME", "/tmp"), "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(
        [sys.executable, "-m", "conversation_manager", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def two_calls(store: ConversationStore, journal: Path) -> tuple[str, str]:
    first = ConversationManager.from_settings(store, Settings(), journal_dir=journal)
    a = await first.start_conversation(None, "cli-room", "caller-a")
    first.add_message_to_local_transcript("user", "my name is Omar, number 0991234567")
    first.add_message_to_local_transcript(
        "assistant", "Thank you Omar", interrupted=True, metadata={"metrics": {"e2e_latency": 0.92}}
    )
    first.add_tool_call("verify_caller", {"zip_code": "12345"}, "verified")
    await first.end_conversation()
    second = ConversationManager.from_settings(store, Settings(), journal_dir=journal)
    b = await second.start_conversation(None, "cli-room", "caller-b")
    second.add_message_to_local_transcript("user", "hello")
    return a, b  # the second call is left open: its journal stays pending, its row active


@pytest.mark.asyncio
@pytest.mark.parametrize("backend", ["sqlite", "supabase"])
async def test_list_show_stats_replay(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    stack: Stack | None = request.getfixturevalue("clean_db") if backend == "supabase" else None
    env = {"DATA_DIR": str(tmp_path), "JOURNAL_DIR": str(tmp_path / "journal"), "HOME": str(tmp_path)}
    if stack is not None:
        env |= {"SUPABASE_URL": stack.url, "SUPABASE_SERVICE_ROLE_KEY": stack.service_key}
    store = await open_store(backend, tmp_path=tmp_path, stack=stack)
    completed, open_call = await two_calls(store, tmp_path / "journal")
    await store.aclose()

    listed = json.loads(cli(env, "list", "--json").stdout)
    assert {r["conversation_id"] for r in listed} >= {completed}
    by_phone = json.loads(cli(env, "list", "--phone", "0991 234 567", "--json").stdout)
    assert [r["conversation_id"] for r in by_phone] == [completed]
    table = cli(env, "list", "--status", "completed").stdout
    assert completed in table and "Omar" in table and open_call not in table

    shown = cli(env, "show", completed)
    assert shown.returncode == 0
    assert "assistant (interrupted)" in shown.stdout and "tool verify_caller (ok)" in shown.stdout
    assert "920" in shown.stdout  # the e2e latency column, in ms
    assert json.loads(cli(env, "show", completed, "--json").stdout)["messages"][1]["interrupted"] is True
    assert cli(env, "show", "no-such-call").returncode == 1

    figures = json.loads(cli(env, "stats", "--json").stdout)
    stats = {s["status"]: s["count"] for s in figures["by_status"]}
    assert stats.get("completed") == 1
    assert sum(day["calls"] for day in figures["volume"]) == sum(stats.values())
    assert max(day["max_ms"] for day in figures["latency"]) == pytest.approx(920)
    assert {"outcomes", "agent_usage", "tool_errors"} <= set(figures)
    table = cli(env, "stats").stdout
    for title in (
        "By status",
        "Calls per day",
        "Outcomes per day",
        "Reply latency per day",
        "Agent runs by type",
        "Tool calls and errors",
    ):
        assert title in table

    # The open call's journal is still locked by this process: replay must leave it alone.
    replay = json.loads(cli(env, "replay", "--json").stdout)
    assert replay["live"] and not replay["replayed"]


def test_cli_reports_a_bad_configuration(tmp_path: Path) -> None:
    done = cli({"SUPABASE_URL": "https://x.supabase.co", "HOME": str(tmp_path)}, "list")
    assert done.returncode == 2 and "SUPABASE_SERVICE_ROLE_KEY" in done.stderr


def test_cli_reports_an_unreachable_store(tmp_path: Path, supabase_stack: Stack) -> None:
    env = {
        "SUPABASE_URL": "http://127.0.0.1:9",
        "SUPABASE_SERVICE_ROLE_KEY": supabase_stack.service_key,
        "STORE_TIMEOUT": "1",
        "HOME": str(tmp_path),
    }
    done = cli(env, "list")
    assert done.returncode == 1 and "store error" in done.stderr and "Traceback" not in done.stderr


def test_operator_queries_run_unchanged(clean_db: Stack) -> None:
    queries = (ROOT / "sql" / "queries.sql").read_text()
    clean_db.psql(
        "insert into conversations (conversation_id, room_name, status, user_phone, duration_seconds, message_count)"
        " values ('q1', 'r', 'completed', '+963991234567', 30, 4), ('q2', 'r', 'active', null, null, 1)"
    )
    output = clean_db.psql(queries.replace("REPLACE-WITH-CONVERSATION-ID", "q1"))
    assert "q1" in output and "completed" in output
    stats = clean_db.psql(
        "SELECT status, COUNT(*), AVG(duration_seconds), AVG(message_count) FROM conversations GROUP BY status"
        " ORDER BY status;"
    )
    assert stats.split() == ["active|1||1.00000000000000000000", "completed|1|30|4.0000000000000000"]


def test_reporting_views_answer(clean_db: Stack) -> None:
    clean_db.psql(
        "insert into conversations (conversation_id, room_name, status, outcome)"
        " values ('v1', 'r', 'completed', 'booked');"
        "insert into messages (conversation_id, seq, role, content, metadata) values"
        " ('v1', 0, 'assistant', 'hi', '{\"metrics\": {\"e2e_latency\": 0.5}}'),"
        " ('v1', 1, 'assistant', 'ok', '{\"metrics\": {\"e2e_latency\": 1.5}}');"
        "insert into tool_calls (conversation_id, seq, name, is_error)"
        " values ('v1', 2, 'book', false), ('v1', 3, 'book', true);"
        "insert into agent_runs (run_id, conversation_id, agent_type, started_at, llm_calls, total_tokens)"
        " values ('r1', 'v1', 'ReceptionAgent', now(), 2, 90)"
    )
    assert clean_db.psql("select calls, completed from daily_call_volume").split() == ["1|1"]
    assert clean_db.psql("select outcome, calls from daily_outcomes").split() == ["booked|1"]
    assert clean_db.psql("select replies, p50_ms, max_ms from daily_latency").split() == ["2|1000|1500"]
    assert clean_db.psql("select agent_type, llm_calls, total_tokens from agent_usage_by_type").split() == [
        "ReceptionAgent|2|90"
    ]
    assert clean_db.psql("select name, calls, errors, error_rate from tool_error_rates").split() == ["book|2|1|0.5"]
