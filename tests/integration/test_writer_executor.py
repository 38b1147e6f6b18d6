from __future__ import annotations

import socket
from typing import Any

import anyio
import pytest

from writer.errors import RunConflict
from writer.lifecycle import Lifecycle
from writer.models import CreateRunRequest, FollowUpRequest
from writer.store import RunStore
from writgate.app.database import Database
from writgate.settings import Settings

from ..support.writer_env import writer_env

pytestmark = pytest.mark.anyio

SCRIPT = (
    "import pathlib, sys; p = pathlib.Path('notes.txt'); "
    "p.write_text((p.read_text() if p.exists() else '') + sys.argv[1] + '\\n'); "
    "print('wrote', sys.argv[1])"
)


def _request(**changes: Any) -> CreateRunRequest:
    body: dict[str, Any] = {
        "repository": "acme/app",
        "title": "Add notes",
        "prompt": "first",
        "tags": ["ci"],
        "agent": {"driver": "command", "argv": ["python3", "-c", SCRIPT, "{{ instruction }}"]},
        "publish": {"mode": "draft_pr"},
        "session": {"keepWarmSeconds": 30},
        **changes,
    }
    return CreateRunRequest.model_validate(body)


async def test_run_publishes_a_draft_pr_with_trailers(
    settings: Settings, database: Database
) -> None:
    async with writer_env(settings, database) as env:
        record, created = await env.writer.create_run(
            "default", _request(session={"keepWarmSeconds": 0})
        )
        assert created
        with anyio.fail_after(60):
            record = await env.writer.wait("default", record.id)
        assert record.lifecycle is Lifecycle.SUCCEEDED, record.failure
        pr_ref = record.result["pullRequest"]
        assert pr_ref["draft"] is True
        pr = await env.forge.get_pull_request("acme/app", pr_ref["number"])
        assert pr.head == record.result["branch"] and pr.head_sha == record.result["headSha"]
        files = await env.forge.list_files("acme/app", pr.number)
        assert [f.filename for f in files] == ["notes.txt"]
        log = (
            await anyio.run_process(
                ["git", "log", "-1", "--format=%B", pr.head_sha],
                cwd=env.forge.repository_path("acme/app"),
            )
        ).stdout.decode()
        assert f"Writgate-Run: {record.id}" in log
        assert "Assisted-by: command:none" in log
        events = [e.type for e in await database.ledger.read(record.id, org_id="default")]
        assert events[:3] == ["run.queued", "run.starting", "run.running"]
        assert "agent.message" in events and events[-1] == "run.succeeded"


async def test_warm_follow_up_reuses_run_and_sandbox(
    settings: Settings, database: Database
) -> None:
    async with writer_env(settings, database) as env:
        record, _ = await env.writer.create_run("default", _request())
        with anyio.fail_after(60):
            record = await env.writer.wait("default", record.id)
        assert record.lifecycle is Lifecycle.AWAITING_FOLLOW_UP, record.failure
        sandbox_id = record.sandbox_id
        first_head = record.result["headSha"]
        followed, chained = await env.writer.send_message(
            "default", record.id, FollowUpRequest(text="second")
        )
        assert not chained and followed.id == record.id
        with pytest.raises(RunConflict) as busy:
            await env.writer.send_message("default", record.id, FollowUpRequest(text="third"))
        assert busy.value.code == "run_busy"
        with anyio.fail_after(60):
            record = await env.writer.wait("default", record.id)
        assert record.lifecycle is Lifecycle.AWAITING_FOLLOW_UP
        assert record.sandbox_id == sandbox_id and len(record.turns) == 2
        assert record.result["pullRequest"]["number"] == 1
        pr = await env.forge.get_pull_request("acme/app", 1)
        assert pr.head_sha != first_head
        content = (
            await anyio.run_process(
                ["git", "show", f"{pr.head_sha}:notes.txt"],
                cwd=env.forge.repository_path("acme/app"),
            )
        ).stdout.decode()
        assert content == "first\nsecond\n"
        done = await env.writer.complete("default", record.id)
        assert done.lifecycle is Lifecycle.SUCCEEDED


async def test_max_turns_ends_the_run_and_refuses_more(
    settings: Settings, database: Database
) -> None:
    async with writer_env(settings, database) as env:
        request = _request(safety={"resources": {"maxTurns": 2}})
        record, _ = await env.writer.create_run("default", request)
        with anyio.fail_after(60):
            record = await env.writer.wait("default", record.id)
        assert record.lifecycle is Lifecycle.AWAITING_FOLLOW_UP
        await env.writer.send_message("default", record.id, FollowUpRequest(text="two"))
        with anyio.fail_after(60):
            record = await env.writer.wait("default", record.id)
        assert record.lifecycle is Lifecycle.SUCCEEDED and len(record.turns) == 2
        with pytest.raises(RunConflict) as info:
            await env.writer.send_message("default", record.id, FollowUpRequest(text="three"))
        assert info.value.code == "max_turns_exceeded"


