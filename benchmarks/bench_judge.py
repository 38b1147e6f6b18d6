"""Passport + built-in review + gate on a 1,000-file / 50,000-line diff, against ``git diff``.

- review + passport + gate: :func:`judge.review_change` with every default built-in reviewer
  that needs no external tool (ruff excluded), then :func:`passport.build_passport` with the
  findings, then the policy decision — the judge's whole path for one change, end to end;
- the same with ruff (ruff runs on the 1,000 changed Python files at head);
- review only (every default built-in except ruff);
- peer: the pinned ``git diff`` producing the same diff, measured in the same run, interleaved.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).parent))

from bench_passport import _GIT_ENV, make_change

import judge
import passport
import policies

SAMPLES = 5
POLICY = policies.parse_policy(
    """\
policy: writgate/v1
name: bench
rules:
  - name: no-secrets
    if: {review.findings: {reviewer: secrets, count: "> 0"}}
    block: "A secret was found in the change."
  - name: big-change
    if: {diff.lines: "> 1000"}
    warn: "Large change."
  - name: clean
    require: {review.findings: {severity: ">= error", count: "== 0"}}
"""
)
WITHOUT_RUFF = [name for name in judge.DEFAULT_REVIEWERS if name != "ruff"]


async def _judge(repo: Path, base: str, head: str, reviewers: list[str]) -> str:
    result = await judge.review_change(repo, base, head, reviewers=reviewers)
    statement = await passport.build_passport(
        repo, base, head, repository="bench/repo", reviews=result.to_passport_reviews()
    )
    return judge.gate.decide(POLICY, statement, None).decision


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_change(Path(tmp))
        base = (
            subprocess.run(
                ["git", "rev-parse", "HEAD~"],
                cwd=repo,
                env=_GIT_ENV,
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .strip()
        )
        head = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                cwd=repo,
                env=_GIT_ENV,
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .strip()
        )
        diff = ["git", *passport.diff_command(base, head)]
        assert anyio.run(_judge, repo, base, head, WITHOUT_RUFF) == "allow"  # warm-up
        full: list[float] = []
        with_ruff: list[float] = []
        review_only: list[float] = []
        peer: list[float] = []
        for _ in range(SAMPLES):
            start = time.perf_counter()
            subprocess.run(diff, cwd=repo, env=_GIT_ENV, capture_output=True, check=True)
            peer.append(_ms(start))
            start = time.perf_counter()
            anyio.run(_judge, repo, base, head, WITHOUT_RUFF)
            full.append(_ms(start))
            start = time.perf_counter()
            anyio.run(lambda: judge.review_change(repo, base, head, reviewers=WITHOUT_RUFF))
            review_only.append(_ms(start))
            start = time.perf_counter()
            anyio.run(_judge, repo, base, head, list(judge.DEFAULT_REVIEWERS))
            with_ruff.append(_ms(start))
    git_diff = {"name": "git diff (pinned options)", "samples": peer}
    return [
        {
            "figure": "review (built-ins, no ruff) + passport + gate, 1,000 files / 50k lines",
            "unit": "ms",
            "samples": full,
            "target": "<= 1000 ms and <= 3x git diff",
            "peer": git_diff,
        },
        {
            "figure": "review (all defaults incl. ruff) + passport + gate, 1,000 files / 50k lines",
            "unit": "ms",
            "samples": with_ruff,
            "target": None,
            "peer": git_diff,
        },
        {
            "figure": "review only (built-ins, no ruff), 1,000 files / 50k lines",
            "unit": "ms",
            "samples": review_only,
            "target": None,
            "peer": git_diff,
        },
    ]


if __name__ == "__main__":
    import statistics

    for figure in run():
        samples = figure["samples"]
        peer_samples = figure["peer"]["samples"] if figure["peer"] else []
        print(
            f"{figure['figure']}: median {statistics.median(samples):.0f} {figure['unit']}"
            + (f" (git diff {statistics.median(peer_samples):.0f} ms)" if peer_samples else "")
            + (f" target {figure['target']}" if figure["target"] else "")
        )
