"""The real agent CLIs against their real providers: only with an API key and the CLI installed.

On a machine without them (CI included) each case is skipped with the reason. With them, one
small turn runs in the real sandbox with the provider's API host allowlisted, and must end with
a success result, a change and reported usage.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import anyio
import pytest

from writer.lifecycle import Lifecycle
from writer.models import CreateRunRequest
from writgate.app.database import Database
from writgate.settings import Settings

from ..support.writer_env import writer_env

pytestmark = pytest.mark.anyio

CASES = {
    "claude-code": (
        "claude",
        "ANTHROPIC_API_KEY",
        "anthropic/claude-haiku-4.5",
        "api.anthropic.com",
    ),
    "codex": ("codex", "OPENAI_API_KEY", "openai/gpt-5.1-codex", "api.openai.com"),
    "opencode": (
        "opencode",
        "ANTHROPIC_API_KEY",
        "anthropic/claude-haiku-4.5",
        "api.anthropic.com",
    ),
    "aider": ("aider", "ANTHROPIC_API_KEY", "anthropic/claude-haiku-4.5", "api.anthropic.com"),
}


def _case(driver: str) -> Any:
    binary, key, _, _ = CASES[driver]
    reason = None
    if not os.environ.get(key):
        reason = f"{key} is not set: the real {driver} CLI needs a model API key"
    elif shutil.which(binary, path="/usr/local/bin:/usr/bin") is None:
        reason = f"the {binary} CLI is not installed in /usr/local/bin or /usr/bin"
    return pytest.param(driver, marks=pytest.mark.skipif(reason is not None, reason=reason or ""))


@pytest.mark.parametrize("driver", [_case(driver) for driver in sorted(CASES)])
async def test_real_cli_turn(settings: Settings, database: Database, driver: str) -> None:
    _, _, model, host = CASES[driver]
    body: dict[str, Any] = {
        "repository": "acme/app",
        "prompt": "Create a file named hello.txt containing the single word hello.",
        "modelId": model,
        "agent": {"driver": driver},
        "publish": {"mode": "branch"},
        "safety": {
            "network": {"mode": "restricted", "allowlist": [host]},
            "resources": {"maxCredits": 0.5, "maxWallSeconds": 300},
        },
    }
    async with writer_env(settings, database) as env:
        record, _ = await env.writer.create_run("default", CreateRunRequest.model_validate(body))
        with anyio.fail_after(360):
            record = await env.writer.wait("default", record.id)
        assert record.lifecycle is Lifecycle.SUCCEEDED, record.failure
        assert record.result["diffStats"]["files"] >= 1
        if driver != "aider":
            assert record.usage["reported"] is True and record.usage["outputTokens"] > 0
