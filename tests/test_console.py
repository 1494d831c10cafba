"""The worker's command line, as an operator runs it: `python agent.py console --text` under
a pseudo-terminal against the fake OpenAI server (a subprocess), and `python agent.py dev`
refusing to start without LiveKit settings."""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest

import prompts
from settings import LOCAL_API_KEY_PLACEHOLDER, Settings

MAIN = Path(__file__).resolve().parent.parent
FAKE_SERVER = MAIN / "testkit" / "fake_openai_server.py"
REPLY = "Happy to help, may I have your phone number?"
USER_LINE = "I need an appointment"
PROMPT_PLACEHOLDER = "Type to talk to your agent"  # drawn by the console's text prompt
STARTUP_TIMEOUT = 90  # the console needs several seconds to start on a small machine
STEP_TIMEOUT = 30


def base_env(**extra: str) -> dict[str, str]:
    """No LiveKit (or any other) settings: only what a shell needs, plus `extra`."""
    env = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    env.update(extra)
    return env


@dataclass
class FakeServerProcess:
    base_url: str
    record: Path

    def requests(self) -> list[dict]:
        return [json.loads(line) for line in self.record.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[FakeServerProcess]:
    record = tmp_path / "requests.jsonl"
    record.touch()
    proc = subprocess.Popen(
        [sys.executable, str(FAKE_SERVER), "--port", "0", "--reply", REPLY, "--record", str(record)],
        stdout=subprocess.PIPE,
        text=True,
        env=base_env(),
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], STEP_TIMEOUT)
        line = proc.stdout.readline().strip() if ready else ""
        assert line.startswith("READY http://127.0.0.1:"), f"fake server did not start: {line!r}"
        yield FakeServerProcess(base_url=line.split()[1], record=record)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_fake_server_cli_repeats_last_reply(fake_server: FakeServerProcess) -> None:
    def ask(text: str) -> str:
        body = {"model": "m", "messages": [{"role": "user", "content": text}]}
        request = urllib.request.Request(
            f"{fake_server.base_url}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": "Bearer k"},
        )
        with urllib.request.urlopen(request, timeout=STEP_TIMEOUT) as response:
            return json.load(response)["choices"][0]["message"]["content"]

    assert [ask("one"), ask("two")] == [REPLY, REPLY]
    assert [r["json"]["messages"][0]["content"] for r in fake_server.requests()] == ["one", "two"]
    assert fake_server.requests()[0]["headers"]["Authorization"] == "Bearer k"


def test_console_text_mode_round_trip(fake_server: FakeServerProcess, tmp_path: Path) -> None:
    env = base_env(
        OPENAI_BASE_URL=fake_server.base_url,
        DATA_DIR=str(tmp_path / "data"),
        JOURNAL_DIR=str(tmp_path / "journal"),
        TERM="xterm",
    )
    child = pexpect.spawn(
        sys.executable,
        ["agent.py", "console", "--text"],
        cwd=str(MAIN),
        env=env,
        encoding="utf-8",
        codec_errors="replace",
        dimensions=(50, 220),  # wide enough that the reply is not wrapped
        timeout=STEP_TIMEOUT,
    )
    transcript: list[str] = []
    try:
        child.expect_exact(PROMPT_PLACEHOLDER, timeout=STARTUP_TIMEOUT)
        child.expect_exact(prompts.load("ar", "language_offer"))  # the greeting's end: it is in the record
        # The prompt flushes pending input each time it starts reading a key, so first
        # make sure it is reading: "?" on an empty prompt toggles the shortcut list.
        child.send("?")
        child.expect_exact("audio mode")
        child.send(USER_LINE + "\n")  # the prompt reads key by key; LF is Enter
        child.expect_exact(USER_LINE)
        child.expect_exact(REPLY)
        transcript.append(child.before + child.after)
        child.expect_exact(PROMPT_PLACEHOLDER)  # ready for the next turn
        child.sendcontrol("c")  # the text console's documented exit key
        child.expect(pexpect.EOF)
        transcript.append(child.before)
    finally:
        child.close(force=True)

    assert child.exitstatus == 0, f"exit status {child.exitstatus}, signal {child.signalstatus}"
    assert "Traceback" not in "".join(transcript)

    # the turn, then (at the end of the call) the summary
    [chat, summary] = [r for r in fake_server.requests() if r["path"] == "/v1/chat/completions"]
    assert summary["json"]["messages"][0]["content"] == prompts.load("en", "summary_instructions")
    assert "tools" not in summary["json"]
    defaults = Settings()
    messages = chat["json"]["messages"]
    assert messages[0]["role"] == "system"
    assert messages[0]["content"].startswith(
        prompts.load("en", "system", agent_name=defaults.assistant_name, company=defaults.company_name)
    )
    assert {t["function"]["name"] for t in chat["json"]["tools"]} >= {"verify_caller", "request_callback"}
    assert messages[-1] == {"role": "user", "content": USER_LINE}
    assert chat["json"]["model"] == defaults.llm_model
    assert chat["headers"]["Authorization"] == f"Bearer {LOCAL_API_KEY_PLACEHOLDER}"

    # The worker's shutdown path wrote the call's record to the embedded store.
    with sqlite3.connect(tmp_path / "data" / "records.sqlite3") as db:
        [(cid, status, count, summary_text)] = db.execute(
            "select conversation_id, status, message_count, summary from conversations"
        )
        assert summary_text == REPLY, "the LLM's summary (the fake server repeats its reply)"
        turns = db.execute("select role, content from messages where conversation_id = ? order by seq", (cid,))
        assert (status, count) == ("completed", 3)
        assert [role for role, _ in turns] == ["assistant", "user", "assistant"]
    assert list((tmp_path / "journal" / "pending").glob("*.jsonl")) == []


