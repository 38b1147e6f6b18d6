from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from writgate.settings import Settings

from .forge_server import create_api_key, running_server

COUNTER = (
    "import time\nfor i in range(40):\n    print('line', i, flush=True)\n    time.sleep(0.01)\n"
)


@pytest.fixture
def api(settings: Settings) -> Iterator[tuple[str, dict[str, str], dict[str, str]]]:
    key_a = create_api_key(settings, "org-a")
    key_b = create_api_key(settings, "org-b")
    import asyncio

    from forge.local import LocalForge
    from writgate.app.database import open_database

    async def seed() -> None:
        database = await open_database(settings)
        try:
            source = settings.home / "seed"
            source.mkdir(parents=True, exist_ok=True)
            (source / "README.md").write_text("hi\n")
            for org in ("org-a", "org-b"):
                forge = LocalForge(
                    engine=database.engine, ledger=database.ledger, home=settings.home, org=org
                )
                await forge.create_repository("acme/app", from_dir=source)
        finally:
            await database.dispose()

    asyncio.run(seed())
    with running_server(settings) as url:
        yield url, {"Authorization": f"Bearer {key_a}"}, {"Authorization": f"Bearer {key_b}"}


def _body(**changes: Any) -> dict[str, Any]:
    return {
        "repository": "acme/app",
        "title": "Count",
        "prompt": "count to forty",
        "tags": ["CI", "owner:platform"],
        "metadata": {"ticket": "PAY-742"},
        "agent": {"driver": "command", "argv": ["python3", "-c", COUNTER]},
        "publish": {"mode": "none"},
        "session": {"keepWarmSeconds": 0},
        **changes,
    }


def test_create_get_status_and_list(api: tuple[str, dict[str, str], dict[str, str]]) -> None:
    url, auth_a, _ = api
    with httpx.Client(base_url=url, headers=auth_a, timeout=30) as client:
        created = client.post("/api/v1/coding-agent/runs", json=_body())
        assert created.status_code == 201, created.text
        run = created.json()
        assert run["created"] is True and run["id"].startswith("run_")
        assert run["tags"] == ["ci", "owner:platform"]
        assert run["intent"]["ruleset"] == "intent/v1"
        for field in ("lifecycle", "terminal", "awaitingFollowUp", "canFollowUp", "nextActions"):
            assert field in run
        status = client.get(f"/api/v1/coding-agent/runs/{run['id']}/status").json()
        assert set(status) >= {
            "lifecycle",
            "terminal",
            "nextActions",
            "failure",
            "session",
            "updatedAt",
        }
        listed = client.get(
            "/api/v1/coding-agent/runs", params={"tag": "ci", "metadata.ticket": "PAY-742"}
        ).json()
        assert [r["id"] for r in listed["items"]] == [run["id"]]
        assert listed["nextCursor"] is None
        none = client.get("/api/v1/coding-agent/runs", params={"metadata.ticket": "nope"}).json()
        assert none["items"] == []
        models = client.get("/api/v1/coding-agent/models").json()["items"]
        assert any(m["id"] == "anthropic/claude-sonnet-4.6" for m in models)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"tags": ["ok", "bad tag!"]}, "/tags/1"),
        ({"metadata": {"nested": {"a": 1}}}, "/metadata/nested"),
        ({"prompt": ""}, "/prompt"),
        ({"title": "x" * 201}, "/title"),
        ({"publish": {"mode": "merge"}}, "/publish/mode"),
        ({"modelId": "nobody/nothing"}, "/modelId"),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_stores_nothing(
    api: tuple[str, dict[str, str], dict[str, str]], changes: dict[str, Any], field: str
) -> None:
    url, auth_a, _ = api
    with httpx.Client(base_url=url, headers=auth_a, timeout=30) as client:
        response = client.post("/api/v1/coding-agent/runs", json=_body(**changes))
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["field"].startswith(field), problem
        assert "Traceback" not in response.text
        assert client.get("/api/v1/coding-agent/runs").json()["items"] == []


