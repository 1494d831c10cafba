"""Operator CLI: `python -m conversation_manager list|show|stats|replay [--json]`.

Reads whichever store the environment configures (Supabase, else the embedded file).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from conversation_manager.caller_details import normalize_phone
from conversation_manager.recovery import replay_pending
from settings import Settings, SettingsError
from storage.factory import open_record_store
from storage.records import STATUSES, ConversationDetail, ConversationStore, Row, StoreError


def _table(rows: list[list[Any]], headers: list[str], out: TextIO) -> None:
    cells = [[("" if v is None else str(v)).replace("\n", " ") for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    out.write("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _short_time(value: str | None) -> str:
    return (value or "")[:19].replace("T", " ")


def _ms(value: Any) -> str:
    return f"{value * 1000:.0f}" if isinstance(value, int | float) else ""


async def cmd_list(store: ConversationStore, args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    phone = normalize_phone(args.phone, settings.default_country_code) or args.phone if args.phone else None
    rows = await store.list_conversations(limit=args.limit, status=args.status, phone=phone, today=args.today)
    if args.json:
        json.dump(rows, out, ensure_ascii=False, indent=2, default=str)
        out.write("\n")
        return 0
    _table(
        [
            [
                r["conversation_id"],
                r["status"] + ("" if r.get("record_complete", True) else " INCOMPLETE"),
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
        sys.stderr.write(f"no conversation {args.conversation_id!r}\n")
        return 1
    if args.json:
        json.dump(dataclasses.asdict(detail), out, ensure_ascii=False, indent=2, default=str)
        out.write("\n")
        return 0
    c = detail.conversation
    out.write(f"conversation {c['conversation_id']}  room {c['room_name']}  status {c['status']}\n")
    if not c.get("record_complete", True):
        why = (c.get("metadata") or {}).get("record_at_risk") or "its write was cut before every row landed"
        out.write(f"RECORD INCOMPLETE: {why}; `replay` completes it if a journal remains\n")
    out.write(
        f"started {_short_time(c['started_at'])}  ended {_short_time(c['ended_at'])}  "
        f"duration {c['duration_seconds']}s  messages {c['message_count']}\n"
    )
    out.write(f"caller {c['user_name'] or '-'}  {c['user_phone'] or '-'}  {c['user_email'] or '-'}\n")
    if c.get("outcome") or c.get("summary"):
        out.write(f"outcome {c.get('outcome') or '-'}: {c.get('summary') or ''}\n")
    if line := _language_line(c):
        out.write(line + "\n")
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
)


def _cell(value: Any) -> Any:
    return f"{value:.1f}" if isinstance(value, float) else value


async def cmd_stats(store: ConversationStore, args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    stats = await store.stats_by_status(today=args.today)
    report = await store.report(days=1 if args.today else args.days)
    if args.json:
        by_status = [dataclasses.asdict(s) for s in stats]
        json.dump({"by_status": by_status, **dataclasses.asdict(report)}, out, indent=2, ensure_ascii=False)
        out.write("\n")
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
        json.dump(dataclasses.asdict(report), out, indent=2)
        out.write("\n")
    else:
        out.write(
            f"replayed {len(report.replayed)} (abandoned {len(report.abandoned)}), "
            f"failed {len(report.failed)}, live {len(report.live)}, archive pruned {report.pruned}\n"
        )
        for cid, error in report.failed.items():
            out.write(f"  failed {cid}: {error}\n")
    return 1 if report.failed else 0


COMMANDS = {"list": cmd_list, "show": cmd_show, "stats": cmd_stats, "replay": cmd_replay}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m conversation_manager", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    lst = sub.add_parser("list", help="recent conversations")
    lst.add_argument("--limit", type=int, default=20)
    lst.add_argument("--status", choices=STATUSES)
    lst.add_argument("--phone")
    lst.add_argument("--today", action="store_true")
    show = sub.add_parser("show", help="one conversation: transcript, tool calls, latency")
    show.add_argument("conversation_id")
    stats = sub.add_parser("stats", help="calls by status, per day (volume, outcomes, latency), agents, tools")
    stats.add_argument("--today", action="store_true")
    stats.add_argument("--days", type=int, default=7, help="days the daily sections cover (default 7)")
    sub.add_parser("replay", help="write pending journals (failed flushes, crashed calls)")
    for command in sub.choices.values():
        command.add_argument("--json", action="store_true", help="machine-readable output")
    return p


async def run(argv: Sequence[str], out: TextIO = sys.stdout) -> int:
    args = parser().parse_args(argv)
    from dotenv import load_dotenv

    load_dotenv(override=False)
    try:
        settings = Settings.from_env()
    except SettingsError as e:
        sys.stderr.write("Configuration error:\n" + "".join(f"  - {p}\n" for p in e.problems))
        return 2
    try:
        store = await open_record_store(settings)
    except StoreError as e:
        sys.stderr.write(f"cannot open the record store: {e}\n")
        return 1
    try:
        return await COMMANDS[args.command](store, args, settings, out)
    except StoreError as e:
        sys.stderr.write(f"store error: {e}\n")
        return 1
    finally:
        await store.aclose()


def main(argv: Sequence[str]) -> int:
    return asyncio.run(run(argv))
