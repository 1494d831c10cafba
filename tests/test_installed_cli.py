"""The project installs as a package (pyproject.toml) and its `conversation-manager` command runs
from any directory, with records under the user's data directory, not the current one."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_installed_command_runs_from_any_directory(tmp_path: Path) -> None:
    source = tmp_path / "source"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True)
    for name in files.stdout.splitlines():
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # The dependencies are this environment's (already installed); the project itself is the wheel.
    venv_site = subprocess.run(
        [venv / "bin" / "python", "-c", "import site; print(site.getsitepackages()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(venv_site, "deps.pth").write_text(site.getsitepackages()[0] + "\n")
    wheel = next(wheels.glob("callcenter_voice_agent-*.whl"))
    subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, timeout=300
    )

    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    listed = subprocess.run(
        [venv / "bin" / "conversation-manager", "list", "--json"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "[]"
    assert (home / ".local" / "share" / "callcenter-voice-agent" / "records.sqlite3").is_file()
    assert not any(elsewhere.iterdir()), "nothing is written to the current directory"
    refused = subprocess.run(
        [venv / "bin" / "conversation-manager", "list", "--limit", "0"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and refused.stderr.startswith("conversation-manager list:")


def test_data_and_journal_defaults_do_not_depend_on_the_current_directory(tmp_path: Path) -> None:
    from settings import Settings

    s = Settings.from_env({"HOME": str(tmp_path)})
    assert s.data_dir == tmp_path / ".local" / "share" / "callcenter-voice-agent"
    assert s.journal_dir == s.data_dir / "journal"
    xdg = Settings.from_env({"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert xdg.data_dir == tmp_path / "xdg" / "callcenter-voice-agent"
    relative_xdg = Settings.from_env({"HOME": str(tmp_path), "XDG_DATA_HOME": "rel"})
    assert relative_xdg.data_dir == s.data_dir, "a relative XDG_DATA_HOME is ignored, as the XDG spec says"
    assert Settings.from_env({"HOME": str(tmp_path), "DATA_DIR": "/srv/x"}).journal_dir == Path("/srv/x/journal")
