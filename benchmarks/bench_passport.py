"""Change Passport build time on a 1,000-file / 50,000-line diff, against ``git diff`` itself.

- passport build: :func:`passport.build_passport_sync` end to end (resolve both revisions, the
  pinned diff, unidiff parsing, trailers, statement), peer: the pinned ``git diff`` alone producing
  the same diff, measured in the same run, interleaved;
- parsing only: :func:`passport.parse_diff` of the same diff bytes (no git);
- signing + verifying the resulting statement (ed25519), for reference.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from passport import (
    build_passport_sync,
    diff_command,
    generate_signing_key,
    parse_diff,
    sign_statement,
    verify_passport,
)

FILES = 1_000
LINES_PER_FILE = 50  # 25 replaced lines per file: 25 additions + 25 deletions
SAMPLES = 7
_GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def _git(cwd: Path, *args: str) -> bytes:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=_GIT_ENV, capture_output=True, check=True
    ).stdout


def make_change(root: Path) -> Path:
    """A repository whose HEAD changes 1,000 files by 50 lines each (50,000 changed lines)."""
    repo = root / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    for index in range(FILES):
        path = repo / f"pkg{index % 50:02d}" / f"module_{index:04d}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text("".join(f"value_{index}_{n} = {n}\n" for n in range(60)))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    for index in range(FILES):
        path = repo / f"pkg{index % 50:02d}" / f"module_{index:04d}.py"
        lines = [f"value_{index}_{n} = {n}\n" for n in range(60)]
        # Every other line of the first 50 changes: 25 separate one-line replacements.
        for n in range(0, LINES_PER_FILE, 2):
            lines[n] = f"value_{index}_{n} = {n} + 1\n"
        path.write_text("".join(lines))
    _git(repo, "commit", "-qam", "change 1,000 files\n\nWritgate-Run: run_bench")
    return repo


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_change(Path(tmp))
        base = _git(repo, "rev-parse", "HEAD~").decode().strip()
        head = _git(repo, "rev-parse", "HEAD").decode().strip()
        statement = build_passport_sync(repo, base, head, repository="bench/repo")  # warm-up
        totals = statement["predicate"]["change"]["totals"]
        assert totals["files"] == FILES, totals
        assert totals["lines"] == FILES * LINES_PER_FILE, totals

        build, git_diff, parse, sign_verify = [], [], [], []
        key = generate_signing_key("ed25519")
        for _ in range(SAMPLES):
            start = time.perf_counter()
            patch = _git(repo, *diff_command(base, head))
            git_diff.append(_ms(start))

            start = time.perf_counter()
            build_passport_sync(repo, base, head, repository="bench/repo")
            build.append(_ms(start))

            start = time.perf_counter()
            parse_diff(patch)
            parse.append(_ms(start))

            start = time.perf_counter()
            verify_passport(sign_statement(statement, key), [key.public_key])
            sign_verify.append(_ms(start))

    size = f"{len(patch) / 1e6:.1f} MB diff"
    return [
        {
            "figure": "passport build, 1,000 files / 50k lines",
            "unit": "ms",
            "samples": build,
            "target": "<= 1000 ms and <= 3x git diff (with review and gate)",
            "peer": {"name": "git diff (pinned command)", "samples": git_diff},
            "note": size,
        },
        {
            "figure": "passport diff parsing only (unidiff), 1,000 files / 50k lines",
            "unit": "ms",
            "samples": parse,
            "target": None,
            "peer": None,
        },
        {
            "figure": "passport sign + verify (ed25519), 1,000-file statement",
            "unit": "ms",
            "samples": sign_verify,
            "target": None,
            "peer": None,
        },
    ]


if __name__ == "__main__":
    import statistics

    for figure in run():
        line = f"{figure['figure']}: median {statistics.median(figure['samples']):.1f} ms"
        if figure["peer"]:
            line += (
                f" (peer {figure['peer']['name']}: "
                f"{statistics.median(figure['peer']['samples']):.1f} ms)"
            )
        print(line)