async def test_expired_session_and_chained_fallback(settings: Settings, database: Database) -> None:
    async with writer_env(settings, database) as env:
        record, _ = await env.writer.create_run("default", _request(session={"keepWarmSeconds": 1}))
        with anyio.fail_after(60):
            record = await env.writer.wait(
                "default", record.id, until=[Lifecycle.EXPIRED, Lifecycle.FAILED]
            )
        assert record.lifecycle is Lifecycle.EXPIRED
        types = [e.type for e in await database.ledger.read(record.id, org_id="default")]
        assert "sandbox.expired" in types
        with pytest.raises(RunConflict) as cold:
            await env.writer.send_message("default", record.id, FollowUpRequest(text="again"))
        assert cold.value.code == "session_not_warm"
        child, chained = await env.writer.send_message(
            "default", record.id, FollowUpRequest(text="again", fallback="chain")
        )
        assert chained and child.parent_run_id == record.id and child.chain == [record.id]
        with anyio.fail_after(60):
            child = await env.writer.wait("default", child.id)
        assert child.lifecycle is Lifecycle.AWAITING_FOLLOW_UP, child.failure
        assert child.result["branch"] == record.result["branch"]
        as_json = child.to_model().model_dump(mode="json", by_alias=True)
        assert as_json["result"]["startBranch"] == record.result["branch"]
        pr = await env.forge.get_pull_request("acme/app", 1)
        content = (
            await anyio.run_process(
                ["git", "show", f"{pr.head_sha}:notes.txt"],
                cwd=env.forge.repository_path("acme/app"),
            )
        ).stdout.decode()
        assert content.startswith("first\nThis continues writgate run " + record.id)
        assert content.endswith("Follow-up instruction:\nagain\n")
        await env.writer.cancel("default", child.id)


async def test_cancel_while_running_kills_the_agent(settings: Settings, database: Database) -> None:
    argv = ["sh", "-c", "echo started; exec sleep 300"]
    async with writer_env(settings, database) as env:
        record, _ = await env.writer.create_run(
            "default", _request(agent={"driver": "command", "argv": argv})
        )
        with anyio.fail_after(30):
            async for event in database.ledger.follow(record.id, org_id="default"):
                if event.type == "agent.message":
                    break
        with anyio.fail_after(10):
            cancelled = await env.writer.cancel("default", record.id)
        assert cancelled.lifecycle is Lifecycle.CANCELLED
        with anyio.fail_after(10):
            while True:
                out = (await anyio.run_process(["pgrep", "-f", "sleep 300"], check=False)).stdout
                if not out.strip():
                    break
                await anyio.sleep(0.1)
        with pytest.raises(RunConflict) as info:
            await env.writer.cancel("default", record.id)
        assert info.value.code == "run_not_cancellable"


async def test_agent_failure_and_wall_clock(settings: Settings, database: Database) -> None:
    async with writer_env(settings, database) as env:
        bad, _ = await env.writer.create_run(
            "default", _request(agent={"driver": "command", "argv": ["sh", "-c", "exit 3"]})
        )
        slow, _ = await env.writer.create_run(
            "default",
            _request(
                agent={"driver": "command", "argv": ["sleep", "60"]},
                safety={"resources": {"maxWallSeconds": 1}},
            ),
        )
        with anyio.fail_after(60):
            bad = await env.writer.wait("default", bad.id)
            slow = await env.writer.wait("default", slow.id)
        assert bad.lifecycle is Lifecycle.FAILED and bad.failure["code"] == "agent_error"
        assert slow.lifecycle is Lifecycle.FAILED
        assert slow.failure["code"] == "wall_time_exceeded"


async def test_restart_settles_runs_of_a_dead_process(
    settings: Settings, database: Database
) -> None:
    store = RunStore(engine=database.engine, ledger=database.ledger)
    dead = f"{socket.gethostname()}:999999:abc"  # no such pid on this host
    running, _ = await store.create("default", _request())
    await store.transition("default", running.id, Lifecycle.STARTING, owner=dead)
    await store.transition("default", running.id, Lifecycle.RUNNING)
    warm, _ = await store.create("default", _request())
    await store.transition("default", warm.id, Lifecycle.STARTING, owner=dead)
    await store.transition("default", warm.id, Lifecycle.RUNNING)
    await store.transition("default", warm.id, Lifecycle.AWAITING_FOLLOW_UP)
    alive, _ = await store.create("default", _request())
    await store.transition(
        "default", alive.id, Lifecycle.STARTING, owner=f"{socket.gethostname()}:1:abc"
    )  # pid 1 lives
    async with writer_env(settings, database) as env:
        lost = await env.writer.get("default", running.id)
        assert lost.lifecycle is Lifecycle.FAILED
        assert lost.failure == {
            "code": "sandbox_lost",
            "message": "the process running this run stopped; its sandbox is gone",
        }
        assert (await env.writer.get("default", warm.id)).lifecycle is Lifecycle.EXPIRED
        assert (await env.writer.get("default", alive.id)).lifecycle is Lifecycle.STARTING


async def test_a_repository_the_forge_does_not_have_fails_the_run(
    settings: Settings, database: Database
) -> None:
    # Not stuck in `starting`: the forge's "no such repository" ends the run like a sandbox error.
    async with writer_env(settings, database) as env:
        record, _ = await env.writer.create_run(
            "default", _request(repository="acme/missing", session={"keepWarmSeconds": 0})
        )
        with anyio.fail_after(30):
            record = await env.writer.wait("default", record.id)
        assert record.lifecycle is Lifecycle.FAILED
        assert record.failure is not None and record.failure["code"] == "sandbox_error"
        assert "acme/missing" in record.failure["message"]
