"""`python -m conversation_manager serve`: the console under uvicorn, closed by default."""

from __future__ import annotations

import logging
import socket
import sys
from dataclasses import replace
from typing import TextIO

import uvicorn

from conversation_manager.console.access import AccessRefused, check_bind, is_loopback
from conversation_manager.console.app import build_app
from settings import Settings

logger = logging.getLogger("conversation_manager.console")

MAX_CONNECTIONS = 64
"""Operators, not the public: a bound on open connections keeps a misbehaving client from starving the rest."""


def serve(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    err: TextIO = sys.stderr,
) -> int:
    """Run until interrupted; returns the exit code (2 when the configuration is refused)."""
    host = host or settings.console_host
    port = port or settings.console_port
    try:
        check_bind(host, settings.console_token)
    except AccessRefused as e:
        err.write(f"{e}\n")
        return 2
    if bool(ssl_certfile) != bool(ssl_keyfile):
        err.write("--tls-cert and --tls-key go together\n")
        return 2
    settings = replace(settings, console_host=host)
    store = f"Supabase at {settings.supabase_url}" if settings.supabase_url else f"{settings.data_dir}/records.sqlite3"
    scheme = "https" if ssl_certfile else "http"
    credential = "required (CONSOLE_TOKEN)" if settings.console_token else "none (this machine only)"
    err.write(f"operator console on {scheme}://{_url_host(host)}:{port}/  records: {store}  credential: {credential}\n")
    if not settings.console_token and is_loopback(host):
        err.write("  anyone with an account on this machine can open it; set CONSOLE_TOKEN to require a credential\n")
    config = uvicorn.Config(
        build_app(settings),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,  # request lines carry ids and filter values (phones): not for the log
        server_header=False,
        limit_concurrency=MAX_CONNECTIONS,
        timeout_graceful_shutdown=5,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )
    try:
        listener = listening_socket(host, port)
    except OSError as e:
        err.write(f"cannot listen on {_url_host(host)}:{port}: {e.strerror or e}\n")
        return 1
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[listener])
    finally:
        listener.close()
    return 0 if server.started else 1


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port`, created as IPPROTO_TCP so that asyncio sets TCP_NODELAY on
    every connection it accepts: with the protocol left 0 (what uvicorn's own bind does) asyncio
    skips it, and a keep-alive client waits out a delayed ACK (about 40 ms) between a response's
    headers and its body."""
    infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    family, kind, proto, _, address = infos[0]
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
    except OSError:
        listener.close()
        raise
    return listener


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
