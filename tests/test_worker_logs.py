"""The worker's logs as an operator's log pipeline sees them in `start` mode: JSON lines, and
every line of a call, ours and LiveKit's, tagged with the call's conversation id.

Runs the production worker on LiveKit's simulated job (testkit/simulated_worker.py) in a
subprocess, with the OpenAI endpoint unreachable (the greeting's TTS fails and is logged)."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.test_console import MAIN, base_env

PROCESS_LINES = frozenset({"process exiting"})
OUR_LOGGERS = ("agent", "avatar", "conversation_manager", "desk", "storage", "tools")
RUN_TIMEOUT = 150


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_start_mode_logs_are_json_and_every_call_line_has_the_conversation_id(tmp_path: Path) -> None:
    env = base_env(OPENAI_BASE_URL=f"http://127.0.0.1:{closed_port()}/v1", DATA_DIR=str(tmp_path / "data"))
    done = subprocess.run(
        [sys.executable, str(MAIN / "testkit" / "simulated_worker.py")],
        cwd=str(MAIN),
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]  # every line is JSON

    with sqlite3.connect(tmp_path / "data" / "records.sqlite3") as db:
        [(cid, status)] = db.execute("select conversation_id, status from conversations")
    assert status == "completed"

    ours = [i for i, line in enumerate(lines) if line["name"].split(".")[0] in OUR_LOGGERS]
    assert ours, "the call logged nothing of its own"
    job_pid = lines[ours[0]]["pid"]
    call_lines = [line for line in lines[ours[0] : ours[-1] + 1] if line["pid"] == job_pid]
    # LiveKit's process lifecycle line is the process's, not the call's: under load it can come
    # before our last line (the end-of-call write still finishing as the process winds down).
    call_lines = [line for line in call_lines if line["message"] not in PROCESS_LINES]
    untagged = [(line["name"], line["message"][:80]) for line in call_lines if line.get("conversation_id") != cid]
    assert untagged == []
    assert any(line["name"].startswith("livekit") for line in call_lines), "LiveKit's own call lines are tagged too"
    assert any(line["message"].startswith("call record") for line in call_lines), "on_session_end logged the write"
