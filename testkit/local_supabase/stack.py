"""The local Supabase-compatible stack's processes: start, check, pause, stop.

It starts, on 127.0.0.1 and on free ports picked at runtime (so several stacks can run
at once): a private PostgreSQL 15 cluster in a temporary directory (fsync off) with
Supabase's roles and grants (``supabase_roles.sql``) and every ``sql/migrations/*.sql``
applied in order; PostgREST 12; and an nginx gateway that checks the ``apikey`` header
like Supabase's Kong. What they are configured with is ``config.py``.

    with start_stack() as stack:
        client = await acreate_client(stack.url, stack.service_key)
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from testkit.local_supabase.config import (
    JWT_ISSUER,
    KEY_LIFETIME_S,
    LOG_TAIL_LINES,
    MIGRATIONS_DIR,
    PG_OS_USER,
    PG_SUPERUSER,
    REPO_ROOT,
    ROLES_SQL,
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    Binaries,
    MissingBinaryError,
    StackError,
    find_binaries,
    render_nginx_conf,
    render_postgres_conf,
    render_postgrest_conf,
    sign_jwt,
)

log = logging.getLogger("local_supabase")

__all__ = ["REPO_ROOT", "MissingBinaryError", "Stack", "StackError", "local_stack", "start_stack"]


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else f"({path} is empty)"


def _free_ports(count: int) -> list[int]:
    """Ports that are free right now; all sockets stay open until every port is picked."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(200 <= response.status < 300)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _wait_until(
    check: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    log_path: Path,
    alive: Callable[[], bool] | None = None,
) -> float:
    """Poll ``check`` until it is true; return the seconds it took. Raise with the log tail."""
    started = time.monotonic()
    delay = 0.01
    while True:
        if check():
            return time.monotonic() - started
        if alive is not None and not alive():
            raise StackError(f"{what} exited before it was ready; tail of {log_path}:\n{_tail(log_path)}")
        if time.monotonic() - started > timeout:
            raise StackError(f"{what} was not ready after {timeout:.0f} s; tail of {log_path}:\n{_tail(log_path)}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)


def _clean_env() -> dict[str, str]:
    """The environment without PG* variables, which would redirect psql and friends."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


# ------------------------------------------------------------------------------ stack

_running: set[Stack] = set()
_running_lock = threading.Lock()


@dataclass(eq=False)
class Stack:
    """A running local stack. Build it with :func:`start_stack`; stop it with :meth:`stop`."""

    dir: Path
    binaries: Binaries
    db_port: int
    postgrest_port: int
    postgrest_admin_port: int
    gateway_port: int
    jwt_secret: str
    anon_key: str
    authenticated_key: str
    service_key: str
    authenticator_password: str
    superuser_password: str
    migrations: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    _postgrest: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _nginx: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _postgres_running: bool = field(default=False, repr=False)
    _postgrest_paused: bool = field(default=False, repr=False)
    _stopped: bool = field(default=False, repr=False)

    # ---- addresses

    @property
    def url(self) -> str:
        """The gateway URL: what ``SUPABASE_URL`` and ``acreate_client`` take."""
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def rest_url(self) -> str:
        """The PostgREST API behind the gateway (``{url}/rest/v1``)."""
        return f"{self.url}/rest/v1"

    @property
    def postgrest_url(self) -> str:
        """PostgREST itself, bypassing the gateway (no apikey check)."""
        return f"http://127.0.0.1:{self.postgrest_port}"

    @property
    def dsn(self) -> str:
        """A superuser connection string over TCP (for psycopg/asyncpg/psql)."""
        return f"postgresql://{PG_SUPERUSER}:{self.superuser_password}@127.0.0.1:{self.db_port}/postgres"

    @property
    def socket_dir(self) -> Path:
        return self.dir / "pgsock"

    @property
    def pgdata(self) -> Path:
        return self.dir / "pgdata"

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    def env(self) -> dict[str, str]:
        """Environment variables that point the worker (settings.py) at this stack."""
        return {
            "SUPABASE_URL": self.url,
            "SUPABASE_SERVICE_ROLE_KEY": self.service_key,
            "SUPABASE_ANON_KEY": self.anon_key,
        }

    def make_jwt(self, role: str, *, expires_in: float = KEY_LIFETIME_S, **claims: Any) -> str:
        """A JWT signed with this stack's secret (negative ``expires_in`` gives an expired one)."""
        now = int(time.time())
        payload: dict[str, Any] = {"iss": JWT_ISSUER, "role": role, "iat": now, "exp": now + int(expires_in)}
        payload.update(claims)
        return sign_jwt(payload, self.jwt_secret)

    # ---- SQL

    def psql(self, sql: str, *, timeout: float = 60.0) -> str:
        """Run ``sql`` as the superuser; return stdout (unaligned, tuples only, ``|``-separated).

        Raises StackError with psql's stderr if any statement fails.
        """
        return self._run_psql(["-A", "-t", "-f", "-"], stdin=sql, timeout=timeout, what="psql")

    def truncate_public_tables(self) -> list[str]:
        """Empty every table of the public schema (restart identity, cascade); return their names."""
        out = self.psql(
            """
            do $$
            declare
                tables text;
            begin
                select string_agg(format('%I.%I', schemaname, tablename), ', ' order by tablename)
                  into tables
                  from pg_tables
                 where schemaname = 'public';
                if tables is not null then
                    execute 'truncate table ' || tables || ' restart identity cascade';
                end if;
            end
            $$;
            select tablename from pg_tables where schemaname = 'public' order by tablename;
            """
        )
        return [line for line in out.splitlines() if line]

    def _run_psql(self, args: Sequence[str], *, stdin: str | None, timeout: float, what: str) -> str:
        cmd = [
            str(self.binaries.psql),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.db_port),
            "-U",
            PG_SUPERUSER,
            "-d",
            "postgres",
            *args,
        ]
        try:
            result = subprocess.run(
                cmd,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=_clean_env(),
                cwd=self.dir,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"{what} did not finish within {timeout} s") from exc
        if result.returncode != 0:
            raise StackError(f"{what} failed (exit {result.returncode}):\n{result.stderr.strip()}")
        return result.stdout

    # ---- PostgreSQL

    def _pg_cmd(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", PG_OS_USER, "--"] if os.geteuid() == 0 else []
        return [*prefix, *args]

    def _init_postgres(self) -> None:
        cmd = self._pg_cmd(
            str(self.binaries.initdb),
            "-D",
            str(self.pgdata),
            "-U",
            PG_SUPERUSER,
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
            "--no-instructions",
        )
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=self.dir, env=_clean_env(), check=False)
        if result.returncode != 0:
            raise StackError(f"initdb failed (exit {result.returncode}):\n{result.stderr.strip()}")

    def _write_postgres_conf(self) -> None:
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(render_postgres_conf(db_port=self.db_port, socket_dir=self.socket_dir))

    def start_postgres(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start PostgreSQL and wait until it accepts connections."""
        started = time.monotonic()
        log_path = self.logs / "postgres.log"
        cmd = self._pg_cmd(
            str(self.binaries.pg_ctl),
            "-D",
            str(self.pgdata),
            "-l",
            str(log_path),
            "-w",
            "-t",
            str(int(timeout)),
            "start",
        )
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=self.dir, env=_clean_env(), check=False)
        if result.returncode != 0:
            raise StackError(
                f"PostgreSQL did not start on port {self.db_port} (pg_ctl exit {result.returncode}: "
                f"{result.stdout.strip()} {result.stderr.strip()}); tail of {log_path}:\n{_tail(log_path)}"
            )
        self._postgres_running = True
        log.info("PostgreSQL ready on 127.0.0.1:%d in %.2f s", self.db_port, time.monotonic() - started)

    def stop_postgres(self, mode: str = "immediate") -> None:
        """Stop PostgreSQL (``immediate``, ``fast`` or ``smart``); PostgREST stays up and retries."""
        if not self.pgdata.joinpath("postmaster.pid").exists():
            self._postgres_running = False
            return
        cmd = self._pg_cmd(str(self.binaries.pg_ctl), "-D", str(self.pgdata), "-m", mode, "-w", "stop")
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=self.dir, env=_clean_env(), check=False)
        if result.returncode != 0:
            self._kill_postmaster()
        self._postgres_running = False

    def _kill_postmaster(self) -> None:
        pid_file = self.pgdata / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(pid_file.read_text().splitlines()[0])
            log.warning("pg_ctl stop failed; killing postmaster %d", pid)
            os.kill(pid, signal.SIGQUIT)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while time.monotonic() < deadline and _pid_alive(pid):
                time.sleep(0.05)
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)

    def _apply_sql_file(self, path: Path, variables: dict[str, str] | None = None) -> None:
        args: list[str] = []
        for name, value in (variables or {}).items():
            args += ["-v", f"{name}={value}"]
        args += ["-f", str(path)]
        self._run_psql(args, stdin=None, timeout=120.0, what=f"applying {path}")

    def _bootstrap_database(self, migrations_dir: Path) -> None:
        started = time.monotonic()
        self.psql(f"alter role {PG_SUPERUSER} password '{self.superuser_password}';")
        self._apply_sql_file(ROLES_SQL, {"authenticator_password": self.authenticator_password})
        self.migrations = sorted(migrations_dir.glob("*.sql")) if migrations_dir.is_dir() else []
        if not self.migrations:
            log.warning("no migrations found in %s", migrations_dir)
        for migration in self.migrations:
            t0 = time.monotonic()
            self._apply_sql_file(migration)
            log.debug("applied %s in %.3f s", migration.name, time.monotonic() - t0)
        log.info(
            "applied roles and %d migration(s) from %s in %.2f s",
            len(self.migrations),
            migrations_dir,
            time.monotonic() - started,
        )

    # ---- PostgREST

    def _write_postgrest_conf(self) -> Path:
        conf = self.dir / "conf" / "postgrest.conf"
        conf.write_text(
            render_postgrest_conf(
                authenticator_password=self.authenticator_password,
                db_port=self.db_port,
                jwt_secret=self.jwt_secret,
                server_port=self.postgrest_port,
                admin_port=self.postgrest_admin_port,
            )
        )
        conf.chmod(0o600)
        return conf

    def postgrest_ready(self) -> bool:
        return _http_ok(f"http://127.0.0.1:{self.postgrest_admin_port}/ready", timeout=0.5)

    def start_postgrest(self, timeout: float = START_TIMEOUT_S) -> None:
        """(Re)start PostgREST on its port and wait until ``/ready``; no-op if it is running."""
        if self._postgrest is not None and self._postgrest.poll() is None:
            if self._postgrest_paused:
                self.resume_postgrest()
            return
        conf = self.dir / "conf" / "postgrest.conf"
        if not conf.exists():
            conf = self._write_postgrest_conf()
        log_path = self.logs / "postgrest.log"
        with log_path.open("ab") as log_file:
            self._postgrest = subprocess.Popen(
                [str(self.binaries.postgrest), str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                env=_clean_env(),
                start_new_session=True,  # Ctrl-C in a terminal must not reach it directly
            )
        self._postgrest_paused = False
        proc = self._postgrest
        took = _wait_until(
            self.postgrest_ready,
            what=f"PostgREST (pid {proc.pid}, port {self.postgrest_port})",
            timeout=timeout,
            log_path=log_path,
            alive=lambda: proc.poll() is None,
        )
        log.info("PostgREST ready on 127.0.0.1:%d in %.2f s", self.postgrest_port, took)

    def stop_postgrest(self) -> None:
        """Stop PostgREST (the gateway then answers 502)."""
        proc, self._postgrest = self._postgrest, None
        if proc is None:
            return
        if self._postgrest_paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
            self._postgrest_paused = False
        _terminate(proc, "PostgREST")

    def pause_postgrest(self) -> None:
        """Freeze PostgREST with SIGSTOP: connections are accepted but never answered."""
        if self._postgrest is None or self._postgrest.poll() is not None:
            raise StackError("PostgREST is not running")
        os.kill(self._postgrest.pid, signal.SIGSTOP)
        self._postgrest_paused = True

    def resume_postgrest(self) -> None:
        """Undo :meth:`pause_postgrest` (SIGCONT)."""
        if self._postgrest is None or self._postgrest.poll() is not None:
            raise StackError("PostgREST is not running")
        os.kill(self._postgrest.pid, signal.SIGCONT)
        self._postgrest_paused = False

    # ---- nginx gateway

    def _write_nginx_conf(self) -> Path:
        conf = render_nginx_conf(
            prefix=self.dir / "nginx",
            logs=self.logs,
            keys=[self.anon_key, self.service_key, self.authenticated_key],
            postgrest_port=self.postgrest_port,
            gateway_port=self.gateway_port,
        )
        path = self.dir / "conf" / "nginx.conf"
        path.write_text(conf)
        path.chmod(0o600)
        return path

    def gateway_ready(self) -> bool:
        return _http_ok(f"{self.url}/health", timeout=0.5)

    def start_gateway(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start nginx in the foreground (``daemon off``) and wait for ``/health``."""
        if self._nginx is not None and self._nginx.poll() is None:
            return
        conf = self._write_nginx_conf()
        prefix = self.dir / "nginx"
        error_log = self.logs / "nginx_error.log"
        with (self.logs / "nginx_stderr.log").open("ab") as stderr_file:
            self._nginx = subprocess.Popen(
                [str(self.binaries.nginx), "-e", str(error_log), "-p", str(prefix), "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=stderr_file,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                env=_clean_env(),
                start_new_session=True,
            )
        proc = self._nginx
        took = _wait_until(
            self.gateway_ready,
            what=f"nginx gateway (pid {proc.pid}, port {self.gateway_port})",
            timeout=timeout,
            log_path=error_log,
            alive=lambda: proc.poll() is None,
        )
        log.info("gateway ready at %s in %.3f s", self.url, took)

    def stop_gateway(self) -> None:
        proc, self._nginx = self._nginx, None
        if proc is not None:
            _terminate(proc, "nginx")

    # ---- whole stack

    def alive(self) -> bool:
        """Whether every process this stack started is still running."""
        return (
            not self._stopped
            and self._nginx is not None
            and self._nginx.poll() is None
            and self._postgrest is not None
            and self._postgrest.poll() is None
            and self.pgdata.joinpath("postmaster.pid").exists()
        )

    def stop(self, *, keep_dir: bool = False) -> None:
        """Stop what this stack started (nginx, PostgREST, PostgreSQL) and remove its directory."""
        if self._stopped:
            return
        self._stopped = True
        started = time.monotonic()
        try:
            self.stop_gateway()
        finally:
            try:
                self.stop_postgrest()
            finally:
                try:
                    self.stop_postgres("immediate")
                finally:
                    with _running_lock:
                        _running.discard(self)
                    if not keep_dir:
                        shutil.rmtree(self.dir, ignore_errors=True)
        log.info("stack stopped in %.2f s", time.monotonic() - started)

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate(proc: subprocess.Popen[bytes], name: str) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log.warning("%s (pid %d) ignored SIGTERM; killing it", name, proc.pid)
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT_S)


def _make_stack_dir(base: Path | None) -> Path:
    stack_dir = Path(tempfile.mkdtemp(prefix="supabase-stack-", dir=base))
    for sub in ("pgsock", "logs", "conf", "nginx"):
        (stack_dir / sub).mkdir()
    # Unix socket paths are limited to 107 bytes.
    if len(str(stack_dir / "pgsock" / ".s.PGSQL.65535")) > 100:
        shutil.rmtree(stack_dir)
        raise StackError(f"stack directory path {stack_dir} is too long for a Unix socket; set base_dir")
    if os.geteuid() == 0:
        # PostgreSQL runs as the postgres user; nginx workers (as nobody) need to traverse
        # to their temp dirs, hence 0711 and not 0700.
        try:
            pg_user = pwd.getpwnam(PG_OS_USER)
        except KeyError:
            shutil.rmtree(stack_dir)
            raise MissingBinaryError(
                f"running as root, but there is no `{PG_OS_USER}` user to run PostgreSQL as "
                "(install postgresql-15, or run as a normal user)"
            ) from None
        for path in (stack_dir, stack_dir / "pgsock", stack_dir / "logs"):
            os.chown(path, pg_user.pw_uid, pg_user.pw_gid)
    os.chmod(stack_dir, 0o711)
    os.chmod(stack_dir / "nginx", 0o711)
    return stack_dir


def start_stack(
    *,
    migrations_dir: Path | str = MIGRATIONS_DIR,
    base_dir: Path | str | None = None,
    timeout: float = START_TIMEOUT_S,
    attempts: int = 3,
) -> Stack:
    """Start a whole stack and return it once the gateway answers; stop it with ``stack.stop()``.

    A port taken between picking and binding (another stack starting at the same time)
    makes the attempt fail; it is retried on new ports, up to ``attempts`` times.
    """
    binaries = find_binaries()
    last_error: StackError | None = None
    for attempt in range(1, attempts + 1):
        try:
            return _start_stack_once(binaries, Path(migrations_dir), base_dir, timeout)
        except MissingBinaryError:
            raise
        except StackError as exc:
            last_error = exc
            if "already in use" not in str(exc) or attempt == attempts:
                raise
            log.warning("port conflict while starting the stack (attempt %d); retrying on new ports", attempt)
    assert last_error is not None
    raise last_error


def _start_stack_once(binaries: Binaries, migrations_dir: Path, base_dir: Path | str | None, timeout: float) -> Stack:
    t0 = time.monotonic()
    stack_dir = _make_stack_dir(Path(base_dir) if base_dir else None)
    db_port, postgrest_port, admin_port, gateway_port = _free_ports(4)
    jwt_secret = secrets.token_urlsafe(48)
    now = int(time.time())

    def key(role: str, **extra: Any) -> str:
        claims = {"iss": JWT_ISSUER, "role": role, "iat": now, "exp": now + KEY_LIFETIME_S, **extra}
        return sign_jwt(claims, jwt_secret)

    stack = Stack(
        dir=stack_dir,
        binaries=binaries,
        db_port=db_port,
        postgrest_port=postgrest_port,
        postgrest_admin_port=admin_port,
        gateway_port=gateway_port,
        jwt_secret=jwt_secret,
        anon_key=key("anon"),
        authenticated_key=key("authenticated", aud="authenticated", sub=str(uuid.uuid4())),
        service_key=key("service_role"),
        authenticator_password=secrets.token_hex(16),
        superuser_password=secrets.token_hex(16),
    )
    with _running_lock:
        _running.add(stack)
    try:
        t = time.monotonic()
        stack._init_postgres()
        stack._write_postgres_conf()
        stack.timings["initdb"] = time.monotonic() - t

        t = time.monotonic()
        stack.start_postgres(timeout=timeout)
        stack.timings["postgres"] = time.monotonic() - t

        t = time.monotonic()
        stack._bootstrap_database(migrations_dir)
        stack.timings["migrations"] = time.monotonic() - t

        t = time.monotonic()
        stack.start_postgrest(timeout=timeout)
        stack.timings["postgrest"] = time.monotonic() - t

        t = time.monotonic()
        stack.start_gateway(timeout=timeout)
        stack.timings["gateway"] = time.monotonic() - t
    except BaseException:
        stack.stop()
        raise
    stack.timings["total"] = time.monotonic() - t0
    log.info("local Supabase stack up at %s in %.2f s (%s)", stack.url, stack.timings["total"], stack_dir)
    return stack


@contextlib.contextmanager
def local_stack(**kwargs: Any) -> Iterator[Stack]:
    """``with local_stack() as stack: ...``: start a stack and always stop it."""
    stack = start_stack(**kwargs)
    try:
        yield stack
    finally:
        stack.stop()


@atexit.register
def _stop_leftover_stacks() -> None:
    with _running_lock:
        leftovers = list(_running)
    for stack in leftovers:
        with contextlib.suppress(Exception):
            stack.stop()
