"""The writer stage after a crash: a writer run whose process died is settled and redone on the
same branch, so the pull request it may have opened is updated, never opened a second time."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from sqlalchemy import update

from forge.local import LocalForge
from pipelines.context import StageContext
from pipelines.stages.writer import run_writer
from writer import executor as executor_module
from writer.lifecycle import Lifecycle
from writer.models import CreateRunRequest
from writer.publish import branch_name, publish_change
from writer.tables import runs
from writgate.app.database import Database
from writgate.app.services import Services, make_services
from writgate.settings import Settings

pytestmark = pytest.mark.anyio

AGENT = "import pathlib; pathlib.Path('NOTE.md').write_text('done\\n')"
PARAMS: dict[str, Any] = {
    "repository": "acme/app",
    "title": "Write the note",
    "prompt": "Write the note.",
    "agent": {"driver": "command", "argv": ["python3", "-c", AGENT]},
    "publish": {"mode": "draft_pr"},
    "validationMode": "none",
    "session": {"keepWarmSeconds": 0},
}


class _Crash(BaseException):
    """Stands for the process dying: nothing after it runs."""


@pytest.fixture
async def wired(settings: Settings, database: Database) -> AsyncIterator[Services]:
    services = make_services(settings, database.engine, database.ledger)
    seed = settings.home / "seed"
    seed.mkdir(parents=True)
    (seed / "README.md").write_text("hello\n")
    forge = services.forge_for("default")
    assert isinstance(forge, LocalForge)
    await forge.create_repository("acme/app", from_dir=seed)
    try:
        yield services
    finally:
        await services.executor.aclose()


def _context(wired: Services) -> StageContext:
    return StageContext(
        pipeline_run_id="prun_crash",
        stage_id="write",
        kind="writer",
        attempt=1,
        org_id="default",
        idempotency_key="pipeline:prun_crash:write:1",
        stage_key="pipeline:prun_crash:write",
        params=PARAMS,
        services={"writer": wired.writer, "forge_for": wired.forge_for},
    )


def _dead_owner() -> str:
    """The owner id of a process of this host that has ended."""
    process = subprocess.Popen(["true"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}:dead00"


async def _orphan(database: Database, run_id: str) -> None:
    """Make ``run_id`` look driven by a process that died (it is mid-turn, its owner gone)."""
    async with database.engine.begin() as conn:
        await conn.execute(update(runs).where(runs.c.id == run_id).values(owner=_dead_owner()))


async def _interrupted_run(
    wired: Services, database: Database, monkeypatch: pytest.MonkeyPatch, *, published: bool
) -> str:
    """The stage's writer run, stopped mid-turn by a crash after (or before) it published."""

    async def crash_around_publish(**arguments: Any) -> Any:
        if published:
            await publish_change(**arguments)
        raise _Crash

    monkeypatch.setattr(executor_module, "publish_change", crash_around_publish)
    record, created = await wired.writer.create_run(
        "default",
        CreateRunRequest.model_validate(PARAMS),
        idempotency_key="pipeline:prun_crash:write",
        start=False,
    )
    assert created
    with pytest.raises(_Crash), anyio.fail_after(60):
        await wired.writer.executor.run("default", record.id)
    monkeypatch.setattr(executor_module, "publish_change", publish_change)
    assert (await wired.writer.get("default", record.id)).lifecycle is Lifecycle.RUNNING
    await _orphan(database, record.id)
    return record.id


@pytest.mark.parametrize("published", [True, False], ids=["after-the-pr", "before-publishing"])
async def test_a_run_whose_process_died_is_redone_on_its_branch_with_one_pr(
    wired: Services, database: Database, monkeypatch: pytest.MonkeyPatch, published: bool
) -> None:
    first_id = await _interrupted_run(wired, database, monkeypatch, published=published)
    forge = wired.forge_for("default")
    assert isinstance(forge, LocalForge)
    branch = branch_name(first_id, PARAMS["title"])
    opened = (await forge.list_pull_requests("acme/app", state="all")).items
    assert [pr.head for pr in opened] == ([branch] if published else [])

    with anyio.fail_after(60):
        outputs = await run_writer(_context(wired))

    first = await wired.writer.get("default", first_id)
    assert first.lifecycle is Lifecycle.FAILED
    assert first.failure is not None and first.failure["code"] == "sandbox_lost"
    retry = await wired.writer.get("default", outputs["runId"])
    assert retry.id != first_id and retry.parent_run_id == first_id
    assert retry.lifecycle is Lifecycle.SUCCEEDED
    prs = (await forge.list_pull_requests("acme/app", state="all")).items
    assert len(prs) == 1
    pr = prs[0]
    if published:
        assert pr.number == opened[0].number  # the interrupted run's PR, brought up to date
    assert pr.head == branch == outputs["branch"] == retry.result["branch"]
    assert pr.head_sha == outputs["headSha"] == retry.result["headSha"]
    assert outputs["pullRequestNumber"] == pr.number
    assert [f.filename for f in await forge.list_files("acme/app", pr.number)] == ["NOTE.md"]

    # The stage re-run once more (a crash before its outcome was committed): the same runs.
    again = await run_writer(_context(wired))
    assert again["runId"] == retry.id and again["pullRequestNumber"] == pr.number
    assert len((await forge.list_pull_requests("acme/app", state="all")).items) == 1


async def test_a_run_driven_by_a_live_process_is_left_alone(
    wired: Services, database: Database
) -> None:
    record, _ = await wired.writer.create_run(
        "default", CreateRunRequest.model_validate(PARAMS), start=False
    )
    await wired.writer.store.transition(
        "default", record.id, Lifecycle.STARTING, owner=wired.executor.owner
    )
    settled = await wired.writer.settle_if_orphaned("default", record.id)
    assert settled.lifecycle is Lifecycle.STARTING  # this process drives it: nothing to settle
    await _orphan(database, record.id)
    settled = await wired.writer.settle_if_orphaned("default", record.id)
    assert settled.lifecycle is Lifecycle.FAILED
    assert settled.failure is not None and settled.failure["code"] == "sandbox_lost"
