"""Running reviewers: plugin findings, failures closed, secret redaction of every reviewer."""

from __future__ import annotations

from pathlib import Path

import anyio

from judge import Finding, run_reviewers
from judge.change import Change
from judge.reviewers import StaticReviewer, create_reviewer
from tests.unit.judge_repos import change_of

TOKEN = "ghp_" + "Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0UvWxYz"


class _Crashing:
    name = "crashing"

    async def review(self, change: Change) -> list[Finding]:
        raise RuntimeError("plugin bug")


def test_plugin_findings_failures_and_redaction(tmp_path: Path) -> None:
    change = change_of(tmp_path, {}, {"a.py": f"T = '{TOKEN}'\n"})
    echo = StaticReviewer(
        "echo",
        [Finding.create(reviewer="echo", rule="seen", severity="warning", path="a.py",
                        start_line=1, message=f"saw {TOKEN}", snippet="x",
                        suggestion=f"drop {TOKEN}")],
    )  # fmt: skip
    result = anyio.run(run_reviewers, change, [echo, _Crashing(), create_reviewer("secrets")])
    assert echo.seen == [change]
    by_rule = {f.rule: f for f in result.findings}
    assert by_rule["seen"].message == "saw <redacted>"
    assert by_rule["seen"].suggestion == "drop <redacted>"
    assert by_rule["reviewer-failed"].message == (
        "The crashing reviewer could not run: RuntimeError: plugin bug"
    )
    assert by_rule["github-token"].severity == "error"
    assert [o.status for o in result.reviewers] == ["succeeded", "failed", "succeeded"]
    assert result.counts["crashing"] == {"error": 1, "warning": 0, "info": 0}
    assert [f.severity for f in result.findings] == sorted(
        (f.severity for f in result.findings), key=["error", "warning", "info"].index
    )
