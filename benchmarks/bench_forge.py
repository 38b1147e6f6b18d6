"""The local forge on the embedded default (SQLite in a temporary home, real git).

- reading one pull request with its reviews and checks (what the judge does on every refresh);
- listing 200 pull requests across one repository (the dashboard and ``writgate forge prs``);
- setting a commit status on a head that 200 PRs do not share (one ledger event);
- a guarded merge (required context checked, fast-forward of the base branch in the bare repo),
  with ``git merge`` in a plain clone as the peer;
- a check run with 120 annotations.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from forge import Annotation, LocalForge
from writgate.app.database import open_database
from writgate.settings import Settings

PRS = 200
SAMPLES = 15
GATE = "writgate/merge-gate"


def _git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


async def _measure(home: Path) -> list[dict[str, Any]]:
    settings = Settings(home=home, database_url=f"sqlite+aiosqlite:///{home / 'writgate.db'}")
    database = await open_database(settings)
    try:
        forge = LocalForge(engine=database.engine, ledger=database.ledger, home=home)
        source = home / "source"
        source.mkdir(parents=True)
        (source / "README.md").write_text("# bench\n")
        repo = await forge.create_repository("bench/web", from_dir=source)
        work = home / "work"
        _git(home, "clone", "-q", str(repo.path), str(work))
        # 200 branches, one commit each, pushed at once.
        for i in range(PRS):
            _git(work, "checkout", "-q", "-B", f"b{i}", "origin/main")
            (work / f"f{i}.txt").write_text(f"{i}\n")
            _git(work, "add", "-A")
            _git(work, "commit", "-qm", f"change {i}")
        _git(work, "push", "-q", "origin", *[f"b{i}" for i in range(PRS)])
        for i in range(PRS):
            await forge.open_pull_request(
                "bench/web", head=f"b{i}", base="main", title=f"PR {i}", body="", draft=False
            )
        pr = await forge.get_pull_request("bench/web", 1)
        await forge.approve("bench/web", 1, user="alice")
        await forge.set_commit_status(
            "bench/web", pr.head_sha, context="ci/tests", state="success", description="ok"
        )

        read, listing, status, check = [], [], [], []
        annotations = [
            Annotation(
                path="f.txt",
                start_line=i + 1,
                end_line=i + 1,
                annotation_level="warning",
                message=f"m{i}",
            )
            for i in range(120)
        ]
        for _ in range(SAMPLES):
            start = time.perf_counter()
            await forge.get_pull_request("bench/web", 1)
            read.append(_ms(start))
            start = time.perf_counter()
            page = await forge.list_pull_requests("bench/web", limit=PRS)
            listing.append(_ms(start))
            assert len(page.items) == PRS
            start = time.perf_counter()
            await forge.set_commit_status(
                "bench/web", pr.head_sha, context="bench", state="pending", description="x"
            )
            status.append(_ms(start))
            start = time.perf_counter()
            await forge.create_check_run(
                "bench/web",
                pr.head_sha,
                name="judge",
                status="completed",
                conclusion="success",
                title="t",
                summary="s",
                annotations=annotations,
            )
            check.append(_ms(start))

        merges, peer = [], []
        for i in range(2, 2 + SAMPLES):
            head = (await forge.get_pull_request("bench/web", i)).head_sha
            await forge.set_commit_status(
                "bench/web", head, context=GATE, state="success", description="ok"
            )
            start = time.perf_counter()
            await forge.merge_pull_request("bench/web", i)
            merges.append(_ms(start))
            start = time.perf_counter()
            _git(work, "checkout", "-q", "-B", "peer", f"b{i + SAMPLES}")
            _git(work, "merge", "-q", "--no-edit", f"b{i + SAMPLES + 1}")
            peer.append(_ms(start))
    finally:
        await database.dispose()
    return [
        {
            "figure": "local forge: read one PR (reviews, checks, head sync)",
            "unit": "ms",
            "samples": read,
            "target": None,
            "peer": None,
        },
        {
            "figure": f"local forge: list {PRS} PRs",
            "unit": "ms",
            "samples": listing,
            "target": None,
            "peer": None,
        },
        {
            "figure": "local forge: set a commit status (+ ledger event)",
            "unit": "ms",
            "samples": status,
            "target": None,
            "peer": None,
        },
        {
            "figure": "local forge: check run with 120 annotations",
            "unit": "ms",
            "samples": check,
            "target": None,
            "peer": None,
        },
        {
            "figure": "local forge: guarded merge into the bare repository",
            "unit": "ms",
            "samples": merges,
            "target": None,
            "peer": {"name": "git checkout + git merge in a clone", "samples": peer},
        },
    ]


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="writgate-bench-forge-") as tmp:
        return anyio.run(_measure, Path(tmp))


if __name__ == "__main__":
    for figure in run():
        line = f"{figure['figure']}: median {statistics.median(figure['samples']):.1f} ms"
        if figure["peer"]:
            line += (
                f" (peer {figure['peer']['name']}: "
                f"{statistics.median(figure['peer']['samples']):.1f} ms)"
            )
        print(line)
