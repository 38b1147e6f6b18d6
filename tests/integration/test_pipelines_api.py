"""Pipeline runs over HTTP on a real server (uvicorn on 127.0.0.1), SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from writgate.settings import Settings

from .forge_server import create_api_key, running_server

PIPELINE = """\
name: api-demo
inputs:
  who: {default: world}
stages:
  hello: {uses: command, with: {argv: [echo, "hello {{ inputs.who }}"]}}
  shout:
    uses: command
    needs: [hello]
    with: {argv: [sh, -c, "echo {{ stages.hello.outputs.stdout | trim | upper }}"]}
"""
SLOW = """\
name: slow
stages:
  wait: {uses: command, with: {argv: [sleep, "60"]}}
  after: {uses: command, needs: [wait], if: "cancelled()", with: {argv: [echo, cleanup]}}
"""

Api = tuple[str, dict[str, str], dict[str, str]]


@pytest.fixture
def api(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "demo.yaml").write_text(PIPELINE)
    (folder / "slow.yaml").write_text(SLOW)
    monkeypatch.setenv("WRITGATE_PIPELINE_DIR", str(folder))
    monkeypatch.delenv("WRITGATE_API_HOST_STAGES", raising=False)
    key_a = create_api_key(settings, "org-a")
    key_b = create_api_key(settings, "org-b")
    with running_server(settings) as url:
        yield url, {"Authorization": f"Bearer {key_a}"}, {"Authorization": f"Bearer {key_b}"}


def _wait_finished(client: httpx.Client, run_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = client.get(f"/api/v1/pipeline-runs/{run_id}").json()
        if run["status"] not in ("queued", "running"):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


def test_start_by_path_runs_on_the_server_and_streams(api: Api) -> None:
    url, org_a, org_b = api
    with httpx.Client(base_url=url, headers=org_a, timeout=30) as client:
        response = client.post(
            "/api/v1/pipelines", json={"path": "demo.yaml", "inputs": {"who": "you"}}
        )
        assert response.status_code == 201, response.text
        run_id = response.json()["id"]
        assert response.json()["source"] == "demo.yaml"
        run = _wait_finished(client, run_id)
        assert run["status"] == "succeeded"
        stages = {s["stage"]: s for s in run["stages"]}
        assert stages["shout"]["outputs"] == {"exitCode": 0, "stdout": "HELLO YOU\n"}

        with connect_sse(client, "GET", f"/api/v1/pipeline-runs/{run_id}/stream") as source:
            events = [(e.id, e.event) for e in source.iter_sse()]
        assert events[-1][1] == "done"
        types = [kind for _, kind in events[:-1]]
        assert types[0] == "pipeline.created" and types[-1] == "pipeline.finished"
        ids = [int(i) for i, _ in events[:-1]]
        assert ids == list(range(1, len(ids) + 1))
        # resume after the 4th event: exactly the rest, nothing twice
        with connect_sse(
            client, "GET", f"/api/v1/pipeline-runs/{run_id}/stream", headers={"Last-Event-ID": "4"}
        ) as source:
            rest = [int(e.id) for e in source.iter_sse() if e.event != "done"]
        assert rest == ids[4:]
        bad = client.get(f"/api/v1/pipeline-runs/{run_id}/stream", headers={"Last-Event-ID": "x"})
        assert bad.status_code == 400

        page = client.get(f"/api/v1/pipeline-runs/{run_id}/events", params={"after": 2, "limit": 3})
        body = page.json()
        assert [e["seq"] for e in body["items"]] == [3, 4, 5] and body["nextCursor"] == "5"
        listed = client.get("/api/v1/pipeline-runs").json()["items"]
        assert [r["id"] for r in listed] == [run_id]

    with httpx.Client(base_url=url, headers=org_b, timeout=30) as other:
        assert other.get(f"/api/v1/pipeline-runs/{run_id}").status_code == 404
        assert other.get(f"/api/v1/pipeline-runs/{run_id}/events").status_code == 404
        assert other.get("/api/v1/pipeline-runs").json()["items"] == []
    assert httpx.get(f"{url}/api/v1/pipeline-runs/{run_id}").status_code == 401


def test_spec_errors_are_422_with_positions(api: Api) -> None:
    url, org_a, _ = api
    with httpx.Client(base_url=url, headers=org_a, timeout=30) as client:
        response = client.post(
            "/api/v1/pipelines",
            json={"yaml": "name: x\nstages:\n  a: {uses: review, needs: [nope]}\n"},
        )
        assert response.status_code == 422
        problem = response.json()
        assert problem["code"] == "invalid_pipeline"
        assert problem["problems"][0]["line"] == 3 and problem["problems"][0]["stage"] == "a"
        assert "unknown stage 'nope'" in problem["title"]
        # inline command stages would run code on the server: refused
        response = client.post(
            "/api/v1/pipelines",
            json={
                "spec": {
                    "name": "x",
                    "stages": {"a": {"uses": "command", "with": {"argv": ["id"]}}},
                }
            },
        )
        assert response.status_code == 422
        assert "run code on the server" in response.json()["title"]
        assert client.post("/api/v1/pipelines", json={"path": "../demo.yaml"}).status_code == 422
        missing = client.post("/api/v1/pipelines", json={"path": "missing.yaml"})
        assert missing.status_code == 422 and "no such file" in missing.json()["title"]
        both = client.post("/api/v1/pipelines", json={"path": "demo.yaml", "yaml": "name: x"})
        assert both.status_code == 422
        inputs = client.post("/api/v1/pipelines", json={"path": "demo.yaml", "inputs": {"x": 1}})
        assert inputs.status_code == 422 and inputs.json()["field"] == "inputs.x"
        check = client.post(
            "/api/v1/pipelines/validate", json={"yaml": "name: x\nstages:\n  a: {uses: writr}\n"}
        ).json()
        assert check["valid"] is False and check["problems"][0]["column"] == 13
        assert client.get("/api/v1/pipeline-runs").json()["items"] == []  # nothing stored


def test_cancel_over_http(api: Api) -> None:
    url, org_a, _ = api
    with httpx.Client(base_url=url, headers=org_a, timeout=30) as client:
        run_id = client.post("/api/v1/pipelines", json={"path": "slow.yaml"}).json()["id"]
        deadline = time.monotonic() + 30
        while (
            client.get(f"/api/v1/pipeline-runs/{run_id}").json()["stages"][0]["status"] != "running"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        response = client.post(f"/api/v1/pipeline-runs/{run_id}/cancel", json={"reason": "enough"})
        assert response.status_code == 200 and response.json()["cancelRequested"] is True
        run = _wait_finished(client, run_id)
        assert run["status"] == "cancelled" and run["cancelReason"] == "enough"
        stages = {s["stage"]: s for s in run["stages"]}
        assert stages["wait"]["status"] == "cancelled"
        assert stages["after"]["status"] == "succeeded"


def test_openapi_documents_the_pipeline_api(api: Api) -> None:
    url, _, _ = api
    spec = httpx.get(f"{url}/openapi.json").json()
    operations = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {
        "startPipelineRun",
        "validatePipeline",
        "listPipelineRuns",
        "getPipelineRun",
        "cancelPipelineRun",
        "listPipelineRunEvents",
        "streamPipelineRunEvents",
    } <= operations