def test_idempotency_over_http(api: tuple[str, dict[str, str], dict[str, str]]) -> None:
    url, auth_a, _ = api
    headers = {**auth_a, "Idempotency-Key": "ci-job-42"}

    def create(_: int) -> httpx.Response:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            return client.post("/api/v1/coding-agent/runs", json=_body())

    with ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(create, range(100)))
    assert all(r.status_code in (200, 201) for r in responses), {r.status_code for r in responses}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.status_code == 201 for r in responses) == 1
    replays = [r for r in responses if r.status_code == 200]
    assert all(r.headers["Idempotent-Replayed"] == "true" for r in replays)
    assert all(r.json()["created"] is False for r in replays)
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        other = client.post("/api/v1/coding-agent/runs", json=_body(prompt="another"))
        assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
        run_id = responses[0].json()["id"]
        events = client.get(f"/api/v1/coding-agent/runs/{run_id}/events").json()["items"]
        assert [e["type"] for e in events].count("run.starting") <= 1
        bad = client.post(
            "/api/v1/coding-agent/runs", json=_body(), headers={"Idempotency-Key": "x" * 256}
        )
        assert bad.status_code == 422


def test_sse_resumes_with_last_event_id_exactly_once(
    api: tuple[str, dict[str, str], dict[str, str]],
) -> None:
    url, auth_a, _ = api
    rng = random.Random(7)
    with httpx.Client(base_url=url, headers=auth_a, timeout=60) as client:
        run_id = client.post("/api/v1/coding-agent/runs", json=_body()).json()["id"]
        seen: list[int] = []
        last: str | None = None
        done = False
        connections = 0
        while not done:
            connections += 1
            assert connections < 200
            headers = {"Last-Event-ID": last} if last else {}
            budget = rng.randint(1, 8)
            with connect_sse(
                client, "GET", f"/api/v1/coding-agent/runs/{run_id}/stream", headers=headers
            ) as source:
                for sse in source.iter_sse():
                    if sse.event == "done":
                        done = True
                        break
                    seen.append(int(sse.id))
                    last = sse.id
                    budget -= 1
                    if budget == 0:
                        break
        ledger = client.get(
            f"/api/v1/coding-agent/runs/{run_id}/events", params={"limit": 1000}
        ).json()["items"]
        assert seen == [e["seq"] for e in ledger]
        assert ledger[-1]["type"].startswith("run.")
        assert connections > 3
        bad = client.get(
            f"/api/v1/coding-agent/runs/{run_id}/stream", headers={"Last-Event-ID": "abc"}
        )
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_last_event_id"
        beyond = client.get(
            f"/api/v1/coding-agent/runs/{run_id}/stream", headers={"Last-Event-ID": "99999"}
        )
        assert beyond.status_code == 400


def test_tenancy_and_auth(api: tuple[str, dict[str, str], dict[str, str]]) -> None:
    url, auth_a, auth_b = api
    with httpx.Client(base_url=url, timeout=30) as client:
        run_id = client.post("/api/v1/coding-agent/runs", json=_body(), headers=auth_a).json()["id"]
        routes = [
            ("GET", f"/api/v1/coding-agent/runs/{run_id}", None),
            ("GET", f"/api/v1/coding-agent/runs/{run_id}/status", None),
            ("GET", f"/api/v1/coding-agent/runs/{run_id}/events", None),
            ("GET", f"/api/v1/coding-agent/runs/{run_id}/stream", None),
            ("POST", f"/api/v1/coding-agent/runs/{run_id}/messages", {"text": "hi"}),
            ("POST", f"/api/v1/coding-agent/runs/{run_id}/complete", None),
            ("POST", f"/api/v1/coding-agent/runs/{run_id}/cancel", None),
        ]
        for method, path, body in routes:
            response = client.request(method, path, json=body, headers=auth_b)
            assert response.status_code == 404, (path, response.text)
            assert response.json()["code"] == "run_not_found"
            assert client.request(method, path, json=body).status_code == 401
        assert client.get("/api/v1/coding-agent/runs", headers=auth_b).json()["items"] == []
        wrong = client.get("/api/v1/coding-agent/runs", headers={"Authorization": "Bearer wg_nope"})
        assert wrong.status_code == 401 and wrong.json()["code"] == "unauthorized"


def test_openapi_documents_the_run_api(api: tuple[str, dict[str, str], dict[str, str]]) -> None:
    url, _, _ = api
    document = httpx.get(f"{url}/openapi.json", timeout=30).json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    for path in (
        "/api/v1/coding-agent/runs",
        "/api/v1/coding-agent/runs/{run_id}/stream",
        "/api/v1/coding-agent/runs/{run_id}/messages",
        "/api/v1/coding-agent/models",
    ):
        assert path in paths
    operation_ids = [op["operationId"] for item in paths.values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))
    lifecycle = document["components"]["schemas"]["Lifecycle"]["enum"]
    assert "awaiting_follow_up" in lifecycle
