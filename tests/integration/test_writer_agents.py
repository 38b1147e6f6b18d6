"""CLI agent drivers driven through the executor: real bwrap sandbox, local forge, both databases.

The CLIs are stand-ins (tests/support/fake_agent_cli.py) installed as ``~/.local/bin/claude``
(…``codex``, ``opencode``, ``aider``) in each sandbox, where per-user installers put the real
ones; they print each tool's documented event stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from writer.errors import RunConflict
from writer.lifecycle import Lifecycle
from writer.models import CreateRunRequest, FollowUpRequest
from writer.sandbox import Sandbox, SandboxProvider, SandboxSpec
from writer.store import RunRecord
from writgate.app.database import Database
from writgate.ledger import Event
from writgate.settings import Settings

from ..support.writer_env import WriterEnv, writer_env

pytestmark = pytest.mark.anyio

FAKE = (Path(__file__).parent.parent / "support" / "fake_agent_cli.py").read_bytes()
INSTALL = (
    'mkdir -p "$HOME/.local/bin" && cat > "$HOME/.local/bin/claude" && cd "$HOME/.local/bin" '
    "&& chmod +x claude && for name in codex opencode aider; do cp claude $name; done"
)
MODELS = {
    "claude-code": "anthropic/claude-sonnet-4.6",
    "codex": "openai/gpt-5.1-codex",
    "opencode": "anthropic/claude-sonnet-4.6",
    "aider": "anthropic/claude-sonnet-4.6",
}
KEY = "sk-ant-api03-" + "Zq7" * 10


class FakeCliProvider:
    """The real provider, with the stand-in CLIs installed in every new sandbox."""

    def __init__(self, inner: SandboxProvider):
        self.inner = inner
        self.name = inner.name

    async def create(self, spec: SandboxSpec) -> Sandbox:
        sandbox = await self.inner.create(spec)
        result = await sandbox.exec(["sh", "-c", INSTALL], stdin=FAKE)
        assert result.exit_code == 0, result.stderr
        return sandbox

    async def attach(self, sandbox_id: str) -> Sandbox | None:
        return await self.inner.attach(sandbox_id)

    async def aclose(self) -> None:
        """Close the real provider's sandboxes, as the executor does at shutdown: no teardown
        may still run when the test's event loop closes."""
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()


@asynccontextmanager
async def fake_cli_env(settings: Settings, database: Database) -> AsyncIterator[WriterEnv]:
    async with writer_env(settings, database) as env:
        env.services.executor.provider = FakeCliProvider(env.services.provider)
        yield env


def request(driver: str | None, prompt: str, **changes: Any) -> CreateRunRequest:
    body: dict[str, Any] = {
        "repository": "acme/app",
        "title": "Add notes",
        "prompt": prompt,
        "modelId": MODELS[driver or "claude-code"],
        "publish": {"mode": "draft_pr"},
        "session": {"keepWarmSeconds": 30},
        **changes,
    }
    if driver is not None:
        body["agent"] = {"driver": driver}
    return CreateRunRequest.model_validate(body)


async def settle(env: WriterEnv, record: RunRecord, timeout: float = 60) -> RunRecord:
    with anyio.fail_after(timeout):
        return await env.writer.wait("default", record.id)


async def events(database: Database, run_id: str) -> list[Event]:
    return list(await database.ledger.read(run_id, org_id="default"))


def argv_of(ledger: list[Event], turn: int) -> list[str]:
    for event in ledger:
        text = str(event.data.get("text", ""))
        if event.type == "agent.message" and event.data.get("turn") == turn and "argv: " in text:
            return list(json.loads(text.split("argv: ", 1)[1]))
    raise AssertionError(f"no argv reported in turn {turn}")


async def notes_at_head(env: WriterEnv, head: str) -> str:
    out = await anyio.run_process(
        ["git", "show", f"{head}:notes.txt"], cwd=env.forge.repository_path("acme/app")
    )
    return out.stdout.decode()


async def process_gone(pattern: str) -> None:
    with anyio.fail_after(10):
        while True:  # polling another process, with a deadline
            if not (await anyio.run_process(["pgrep", "-f", pattern], check=False)).stdout.strip():
                return
            await anyio.sleep(0.05)


