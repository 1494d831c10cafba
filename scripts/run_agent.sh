#!/usr/bin/env bash
# Run the agent on a fresh machine: sets up what it needs, then `python agent.py ARGS`.
#
#   OPENAI_API_KEY=sk-... bash scripts/run_agent.sh            # console --text (default)
#   bash scripts/run_agent.sh console                           # voice in the terminal
#   bash scripts/run_agent.sh dev                               # join a LiveKit server
#
# Set-up, only when missing: a virtualenv in .venv with requirements.txt, and PortAudio
# (the LiveKit console needs it even in text mode). Settings come from the environment
# or .env (see .env.example); with no SUPABASE_URL the records go to
# ~/.local/share/callcenter-voice-agent/records.sqlite3 (DATA_DIR overrides).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
VENV="$REPO/.venv"
STAMP="$VENV/.runtime-requirements.sha256"

if ! ldconfig -p 2>/dev/null | grep -q libportaudio; then
    echo "[run_agent] installing PortAudio (libportaudio2)" >&2
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libportaudio2
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libportaudio2
    fi
fi

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    echo "[run_agent] installing Python requirements into .venv" >&2
    "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.txt
    echo "$want" > "$STAMP"
fi

[ "$#" -gt 0 ] || set -- console --text
exec "$VENV/bin/python" agent.py "$@"
