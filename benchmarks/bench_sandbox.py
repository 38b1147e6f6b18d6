"""Local sandbox start-up: cold start on a 5,000-file repository, and a warm follow-up.

- cold start: ``LocalProvider.create`` of a new sandbox (the repository's mirror already cached,
  as it is after a repository's first run), compared with ``git worktree add`` of the same commit
  of the same repository, measured in the same run;
- the first create of a repository (the mirror is cloned), for reference;
- warm follow-up start: ``attach`` of a kept-warm sandbox plus a trivial ``exec`` (``true``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from writer.sandbox import SandboxSpec
from writer.sandbox.local import LocalProvider

FILES = 5_000
SAMPLES = 3
WARM_SAMPLES = 20
_GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def _git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=_GIT_ENV, capture_output=True, check=True, text=True
    )
    return result.stdout


def make_repository(root: Path, files: int = FILES) -> Path:
    """A repository with ``files`` small source files in 100 directories, one commit on main."""
    repo = root / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    for index in range(files):
        directory = repo / f"pkg{index % 100:03d}"
        directory.mkdir(exist_ok=True)
        (directory / f"module_{index:05d}.py").write_text(
            f'"""Module {index}."""\n\n\ndef f{index}(x):\n    return x * {index}\n'
        )
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "5,000 files")
    return repo


async def _measure(root: Path, repo: Path) -> list[dict[str, Any]]:
    provider = LocalProvider(home=root / "home")
    spec = SandboxSpec(repository_url=str(repo), ref="main")

    started = time.perf_counter()
    first = await provider.create(spec)
    first_ms = (time.perf_counter() - started) * 1000
    await first.close()

    cold: list[float] = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        sandbox = await provider.create(spec)
        cold.append((time.perf_counter() - started) * 1000)
        await sandbox.close()

    worktree: list[float] = []
    for index in range(SAMPLES):
        path = root / f"worktree{index}"
        started = time.perf_counter()
        _git(repo, "worktree", "add", "-q", "--detach", str(path), "main")
        worktree.append((time.perf_counter() - started) * 1000)
        _git(repo, "worktree", "remove", "--force", str(path))

    sandbox = await provider.create(spec)
    await sandbox.write_file("turn1.txt", b"state from the first turn\n")
    await sandbox.keep_alive(600)
    warm: list[float] = []
    attach_only: list[float] = []
    for _ in range(WARM_SAMPLES):
        started = time.perf_counter()
        again = await provider.attach(sandbox.id)
        attached = time.perf_counter()
        assert again is not None
        result = await again.exec(["true"])
        assert result.exit_code == 0
        warm.append((time.perf_counter() - started) * 1000)
        attach_only.append((attached - started) * 1000)
    await sandbox.close()
    await provider.aclose()

    return [
        {
            "figure": f"local sandbox cold start, {FILES:,}-file repo (cached mirror)",
            "unit": "ms",
            "samples": cold,
            "target": "<= 2x git worktree add",
            "peer": {"name": "git worktree add", "samples": worktree},
        },
        {
            "figure": f"local sandbox first create, {FILES:,}-file repo (mirror clone)",
            "unit": "ms",
            "samples": [first_ms],
            "target": None,
            "peer": None,
        },
        {
            "figure": "local sandbox warm follow-up start (attach + exec true)",
            "unit": "ms",
            "samples": warm,
            "target": "<= 20 ms",
            "peer": None,
        },
        {
            "figure": "local sandbox attach of a warm sandbox",
            "unit": "ms",
            "samples": attach_only,
            "target": None,
            "peer": None,
        },
    ]


def run() -> list[dict[str, Any]]:
    """The figures of this benchmark (see the module docstring)."""
    root = Path(tempfile.mkdtemp(prefix="writgate-bench-sandbox-"))
    try:
        repo = make_repository(root)
        return asyncio.run(_measure(root, repo))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    import statistics

    for figure in run():
        samples = figure["samples"]
        line = (
            f"{figure['figure']}: median {statistics.median(samples):.1f} {figure['unit']}"
            f" (min {min(samples):.1f})"
        )
        if figure["peer"]:
            line += f" (peer {figure['peer']['name']}: "
            line += f"{statistics.median(figure['peer']['samples']):.1f} {figure['unit']})"
        print(line)