@pytest.mark.parametrize("driver", ["claude-code", "codex", "opencode", "aider"])
async def test_cli_driver_runs_publishes_and_resumes(
    settings: Settings, database: Database, driver: str
) -> None:
    async with fake_cli_env(settings, database) as env:
        # claude-code is not named: it is the catalog's default driver for the model.
        chosen = None if driver == "claude-code" else driver
        record, _ = await env.writer.create_run("default", request(chosen, "write first"))
        record = await settle(env, record)
        assert record.lifecycle is Lifecycle.AWAITING_FOLLOW_UP, record.failure
        session = record.result.get("agentSession")
        assert (session is None) == (driver == "aider")
        first = argv_of(await events(database, record.id), 1)
        assert first[0] != "-r" and "resume" not in first and "--session" not in first

        await env.writer.send_message("default", record.id, FollowUpRequest(text="write second"))
        record = await settle(env, record)
        assert record.lifecycle is Lifecycle.AWAITING_FOLLOW_UP, record.failure
        ledger = await events(database, record.id)
        second = argv_of(ledger, 2)
        if driver == "claude-code":
            assert second[second.index("-r") + 1] == session
            assert second[second.index("--max-turns") + 1] == "3"
            assert second[second.index("--model") + 1] == "claude-sonnet-4-6"
        elif driver == "codex":
            assert second[second.index("resume") + 1] == session and second[-1] == "-"
        elif driver == "opencode":
            assert second[second.index("--session") + 1] == session
        else:
            assert "--restore-chat-history" in second and "--yes-always" in second
        assert record.result.get("agentSession") == session  # the same session all along

        pr = await env.forge.get_pull_request("acme/app", record.result["pullRequest"]["number"])
        assert await notes_at_head(env, pr.head_sha) == "first\nsecond\n"
        files = await env.forge.list_files("acme/app", pr.number)
        assert [f.filename for f in files] == ["notes.txt"]  # no agent files (.aider*) in it
        assert record.to_model().result.agent_session == session  # the API can render it

        kinds = {e.type for e in ledger}
        assert {"agent.message", "agent.usage"} <= kinds
        if driver != "aider":
            assert "agent.command" in kinds
        usage = record.usage
        assert usage["turns"] == 2
        if driver == "aider":
            assert usage["reported"] is False and usage["credits"] == 0
            notes = [e.data for e in ledger if e.type == "agent.usage" and "note" in e.data]
            assert notes == [
                {"reported": False, "turn": 1, "note": "the aider driver reports no usage"}
            ]
        else:
            assert usage["reported"] is True
            assert usage["inputTokens"] > 0 and usage["outputTokens"] > 0
            assert usage["credits"] > 0
        await env.writer.complete("default", record.id)


@pytest.mark.parametrize("driver", ["claude-code", "opencode"])
async def test_max_credits_kills_the_agent_mid_turn(
    settings: Settings, database: Database, driver: str
) -> None:
    async with fake_cli_env(settings, database) as env:
        record, _ = await env.writer.create_run(
            "default",
            request(driver, "overrun", safety={"resources": {"maxCredits": 1}}),
        )
        record = await settle(env, record)
        assert record.lifecycle is Lifecycle.FAILED
        assert record.failure is not None
        assert record.failure["code"] == "max_credits_exceeded", record.failure
        binary = "claude" if driver == "claude-code" else driver
        await process_gone(f".local/bin/{binary}")
        # What was reported before the kill is on the run; the kill came right after crossing.
        assert 1 < record.usage["credits"] < 3
        assert record.turns[0]["failure"]["code"] == "max_credits_exceeded"
        assert "pullRequest" not in record.result
        reports = [e.data for e in await events(database, record.id) if e.type == "agent.usage"]
        assert reports and all(r["final"] is False for r in reports)


async def test_usage_reported_only_at_turn_end_is_enforced_after_the_turn(
    settings: Settings, database: Database
) -> None:
    async with fake_cli_env(settings, database) as env:
        record, _ = await env.writer.create_run(
            "default", request("codex", "expensive", safety={"resources": {"maxCredits": 1}})
        )
        record = await settle(env, record)
        assert record.failure is not None and record.failure["code"] == "max_credits_exceeded"
        # 2M input tokens at 1.25 and 100k output tokens at 10 credits per million.
        assert record.usage["credits"] == pytest.approx(3.5)
        assert "pullRequest" not in record.result


