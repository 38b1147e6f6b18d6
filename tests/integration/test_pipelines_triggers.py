"""Forge webhook triggers start the pipelines configured for them (`on:`), each exactly once.

A real server (uvicorn on 127.0.0.1) receives signed GitHub deliveries; SQLite and PostgreSQL.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from forge.webhooks import Trigger, TriggerStore, sign
from pipelines.dispatch import TriggerDispatcher, run_id_for
from pipelines.loader import load_pipeline
from pipelines.service import PipelineService
from tests.integration.forge_server import create_api_key, running_server
from tests.integration.github_fake import deep_update, schema_example
from writgate.app.cli import main
from writgate.app.dashboard.sessions import SESSION_COOKIE, SessionManager, load_session_secret
from writgate.app.database import Database, open_database
from writgate.auth import KeyStore
from writgate.settings import Settings

SECRET = "trigger-secret"

ON_PR = """\
name: pr-check
on:
  pull_request:
    actions: [opened, synchronize]
    branches: [main, "release/**"]
    repositories: [acme/*]
inputs:
  repository: {required: true}
  number: {required: true}
  headSha: {}
  check: {default: tests}
stages:
  hello:
    uses: command
    with: {argv: [echo, "{{ inputs.repository }}#{{ inputs.number }} {{ inputs.headSha }}"]}
"""
ON_SUITE = """\
name: suite-check
on: check_suite
inputs:
  number: {required: true}
stages:
  hello: {uses: command, with: {argv: [echo, "{{ inputs.number }}"]}}
"""
MANUAL = """\
name: manual
stages:
  hello: {uses: command, with: {argv: ["true"]}}
"""
POLICY = "rules: []\n"  # other YAML in the pipeline directory is not a pipeline

PR_PAYLOAD = deep_update(
    schema_example("webhook-pull-request-opened"),
    {
        "number": 7,
        "pull_request": {
            "number": 7,
            "head": {"ref": "fix", "sha": "a" * 40},
            "base": {"ref": "main", "sha": "b" * 40},
        },
        "repository": {"full_name": "acme/app"},
        "sender": {"login": "octocat"},
    },
)


def pr_payload(*, action: str = "opened", base: str = "main", repo: str = "acme/app") -> Any:
    payload = copy.deepcopy(PR_PAYLOAD)
    payload["action"] = action
    payload["pull_request"]["base"]["ref"] = base
    payload["repository"]["full_name"] = repo
    return payload


@pytest.fixture
def pipeline_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "pipelines"
    (folder / "policies").mkdir(parents=True)
    (folder / "pr.yaml").write_text(ON_PR)
    (folder / "suite.yml").write_text(ON_SUITE)
    (folder / "manual.yaml").write_text(MANUAL)
    (folder / "policies" / "default.yaml").write_text(POLICY)
    monkeypatch.setenv("WRITGATE_PIPELINE_DIR", str(folder))
    monkeypatch.setenv("WRITGATE_GITHUB_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("WRITGATE_TRIGGER_POLL", "200ms")
    return folder


def _deliver(
    client: httpx.Client, event: str, payload: Any, delivery: str | None = None
) -> httpx.Response:
    body = json.dumps(payload).encode()
    return client.post(
        "/api/v1/forge/github/webhook",
        content=body,
        headers={
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": sign(SECRET, body),
            "Content-Type": "application/json",
        },
    )


def _poll(client: httpx.Client, path: str, done: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(path).json()
        if done(body):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def _dispatched(client: httpx.Client, trigger_id: str) -> Any:
    return _poll(client, f"/api/v1/forge/triggers/{trigger_id}", lambda t: t["dispatchedAt"])


def test_a_signed_delivery_starts_the_configured_pipeline_once(
    settings: Settings,
    pipeline_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = create_api_key(settings)
    with (
        running_server(settings) as url,
        httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as c,
    ):
        delivery = str(uuid.uuid4())
        accepted = _deliver(c, "pull_request", pr_payload(), delivery)
        assert accepted.status_code == 202, accepted.text
        trigger = _dispatched(c, accepted.json()["trigger"]["id"])
        assert trigger["skippedPipelines"] == []
        [started] = trigger["pipelineRuns"]
        assert (started["pipeline"], started["file"]) == ("pr-check", "pr.yaml")

        run = _poll(
            c,
            f"/api/v1/pipeline-runs/{started['runId']}",
            lambda r: r["status"] not in ("queued", "running"),
        )
        assert run["status"] == "succeeded", run
        assert (run["triggerId"], run["source"]) == (trigger["id"], "pr.yaml")
        assert run["inputs"] == {
            "repository": "acme/app",
            "number": 7,
            "headSha": "a" * 40,
            "check": "tests",
        }
        assert run["stages"][0]["outputs"]["stdout"] == f"acme/app#7 {'a' * 40}\n"

        # GitHub retries the same delivery: refused, and still one run
        assert _deliver(c, "pull_request", pr_payload(), delivery).status_code == 409

        # matching event, but an action, a branch or a repository the filter leaves out
        reasons = []
        for payload in (
            pr_payload(action="reopened"),
            pr_payload(base="dev"),
            pr_payload(repo="other/app"),
        ):
            response = _deliver(c, "pull_request", payload)
            assert response.status_code == 202
            skipped = _dispatched(c, response.json()["trigger"]["id"])
            assert skipped["pipelineRuns"] == []
            [(name, reason)] = [(s["pipeline"], s["reason"]) for s in skipped["skippedPipelines"]]
            assert name == "pr-check"
            reasons.append(reason)
        assert "action 'reopened'" in reasons[0]
        assert "base branch 'dev'" in reasons[1]
        assert "repository 'other/app'" in reasons[2]

        # a release branch matches "release/**"
        release = _deliver(c, "pull_request", pr_payload(base="release/2026/1"))
        assert len(_dispatched(c, release.json()["trigger"]["id"])["pipelineRuns"]) == 1

        # check_suite without a pull request: suite-check needs `number`, so it is skipped
        suite = deep_update(
            schema_example("webhook-check-suite-requested"),
            {
                "check_suite": {"head_sha": "c" * 40, "head_branch": "main", "pull_requests": []},
                "repository": {"full_name": "acme/app"},
            },
        )
        response = _deliver(c, "check_suite", suite)
        assert response.status_code == 202, response.text
        skipped = _dispatched(c, response.json()["trigger"]["id"])
        assert skipped["pipelineRuns"] == []
        assert skipped["skippedPipelines"] == [
            {
                "pipeline": "suite-check",
                "file": "suite.yml",
                "reason": "input 'number' is required and this check_suite trigger has none",
            }
        ]

        runs = c.get("/api/v1/pipeline-runs").json()["items"]
        assert sorted(r["name"] for r in runs) == ["pr-check", "pr-check"]
        listed = c.get("/api/v1/forge/triggers", params={"event": "pull_request"}).json()
        assert sum(len(t["pipelineRuns"]) for t in listed["items"]) == 2

        # the CLI shows the same
        monkeypatch.setenv("WRITGATE_HOME", str(settings.home))
        monkeypatch.setenv("WRITGATE_DATABASE_URL", settings.database_url)
        capsys.readouterr()
        assert main(["forge", "triggers"]) == 0
        listing = capsys.readouterr().out
        assert f"started pr-check (pr.yaml): {started['runId']}" in listing
        assert "skipped suite-check: input 'number' is required" in listing
        assert main(["pipeline", "status", started["runId"]]) == 0
        assert f"started by forge trigger {trigger['id']} (pr.yaml)" in capsys.readouterr().out


async def _record(settings: Settings, payload: Any) -> Trigger:
    database = await open_database(settings)
    try:
        store = TriggerStore(engine=database.engine)
        return await store.record(
            settings.org, delivery_id=str(uuid.uuid4()), event="pull_request", payload=payload
        )
    finally:
        await database.dispose()


def test_the_server_dispatches_triggers_stored_before_it_started(
    settings: Settings, pipeline_folder: Path
) -> None:
    # the receiver stored the trigger, then the process died before any pipeline started
    trigger = anyio.run(_record, settings, pr_payload())
    token = create_api_key(settings)
    with (
        running_server(settings) as url,
        httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as c,
    ):
        dispatched = _dispatched(c, trigger.id)
        [started] = dispatched["pipelineRuns"]
        assert started["runId"] == run_id_for(trigger, "pr-check")
        run = _poll(
            c,
            f"/api/v1/pipeline-runs/{started['runId']}",
            lambda r: r["status"] not in ("queued", "running"),
        )
        assert (run["status"], run["triggerId"]) == ("succeeded", trigger.id)
        # the dashboard's page of the run names its trigger
        cookie = anyio.run(_session_cookie, settings, token)
        html = httpx.get(
            f"{url}/pipelines/{started['runId']}", cookies={SESSION_COOKIE: cookie}
        ).text
        assert f"Started by forge trigger <code>{trigger.id}</code> from <code>pr.yaml" in html


async def _session_cookie(settings: Settings, token: str) -> str:
    database = await open_database(settings)
    try:
        manager = SessionManager(
            secret=load_session_secret(settings.home), keys=KeyStore(engine=database.engine)
        )
        _session, cookie = await manager.login(token)
    finally:
        await database.dispose()
    return cookie


@pytest.mark.anyio
async def test_an_interrupted_dispatch_starts_each_pipeline_once(
    database: Database, pipeline_folder: Path
) -> None:
    (pipeline_folder / "second.yaml").write_text(
        ON_PR.replace("name: pr-check", "name: second-check")
    )
    (pipeline_folder / "broken.yaml").write_text("name: broken\non: {push: {}}\nstages: {}\n")
    triggers = TriggerStore(engine=database.engine)
    service = PipelineService(engine=database.engine, ledger=database.ledger)
    trigger = await triggers.record(
        "default", delivery_id="d-1", event="pull_request", payload=pr_payload()
    )
    # the first dispatch started pr-check, then died before second-check and before marking
    first = await service.start(
        "default",
        load_pipeline(pipeline_folder / "pr.yaml"),
        {"repository": "acme/app", "number": 7},
        run_id=run_id_for(trigger, "pr-check"),
        trigger_id=trigger.id,
    )

    def dispatcher() -> TriggerDispatcher:
        return TriggerDispatcher(triggers=triggers, pipelines=service, directory=pipeline_folder)

    # two dispatchers (say, the server and a worker) pick it up at the same time
    async with anyio.create_task_group() as tg:
        tg.start_soon(dispatcher().dispatch, trigger)
        tg.start_soon(dispatcher().dispatch, trigger)
    assert await dispatcher().dispatch_pending() == 0

    done = await triggers.get("default", trigger.id)
    assert done.dispatched_at is not None
    runs = {item["pipeline"]: item["runId"] for item in done.to_json()["pipelineRuns"]}
    assert runs == {
        "pr-check": first.id,
        "second-check": run_id_for(trigger, "second-check"),
    }
    [broken] = done.to_json()["skippedPipelines"]
    assert broken["file"] == "broken.yaml" and "broken.yaml:2:6" in broken["reason"]
    listed = await service.list_runs("default")
    assert sorted(r.id for r in listed) == sorted(runs.values())
    assert {r.trigger_id for r in listed} == {trigger.id}
    finished = await service.execute("default", runs["second-check"])
    assert finished.status == "succeeded"
