"""Peer orchestrators for the per-stage overhead figure: DBOS Transact and Prefect.

Each peer gets its own virtual environment under ``benchmarks/.peers-venv/`` (not committed),
created here on first use with pinned versions from the package registry, and runs the same
100-step chain of trivial durable steps as writgate's figure (``peers/*_chain.py``) in a
subprocess, on SQLite, measured the same way: wall time of one chain divided by its steps, after
a 5-step warm-up. A peer that cannot be installed or run is returned with an ``unavailable``
reason instead of samples; nothing here raises.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".peers-venv"
INSTALL_TIMEOUT = 900
RUN_TIMEOUT = 900

# name shown in the table, pinned requirement, script, extra environment
PEERS: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "dbos": ("DBOS Transact 3.4.0, SQLite", "dbos==3.4.0", "dbos_chain.py", {}),
    "prefect": (
        "Prefect 3.9.1, ephemeral SQLite server",
        "prefect==3.9.1",
        "prefect_chain.py",
        {
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
            "DO_NOT_TRACK": "1",
        },
    ),
}


class Unavailable(Exception):
    """The peer cannot be installed or run here; the message says why, in one line."""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def _environment(extra: dict[str, str]) -> dict[str, str]:
    drop = ("WRITGATE_", "PREFECT_", "DBOS_", "VIRTUAL_ENV", "PYTHON")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {**env, **extra}


def ensure_venv(peer: str) -> Path:
    """The Python of ``peer``'s virtual environment, created and installed if needed."""
    _label, requirement, _script, _extra = PEERS[peer]
    venv = VENVS / peer
    python = venv / "bin" / "python"
    marker = venv / "writgate-peer.txt"
    if python.exists() and marker.exists() and marker.read_text().strip() == requirement:
        return python
    print(f"  installing {requirement} into {venv} …", file=sys.stderr, flush=True)
    env = _environment({})
    try:
        if not python.exists():
            subprocess.run(
                [sys.executable, "-m", "venv", "--clear", str(venv)],
                check=True,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT,
                env=env,
            )
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--retries",
                "2",
                requirement,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            env=env,
        )
    except subprocess.CalledProcessError as exc:
        errors = [
            line for line in (exc.stderr or "").splitlines() if "WARNING: Location" not in line
        ]
        raise Unavailable(
            f"install of {requirement} failed: {_last_line(chr(10).join(errors))}"
        ) from None
    except subprocess.TimeoutExpired:
        raise Unavailable(f"install of {requirement} took over {INSTALL_TIMEOUT} s") from None
    except OSError as exc:
        raise Unavailable(f"cannot create a virtual environment: {exc}") from None
    marker.write_text(requirement + "\n")
    return python


def _measure(peer: str, steps: int, samples: int) -> list[float]:
    _label, _requirement, script, extra = PEERS[peer]
    python = ensure_venv(peer)
    with tempfile.TemporaryDirectory(prefix=f"writgate-bench-{peer}-") as tmp:
        env = _environment({**extra, "PREFECT_HOME": str(Path(tmp) / "prefect-home")})
        try:
            result = subprocess.run(
                [str(python), str(HERE / "peers" / script), str(steps), str(samples), tmp],
                cwd=tmp,
                env=env,
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise Unavailable(f"did not finish within {RUN_TIMEOUT} s") from None
        except OSError as exc:
            raise Unavailable(f"cannot start: {exc}") from None
    if result.returncode != 0:
        raise Unavailable(f"exited with {result.returncode}: {_last_line(result.stderr)}")
    try:
        found = json.loads(_last_line(result.stdout))
        return [float(sample) for sample in found]
    except (ValueError, TypeError):
        raise Unavailable(f"unexpected output: {_last_line(result.stdout)}") from None


def per_stage_overhead(steps: int, samples: int) -> list[dict[str, Any]]:
    """Each peer's per-step overhead on a ``steps``-step chain, or why it is unavailable."""
    found: list[dict[str, Any]] = []
    for peer, (label, *_rest) in PEERS.items():
        print(f"  peer {label} …", file=sys.stderr, flush=True)
        try:
            found.append({"name": label, "samples": _measure(peer, steps, samples)})
        except Unavailable as exc:
            found.append({"name": label, "samples": [], "unavailable": str(exc)})
    return found


if __name__ == "__main__":
    for entry in per_stage_overhead(int(sys.argv[1]) if len(sys.argv) > 1 else 100, 3):
        print(entry)
