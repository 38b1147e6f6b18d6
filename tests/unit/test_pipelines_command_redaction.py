"""The command stage's outputs (stored, shown, sent by webhooks) carry no secrets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipelines import StageContext
from pipelines.errors import StageFailure
from pipelines.stages.command import TAIL, run_command

TOKEN = "ghp_" + "Zx9" * 12
DEPLOY_TOKEN = "legacy-0123456789abcdef"
PROGRAM = """\
import os, sys
if sys.argv[2] == "straddle":  # the tail of stdout starts inside the token
    print(sys.argv[1] + " " + "x" * int(sys.argv[3]))
    sys.exit(0)
print("deploying to", os.environ["TARGET"])
print("using", os.environ["DEPLOY_TOKEN"], "and", sys.argv[1])
print("-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----")
print("failed with", os.environ["DEPLOY_TOKEN"], file=sys.stderr)
sys.exit(int(sys.argv[2]))
"""


def _ctx(tmp_path: Path, *args: str) -> StageContext:
    return StageContext(
        pipeline_run_id="prun_x",
        stage_id="deploy",
        kind="command",
        attempt=1,
        org_id="default",
        idempotency_key="k",
        stage_key="k",
        base_dir=tmp_path,
        params={
            "argv": [sys.executable, "-c", PROGRAM, TOKEN, *args],
            "env": {"TARGET": "production", "DEPLOY_TOKEN": DEPLOY_TOKEN},
        },
    )


@pytest.mark.anyio
async def test_stdout_and_the_failure_detail_are_redacted(tmp_path: Path) -> None:
    stdout = str((await run_command(_ctx(tmp_path, "0")))["stdout"])
    assert "deploying to production" in stdout  # a setting is not a secret
    assert DEPLOY_TOKEN not in stdout and TOKEN[:16] not in stdout
    assert "MIIEvQIBADANBgkq" not in stdout and "[REDACTED:private-key]" in stdout
    with pytest.raises(StageFailure) as failed:
        await run_command(_ctx(tmp_path, "3"))
    assert str(failed.value).endswith("exited with code 3: failed with [REDACTED]")


@pytest.mark.anyio
async def test_the_tail_is_cut_after_redaction(tmp_path: Path) -> None:
    fill = TAIL - len(TOKEN) + 16 - 2  # cut first, the tail would keep the token's last 16
    stdout = str((await run_command(_ctx(tmp_path, "straddle", str(fill))))["stdout"])
    raw = f"{TOKEN} {'x' * fill}\n"
    assert TOKEN[-16:] in raw[-TAIL:]  # what a cut before redaction would have kept
    assert TOKEN[-16:] not in stdout and stdout.startswith("[REDACTED:github-token] xxx")