async def test_wall_clock_stops_an_agent_that_reports_nothing(
    settings: Settings, database: Database
) -> None:
    async with fake_cli_env(settings, database) as env:
        record, _ = await env.writer.create_run(
            "default", request("codex", "overrun", safety={"resources": {"maxWallSeconds": 2}})
        )
        record = await settle(env, record)
        assert record.failure is not None and record.failure["code"] == "wall_time_exceeded"
        await process_gone(".local/bin/codex")


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("write x no-result", "without its final result event"),
        ("write x exit-after-success", "reported success but exited with code 3"),
    ],
)
async def test_outcome_needs_the_result_event_and_exit_code(
    settings: Settings, database: Database, prompt: str, message: str
) -> None:
    async with fake_cli_env(settings, database) as env:
        record, _ = await env.writer.create_run("default", request("claude-code", prompt))
        record = await settle(env, record)
        assert record.lifecycle is Lifecycle.FAILED
        assert record.failure is not None and record.failure["code"] == "agent_error"
        assert message in record.failure["message"]
        assert "pullRequest" not in record.result  # a failed turn publishes nothing


async def test_credentials_reach_the_agent_but_never_the_ledger(
    settings: Settings, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("WRITGATE_UNRELATED_SECRET", "never-in-the-sandbox")
    async with fake_cli_env(settings, database) as env:
        record, _ = await env.writer.create_run(
            "default", request("claude-code", "leak write y", session={"keepWarmSeconds": 0})
        )
        record = await settle(env, record)
        assert record.lifecycle is Lifecycle.SUCCEEDED, record.failure
        ledger = await events(database, record.id)
        dumped = json.dumps([e.data for e in ledger])
        assert KEY not in dumped and KEY[:20] not in dumped
        leaked = [e.data["text"] for e in ledger if "my key is" in str(e.data.get("text"))]
        assert leaked == ["my key is [REDACTED]"]


async def test_a_cli_missing_from_the_sandbox_is_a_clear_agent_error(
    settings: Settings, database: Database
) -> None:
    async with writer_env(settings, database) as env:  # no stand-ins installed
        record, _ = await env.writer.create_run("default", request("codex", "write z"))
        record = await settle(env, record)
        assert record.failure is not None and record.failure["code"] == "agent_error"
        assert record.failure["message"].startswith(
            "the 'codex' command of the codex driver was not found in the sandbox (exit code "
        )
        assert "npm install -g @openai/codex" in record.failure["message"]


async def test_chained_run_starts_a_new_agent_session_on_the_parents_branch(
    settings: Settings, database: Database
) -> None:
    async with fake_cli_env(settings, database) as env:
        parent, _ = await env.writer.create_run(
            "default", request("claude-code", "write one", session={"keepWarmSeconds": 0})
        )
        parent = await settle(env, parent)
        assert parent.lifecycle is Lifecycle.SUCCEEDED, parent.failure
        child, chained = await env.writer.send_message(
            "default", parent.id, FollowUpRequest(text="write two", fallback="chain")
        )
        assert chained
        child = await settle(env, child)
        assert child.lifecycle is Lifecycle.SUCCEEDED, child.failure  # keepWarm 0, inherited
        # The parent's CLI session lived in its sandbox, which is gone: a new one starts.
        assert "-r" not in argv_of(await events(database, child.id), 1)
        assert child.result["agentSession"] != parent.result["agentSession"]
        run = child.to_model()  # the API renders a chained run
        assert run.result.start_branch == parent.result["branch"] == run.result.branch
        head = child.result["headSha"]
        assert (await notes_at_head(env, head)).startswith("one\n")


async def test_max_turns_is_passed_to_the_cli_and_refuses_the_turn_beyond_it(
    settings: Settings, database: Database
) -> None:
    async with fake_cli_env(settings, database) as env:
        record, _ = await env.writer.create_run(
            "default", request("claude-code", "write a", safety={"resources": {"maxTurns": 2}})
        )
        record = await settle(env, record)
        assert record.lifecycle is Lifecycle.AWAITING_FOLLOW_UP, record.failure
        await env.writer.send_message("default", record.id, FollowUpRequest(text="write b"))
        record = await settle(env, record)
        assert record.lifecycle is Lifecycle.SUCCEEDED  # the last allowed turn ends the run
        second = argv_of(await events(database, record.id), 2)
        assert second[second.index("--max-turns") + 1] == "2"
        with pytest.raises(RunConflict) as refused:
            await env.writer.send_message("default", record.id, FollowUpRequest(text="write c"))
        assert refused.value.code == "max_turns_exceeded"
        assert len((await env.writer.get("default", record.id)).turns) == 2