def test_dev_without_livekit_settings_exits_2(tmp_path: Path) -> None:
    # cwd is an empty directory so that no developer `.env` fills the gaps
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(MAIN / "agent.py"), "dev"],
        cwd=tmp_path,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
    )
    elapsed = time.monotonic() - started

    assert proc.returncode == 2, proc.stderr
    for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "OPENAI_API_KEY"):
        assert name in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "starting worker" not in proc.stderr + proc.stdout  # never got as far as LiveKit
    assert elapsed < STEP_TIMEOUT


def test_console_text_mode_follows_an_arabic_caller(fake_server: FakeServerProcess, tmp_path: Path) -> None:
    """The default two-language worker, end to end: an Arabic line switches the call to Arabic."""
    arabic_line = "مرحباً، أريد حجز موعد"
    env = base_env(
        OPENAI_BASE_URL=fake_server.base_url,
        DATA_DIR=str(tmp_path / "data"),
        JOURNAL_DIR=str(tmp_path / "journal"),
        TERM="xterm",
        LANG="C.UTF-8",
    )
    child = pexpect.spawn(
        sys.executable,
        ["agent.py", "console", "--text"],
        cwd=str(MAIN),
        env=env,
        encoding="utf-8",
        codec_errors="replace",
        dimensions=(50, 220),
        timeout=STEP_TIMEOUT,
    )
    try:
        child.expect_exact(PROMPT_PLACEHOLDER, timeout=STARTUP_TIMEOUT)
        child.expect_exact(prompts.load("ar", "language_offer"))  # nothing known: the greeting offers Arabic
        child.send("?")
        child.expect_exact("audio mode")
        child.send(arabic_line + "\n")
        child.expect_exact(REPLY)
        child.expect_exact(PROMPT_PLACEHOLDER)
        child.sendcontrol("c")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, f"exit status {child.exitstatus}, signal {child.signalstatus}"

    [chat, summary] = [r for r in fake_server.requests() if r["path"] == "/v1/chat/completions"]
    defaults = Settings()
    assert chat["json"]["messages"][0]["content"].startswith(
        prompts.load("ar", "system", agent_name=defaults.assistant_name, company=defaults.company_name)
    ), "the reply to the first Arabic line is instructed in Arabic"
    assert chat["json"]["messages"][-1] == {"role": "user", "content": arabic_line}
    assert summary["json"]["messages"][0]["content"] == prompts.load("ar", "summary_instructions")
    with sqlite3.connect(tmp_path / "data" / "records.sqlite3") as db:
        [(language, metadata)] = db.execute("select language, metadata from conversations")
        languages = [row[0] for row in db.execute("select json_extract(metadata, '$.language') from messages")]
    assert language == "ar" and languages == ["en", "ar", "ar"]
    switches = json.loads(metadata)["language_switches"]
    assert [(s["language"], s["cause"], s["turn"]) for s in switches] == [("ar", "speech", 1)]
