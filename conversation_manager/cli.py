"""Operator CLI: `python -m conversation_manager list|show|stats|replay|serve [--json]`.

Reads whichever store the environment configures (Supabase, else the embedded file).
Stored text is caller-controlled, so every control character is shown as an escape, never
sent to the terminal; bad arguments exit 2 with one line saying what is accepted; nothing
prints a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

from conversation_manager.caller_details import normalize_phone
from conversation_manager.display import visible
from conversation_manager.recovery import replay_pending
from settings import Settings, SettingsError
from storage.factory import open_record_store
from storage.records import STATUSES, ConversationDetail, ConversationStore, Row, StoreError, is_incomplete

MAX_LIMIT = 1000
MAX_DAYS = 3660
MAX_PHONE_CHARS = 32
MAX_ID_CHARS = 200
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class UsageError(Exception):
    """A bad command line: exit 2 with this message."""


class NotFound(Exception):
    """What was asked for is not in the store: exit 1 with this message."""


def _table(rows: list[list[Any]], headers: list[str], out: TextIO) -> None:
    cells = [[visible(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    out.write("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _short_time(value: str | None) -> str:
    return visible(str(value or "")[:19].replace("T", " "))


def _dump(data: Any, out: TextIO, **options: Any) -> None:
    """JSON for scripts: JSON escapes C0 controls itself; C1 controls and bidi overrides (which some
    terminals act on) are escaped too, so piping it to a terminal is as safe as the tables."""
    text = json.dumps(data, ensure_ascii=False, indent=2, default=str, **options)
    out.write(_JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")


def _ms(value: Any) -> str:
    return f"{value * 1000:.0f}" if isinstance(value, int | float) else ""


async def cmd_list(store: ConversationStore, args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    phone = None
    if args.phone:
        phone = normalize_phone(args.phone, settings.default_country_code)
        if phone is None:
            raise UsageError("--phone: not a phone number (digits, optionally + and spaces), e.g. +963991234567")
    rows = await store.list_conversations(limit=args.limit, status=args.status, phone=phone, today=args.today)
    if args.json:
        _dump(rows, out)
        return 0
    _table(
        [
            [
                r["conversation_id"],
                r["status"] + (" INCOMPLETE" if is_incomplete(r) else ""),
                _short_time(r["started_at"]),
                r["duration_seconds"],
                r["message_count"],
                r["user_name"],
                r["user_phone"],
                r["outcome"],
            ]
            for r in rows
        ],
        ["conversation_id", "status", "started (UTC)", "secs", "msgs", "name", "phone", "outcome"],
        out,
    )
    return 0


def _language_line(conversation: Row) -> str:
    """ "language ar (started en: default; then ar: speech at turn 1)" from the record."""
    metadata = conversation.get("metadata") or {}
    source = metadata.get("language_source")
    if not conversation.get("language") and not source:
        return ""
    parts = [f"started {source['language']}: {source['cause']}"] if isinstance(source, dict) else []
    for switch in metadata.get("language_switches") or []:
        parts.append(f"then {switch['language']}: {switch['cause']} at turn {switch['turn']}")
    history = f" ({'; '.join(parts)})" if parts else ""
    return f"language {conversation.get('language') or '-'}{history}"


def _timeline(detail: ConversationDetail) -> list[tuple[int, str, Row]]:
    items = [(m["seq"], "message", m) for m in detail.messages]
    items += [(t["seq"], "tool", t) for t in detail.tool_calls]
    return sorted(items, key=lambda item: item[0])


async def cmd_show(store: ConversationStore, args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    detail = await store.get_conversation(args.conversation_id)
    if detail is None:
        raise NotFound(f"no conversation {visible(args.conversation_id)!r}")
    if args.json:
        _dump(dataclasses.asdict(detail), out)
        return 0
    c = {k: v if k in ("duration_seconds", "message_count") else visible(v) for k, v in detail.conversation.items()}
    out.write(f"conversation {c['conversation_id']}  room {c['room_name']}  status {c['status']}\n")
    if is_incomplete(detail.conversation):  # the raw row: `c` holds display strings
        metadata = detail.conversation.get("metadata") or {}
        why = visible(metadata.get("record_at_risk") or "its write was cut before every row landed")
        out.write(f"RECORD INCOMPLETE: {why}; `replay` completes it if a journal remains\n")
    out.write(
        f"started {_short_time(c['started_at'])}  ended {_short_time(c['ended_at'])}  "
        f"duration {c['duration_seconds']}s  messages {c['message_count']}\n"
    )
    out.write(f"caller {c['user_name'] or '-'}  {c['user_phone'] or '-'}  {c['user_email'] or '-'}\n")
    if c.get("outcome") or c.get("summary"):
        out.write(f"outcome {c.get('outcome') or '-'}: {c.get('summary') or ''}\n")
    if line := _language_line(detail.conversation):
        out.write(visible(line) + "\n")
    if c.get("avatar_status"):
        out.write(f"avatar {c['avatar_status']}\n")
    out.write("\n")
    rows: list[list[Any]] = []
    for seq, kind, item in _timeline(detail):
        if kind == "message":
            m = item.get("metadata", {}).get("metrics", {})
            role = item["role"] + (" (interrupted)" if item["interrupted"] else "")
            rows.append(
                [
                    seq,
                    role,
                    item["content"][:100],
                    _ms(m.get("end_of_turn_delay")),
                    _ms(m.get("llm_node_ttft")),
                    _ms(m.get("tts_node_ttfb")),
                    _ms(m.get("e2e_latency")),
                ]
            )
        else:
            status = "error" if item["is_error"] else "ok"
            args_text = json.dumps(item["arguments"], ensure_ascii=False)
            rows.append(
                [seq, f"tool {item['name']} ({status})", f"{args_text} -> {item['output'] or ''}"[:100], "", "", "", ""]
            )
    _table(rows, ["seq", "who", "text", "eou ms", "llm ms", "tts ms", "e2e ms"], out)
    return 0


REPORT_SECTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("volume", "Calls per day", ("day", "calls", "completed", "abandoned", "failed", "avg_duration_seconds")),
    ("outcomes", "Outcomes per day", ("day", "outcome", "calls")),
    ("latency", "Reply latency per day (end to end, ms)", ("day", "replies", "p50_ms", "p95_ms", "max_ms")),
    (
        "agent_usage",
        "Agent runs by type (all time)",
        (
            "agent_type",
            "runs",
            "llm_calls",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "tool_calls",
            "tool_errors",
        ),
    ),
    ("tool_errors", "Tool calls and errors (all time)", ("name", "calls", "errors", "error_rate", "avg_duration_ms")),
    ("slow_turns", "Slow replies per day", ("day", "calls", "slow_calls", "slow_turns")),
)


def _cell(value: Any) -> Any:
    return f"{value:.1f}" if isinstance(value, float) else value


async def cmd_stats(store: ConversationStore, args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    stats = await store.stats_by_status(today=args.today)
    report = await store.report(days=1 if args.today else args.days)
    if args.json:
        by_status = [dataclasses.asdict(s) for s in stats]
        _dump({"by_status": by_status, **dataclasses.asdict(report)}, out)
        return 0
    out.write("By status\n")
    _table(
        [[s.status, s.count, _cell(s.avg_duration_seconds), _cell(s.avg_message_count)] for s in stats],
        ["status", "calls", "avg secs", "avg msgs"],
        out,
    )
    for key, title, columns in REPORT_SECTIONS:
        out.write(f"\n{title}\n")
        rows: list[Row] = getattr(report, key)
        _table([[_cell(row.get(c)) for c in columns] for row in rows], list(columns), out)
    return 0


async def cmd_replay(store: ConversationStore, args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    report = await replay_pending(
        store,
        settings.journal_dir,
        timeout=settings.flush_timeout,
        retention_days=settings.journal_retention_days,
        also=(settings.journal_fallback_dir,),
    )
    if args.json:
        _dump(dataclasses.asdict(report), out)
    else:
        out.write(
            f"replayed {len(report.replayed)} (abandoned {len(report.abandoned)}), "
            f"failed {len(report.failed)}, live {len(report.live)}, archive pruned {report.pruned}\n"
        )
        for cid, error in report.failed.items():
            out.write(f"  failed {visible(cid)}: {visible(error)}\n")
    return 1 if report.failed else 0


COMMANDS = {"list": cmd_list, "show": cmd_show, "stats": cmd_stats, "replay": cmd_replay}


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        text = text.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > len(str(high)) or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}")
        return int(text)

    return parse


def bounded_text(max_chars: int) -> Callable[[str], str]:
    """Printable UTF-8 text of at most `max_chars` characters (argv that is not UTF-8 arrives
    from Python as lone surrogates: it is refused here, before any store sees it)."""

    def parse(text: str) -> str:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise argparse.ArgumentTypeError("is not valid UTF-8") from None
        if len(text) > max_chars:
            raise argparse.ArgumentTypeError(f"must be at most {max_chars} characters, got {len(text)}")
        if not text.isprintable():
            raise argparse.ArgumentTypeError("must not contain control characters")
        return text

    return parse


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as `UsageError` instead of exiting mid-run."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {visible(message)}")


def parser(prog: str = "python -m conversation_manager") -> argparse.ArgumentParser:
    p = Parser(prog=prog, description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    lst = sub.add_parser("list", help="recent conversations")
    lst.add_argument("--limit", type=bounded_int(1, MAX_LIMIT), default=20, help=f"1..{MAX_LIMIT} (default 20)")
    lst.add_argument("--status", choices=STATUSES)
    lst.add_argument("--phone", type=bounded_text(MAX_PHONE_CHARS))
    lst.add_argument("--today", action="store_true")
    show = sub.add_parser("show", help="one conversation: transcript, tool calls, latency")
    show.add_argument("conversation_id", type=bounded_text(MAX_ID_CHARS))
    stats = sub.add_parser("stats", help="calls by status, per day (volume, outcomes, latency), agents, tools")
    stats.add_argument("--today", action="store_true")
    stats.add_argument(
        "--days", type=bounded_int(1, MAX_DAYS), default=7, help=f"days the daily sections cover (1..{MAX_DAYS})"
    )
    sub.add_parser("replay", help="write pending journals (failed flushes, crashed calls)")
    for command in sub.choices.values():
        command.add_argument("--json", action="store_true", help="machine-readable output")
    serve = sub.add_parser("serve", help="the operator console in a browser (127.0.0.1:8089 unless configured)")
    serve.add_argument("--host", type=bounded_text(255), help="address to listen on (default CONSOLE_HOST)")
    serve.add_argument("--port", type=bounded_int(1, 65535), help="port (default CONSOLE_PORT)")
    serve.add_argument("--tls-cert", type=bounded_text(4096), help="certificate file to serve HTTPS")
    serve.add_argument("--tls-key", type=bounded_text(4096), help="its private key file")
    return p


def _settings(err: TextIO) -> Settings | None:
    from dotenv import load_dotenv

    load_dotenv(override=False)
    try:
        return Settings.from_env()
    except SettingsError as e:
        err.write("Configuration error:\n" + "".join(f"  - {visible(p)}\n" for p in e.problems))
        return None


async def run(argv: Sequence[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """A store command (list, show, stats, replay); exit code 0, 1 (store failure or not found) or 2 (usage)."""
    try:
        args = parser().parse_args(argv)
    except UsageError as e:
        err.write(f"{e}\n")
        return 2
    if args.command == "serve":
        err.write("serve runs its own server: use main()\n")
        return 2
    settings = _settings(err)
    if settings is None:
        return 2
    try:
        store = await open_record_store(settings)
    except StoreError as e:
        err.write(f"cannot open the record store: {visible(e)}\n")
        return 1
    try:
        return await COMMANDS[args.command](store, args, settings, out)
    except UsageError as e:
        err.write(f"{e}\n")
        return 2
    except NotFound as e:
        err.write(f"{e}\n")
        return 1
    except StoreError as e:
        err.write(f"store error: {visible(e)}\n")
        return 1
    finally:
        await store.aclose()


def main(argv: Sequence[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr, *, prog: str | None = None) -> int:
    """The command line; never a traceback: anything unexpected is one line and exit code 1."""
    try:
        try:
            args = (parser(prog) if prog else parser()).parse_args(argv)
        except UsageError as e:
            err.write(f"{e}\n")
            return 2
        if args.command == "serve":
            from conversation_manager.console import serve

            settings = _settings(err)
            if settings is None:
                return 2
            return serve(settings, host=args.host, port=args.port, ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key)
        return asyncio.run(run(argv, out, err))
    except SystemExit as e:  # --help and --version print, then exit
        return e.code if isinstance(e.code, int) else 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `... | head`: the reader left, nothing more to say
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces the closed pipe for interpreter exit
        return 0
    except Exception as e:
        err.write(f"error: {type(e).__name__}: {visible(e)}\n")
        return 1


def entry() -> None:
    """The installed `conversation-manager` command."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    name = os.path.basename(sys.argv[0])
    sys.exit(main(sys.argv[1:], prog=name if name == "conversation-manager" else None))
