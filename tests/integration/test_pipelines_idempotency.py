"""Idempotency-Key on ``POST /api/v1/pipelines`` against a real server, SQLite and PostgreSQL.

A client that resends a pipeline start after a lost answer must not start a second pipeline
(whose writer stage would open a second pull request). The database decides (a unique index on
``(org_id, idempotency_key)``), so concurrent identical starts make one run.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from writgate.client import Client, RetryPolicy
from writgate.settings import Settings

from .forge_server import create_api_key, running_server
from .lossy_proxy import Rule, lossy_proxy

PIPELINE = """\
name: keyed
inputs:
  who: {default: world}
stages:
  hello: {uses: command, with: {argv: [echo, "hello {{ inputs.who }}"]}}
"""
START = "/api/v1/pipelines"
RUNS = "/api/v1/pipeline-runs"

Api = tuple[str, dict[str, str], dict[str, str]]


@pytest.fixture
def api(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "keyed.yaml").write_text(PIPELINE)
    monkeypatch.setenv("WRITGATE_PIPELINE_DIR", str(folder))
    key_a = create_api_key(settings, "org-a")
    key_b = create_api_key(settings, "org-b")
    with running_server(settings) as url:
        yield url, {"Authorization": f"Bearer {key_a}"}, {"Authorization": f"Bearer {key_b}"}


def _run_ids(client: httpx.Client) -> list[str]:
    return [run["id"] for run in client.get(RUNS).json()["items"]]


def _created_events(client: httpx.Client, run_id: str) -> int:
    events = client.get(f"{RUNS}/{run_id}/events", params={"limit": 1000}).json()["items"]
    return [e["type"] for e in events].count("pipeline.created")


def test_replay_reuse_bad_keys_and_orgs(api: Api) -> None:
    url, org_a, org_b = api
    body: dict[str, Any] = {"path": "keyed.yaml", "inputs": {"who": "you"}}
    with (
        httpx.Client(base_url=url, headers=org_a, timeout=30) as a,
        httpx.Client(base_url=url, headers=org_b, timeout=30) as b,
    ):
        first = a.post(START, json=body, headers={"Idempotency-Key": "start-1"})
        assert first.status_code == 201, first.text
        assert "idempotent-replayed" not in first.headers
        run_id = first.json()["id"]

        # the same key and body (keys in another order): the same run, 200, replayed
        again = a.post(
            START, json={"inputs": {"who": "you"}, "path": "keyed.yaml"},
            headers={"Idempotency-Key": "start-1"},
        )  # fmt: skip
        assert again.status_code == 200, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == run_id and again.json()["name"] == "keyed"

        # the same key with another body: refused, naming the header, nothing stored
        other = a.post(
            START, json={"path": "keyed.yaml", "inputs": {"who": "them"}},
            headers={"Idempotency-Key": "start-1"},
        )  # fmt: skip
        assert other.status_code == 422, other.text
        assert other.headers["content-type"].startswith("application/problem+json")
        problem = other.json()
        assert problem["code"] == "idempotency_key_reused"
        assert problem["field"] == "Idempotency-Key"

        # bad keys: 422 naming the header, nothing stored
        for bad in ("k" * 256, b"caf\xc3\xa9", b"tab\there"):
            refused = a.post(START, json=body, headers={"Idempotency-Key": bad})
            assert refused.status_code == 422, (bad, refused.text)
            assert refused.json()["field"] == "Idempotency-Key"
        longest = a.post(START, json=body, headers={"Idempotency-Key": "~" * 255})
        assert longest.status_code == 201, longest.text

        # keys are per org: org-b's "start-1" is its own run, and org-a's is still org-a's
        theirs = b.post(START, json=body, headers={"Idempotency-Key": "start-1"})
        assert theirs.status_code == 201, theirs.text
        assert theirs.json()["id"] != run_id
        assert b.get(f"{RUNS}/{run_id}").status_code == 404
        replay_b = b.post(START, json=body, headers={"Idempotency-Key": "start-1"})
        assert replay_b.status_code == 200 and replay_b.json()["id"] == theirs.json()["id"]
        assert a.post(START, json=body, headers={"Idempotency-Key": "start-1"}).json()["id"] == (
            run_id
        )

        # without the header nothing changes: each start is a new run
        plain = [a.post(START, json=body) for _ in range(2)]
        assert [p.status_code for p in plain] == [201, 201]
        assert "idempotent-replayed" not in plain[1].headers
        assert plain[0].json()["id"] != plain[1].json()["id"]

        ids_a = _run_ids(a)
        expected = {run_id, longest.json()["id"], plain[0].json()["id"], plain[1].json()["id"]}
        assert len(ids_a) == 4 and set(ids_a) == expected
        assert _run_ids(b) == [theirs.json()["id"]]
        assert _created_events(a, run_id) == 1

    operation = httpx.get(f"{url}/openapi.json").json()["paths"][START]["post"]
    header = next(p for p in operation["parameters"] if p["name"] == "Idempotency-Key")
    assert header["in"] == "header" and "Idempotent-Replayed" in header["description"]
    assert {"200", "201", "422"} <= set(operation["responses"])


def test_concurrent_identical_starts_make_one_run(api: Api) -> None:
    url, org_a, _ = api
    body = {"path": "keyed.yaml", "inputs": {"who": "all"}}
    headers = {"Idempotency-Key": "burst-1"}
    with (
        httpx.Client(
            base_url=url, headers=org_a, timeout=60, limits=httpx.Limits(max_connections=20)
        ) as client,
        ThreadPoolExecutor(max_workers=20) as pool,
    ):
        answers = list(pool.map(lambda _: client.post(START, json=body, headers=headers), [0] * 20))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200] * 19 + [201], [a.text for a in answers if a.status_code >= 300]
        ids = {a.json()["id"] for a in answers}
        assert len(ids) == 1
        assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 19
        assert _run_ids(client) == list(ids)
        assert _created_events(client, ids.pop()) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # transport, not storage
def test_client_retries_a_lost_start_with_the_same_key(api: Api) -> None:
    url, org_a, _ = api
    api_key = org_a["Authorization"].removeprefix("Bearer ")
    fast = RetryPolicy(attempts=4, initial_delay=0.01, max_delay=0.05)
    prefix = f"POST {START} ".encode()
    with lossy_proxy(url) as (proxied, proxy):
        proxy.rules.append(Rule(prefix, times=2, drop_answer=True))
        with Client(proxied, api_key=api_key, retry=fast) as client:
            run = client.start_pipeline(path="keyed.yaml", inputs={"who": "retry"})
        starts = [r for r in proxy.requests if r.startswith(prefix)]
        assert len(starts) == 3 and proxy.applied[0].startswith("drop_answer")
        keys = {
            line.split(b":", 1)[1].strip()
            for r in starts
            for line in r.split(b"\r\n")
            if line.lower().startswith(b"idempotency-key:")
        }
        assert len(keys) == 1
    with Client(url, api_key=api_key) as client:
        assert [r.id for r in client.list_pipeline_runs().items] == [run.id]
        # a key given by the caller is sent as it is: starting again with it is a replay
        mine = client.start_pipeline(path="keyed.yaml", idempotency_key="mine-1")
        assert client.start_pipeline(path="keyed.yaml", idempotency_key="mine-1").id == mine.id
        assert len(client.list_pipeline_runs().items) == 2
