"""writgate.client against a real server (uvicorn on 127.0.0.1), SQLite and PostgreSQL.

Lost answers and dropped streams are produced by a TCP proxy between client and server
(``lossy_proxy.py``), so the retries and resumptions cross a real network path.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from writgate.client import (
    ApiAuthError,
    ApiConflictError,
    ApiConnectionError,
    ApiInputError,
    ApiNotFoundError,
    ApiServerError,
    AsyncClient,
    Client,
    RetryPolicy,
    WaitTimeout,
)
from writgate.errors import InputError, NotFoundError
from writgate.settings import Settings

from .forge_server import create_api_key, running_server
from .lossy_proxy import Rule, lossy_proxy

COUNTER = (
    "import time\nfor i in range(40):\n    print('line', i, flush=True)\n    time.sleep(0.01)\n"
)
WRITGATE = str(Path(sys.executable).with_name("writgate"))
RUNS = b"POST /api/v1/coding-agent/runs "
FAST = RetryPolicy(attempts=6, initial_delay=0.01, max_delay=0.05)


class Api:
    def __init__(self, url: str, key: str, other_key: str) -> None:
        self.url, self.key, self.other_key = url, key, other_key

    def client(self, url: str | None = None, **kwargs: Any) -> Client:
        return Client(url or self.url, api_key=self.key, retry=kwargs.pop("retry", FAST), **kwargs)


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    key_a = create_api_key(settings, "org-a")
    key_b = create_api_key(settings, "org-b")

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

    anyio.run(seed)
    with running_server(settings) as url:
        yield Api(url, key_a, key_b)


def body(**changes: Any) -> dict[str, Any]:
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


def raw_ledger(api: Api, run_id: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{api.url}/api/v1/coding-agent/runs/{run_id}/events",
        params={"limit": 1000},
        headers={"Authorization": f"Bearer {api.key}"},
        timeout=30,
    )
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_run_methods_against_a_real_server(api: Api) -> None:
    with api.client() as client:
        run = client.create_run(body())
        assert run.created is True and run.id.startswith("run_")
        assert run.tags == ["ci", "owner:platform"]
        again = client.create_run(body(), idempotency_key="job-1")
        replay = client.create_run(body(), idempotency_key="job-1")
        assert again.created is True and replay.created is False and replay.id == again.id

        settled = client.wait(run.id, timeout=120)
        assert settled.terminal and settled.lifecycle.value == "succeeded"
        full = client.get_run(run.id)
        assert full.id == run.id and full.usage.turns == 1 and full.turns[0].exit_code == 0
        status = client.get_run_status(run.id)
        assert status.lifecycle == full.lifecycle and status.next_actions == full.next_actions

        events = client.list_run_events(run.id, limit=1000)
        assert [e.seq for e in events.items] == [e["seq"] for e in raw_ledger(api, run.id)]
        assert [e.seq for e in client.follow(run.id)] == [e.seq for e in events.items]
        tail = list(client.follow(run.id, after=events.items[-3].seq))
        assert [e.seq for e in tail] == [e.seq for e in events.items[-2:]]
        page = client.list_run_events(run.id, after=2, limit=3)
        assert [e.seq for e in page.items] == [3, 4, 5] and page.next_cursor == "5"

        listed = client.list_runs(tags=["ci"], metadata={"ticket": "PAY-742"})
        assert {r.id for r in listed.items} == {run.id, again.id}
        assert client.list_runs(metadata={"ticket": "nope"}).items == []
        client.wait(again.id, timeout=120)  # both succeeded: a page of one has a next page
        assert client.list_runs(lifecycle=["succeeded"], limit=1).next_cursor is not None
        assert [r.id for r in client.iter_runs(page_size=1)] == [r.id for r in listed.items]

        models = client.list_models()
        assert any(m.id == "anthropic/claude-sonnet-4.6" for m in models.items)
        document = client.openapi()
        assert document["paths"]["/api/v1/coding-agent/runs"]["post"]["operationId"] == "createRun"

        with pytest.raises(ApiConflictError) as busy:
            client.cancel_run(run.id)
        assert busy.value.code == "run_not_cancellable" and busy.value.status == 409
        with pytest.raises(ApiConflictError) as cold:
            client.send_message(run.id, "add a test")
        assert cold.value.code == "session_not_warm"
        chained = client.send_message(run.id, "add a test", fallback="chain")
        assert chained.parent_run_id == run.id and chained.id != run.id
        cancelled = client.cancel_run(chained.id)
        assert cancelled.lifecycle.value in ("cancelled", "succeeded", "failed")
        with pytest.raises(WaitTimeout) as late:
            client.wait(run.id, until={"queued"}, timeout=0.3)
        assert late.value.last is not None and late.value.last.lifecycle.value == "succeeded"


def test_warm_session_follow_up_and_complete(api: Api) -> None:
    with api.client() as client:
        run = client.create_run(body(session={"keepWarmSeconds": 600}))
        warm = client.wait(run.id, until={"awaiting_follow_up"}, timeout=120)
        assert warm.can_follow_up and "follow_up" in [a.value for a in warm.next_actions]
        with pytest.raises(ApiNotFoundError):
            client.complete_run("run_" + "0" * 26)
    with api.client() as client:
        turn = client.send_message(run.id, "again")
        assert turn.id == run.id
        client.wait(run.id, until=lambda s: s.awaiting_follow_up and s.updated_at > warm.updated_at,
                    timeout=120)  # fmt: skip
        done = client.complete_run(run.id)
        assert done.lifecycle.value == "succeeded" and done.usage.turns == 2


def test_errors_are_typed_and_carry_the_problem(api: Api) -> None:
    with api.client() as client:
        with pytest.raises(ApiInputError) as bad:
            client.create_run(body(tags=["ok", "bad tag!"]))
        assert bad.value.status == 422 and bad.value.field == "/tags/1"
        assert bad.value.code == "validation_failed" and isinstance(bad.value, InputError)
        with pytest.raises(ApiNotFoundError) as missing:
            client.get_run("run_nope")
        assert missing.value.code == "run_not_found" and isinstance(missing.value, NotFoundError)
        assert client.list_runs().items == []  # nothing stored by the bad create
        run = client.create_run(body())
    with Client(api.url, api_key=api.other_key) as other, pytest.raises(ApiNotFoundError):
        other.get_run(run.id)
    with Client(api.url, api_key="wg_wrong") as wrong, pytest.raises(ApiAuthError) as denied:
        wrong.list_runs()
    assert denied.value.status == 401 and "wg_wrong" not in str(denied.value)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # transport, not storage
def test_a_create_whose_answer_is_lost_is_retried_with_the_same_key(api: Api) -> None:
    with lossy_proxy(api.url) as (url, proxy):
        proxy.rules.append(Rule(RUNS, times=2, drop_answer=True))
        with api.client(url) as client:
            run = client.create_run(body())
        creates = [r for r in proxy.requests if r.startswith(RUNS)]
        assert len(creates) == 3 and proxy.applied[0].startswith("drop_answer")
        keys = {
            line.split(b":", 1)[1].strip()
            for r in creates
            for line in r.split(b"\r\n")
            if line.lower().startswith(b"idempotency-key:")
        }
        assert len(keys) == 1
        # The first attempt created the run; the retries were answered with it.
        assert run.created is False
    with api.client() as client:
        assert [r.id for r in client.list_runs().items] == [run.id]
        events = client.list_run_events(run.id, limit=1000).items
        assert [e.type for e in events].count("run.queued") == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # transport, not storage
def test_writes_without_a_key_are_not_retried_once_sent(api: Api) -> None:
    with api.client() as direct:
        run = direct.create_run(body(session={"keepWarmSeconds": 600}))
        direct.wait(run.id, until={"awaiting_follow_up"}, timeout=120)
    cancel = f"POST /api/v1/coding-agent/runs/{run.id}/cancel ".encode()
    with lossy_proxy(api.url) as (url, proxy):
        proxy.rules.append(Rule(cancel, times=1, drop_answer=True))
        with api.client(url) as client, pytest.raises(ApiConnectionError):
            client.cancel_run(run.id)
        assert sum(r.startswith(cancel) for r in proxy.requests) == 1
    with api.client() as direct:
        assert direct.get_run_status(run.id).lifecycle.value == "cancelled"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # transport, not storage
def test_unavailable_and_rate_limited_answers(api: Api) -> None:
    unavailable = (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    limited = (
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Type: application/"
        b"problem+json\r\nContent-Length: 38\r\nConnection: close\r\n\r\n"
        b'{"code":"rate_limited","status":429}  '
    )
    with api.client() as direct:
        run = direct.create_run(body(session={"keepWarmSeconds": 600}))
        direct.wait(run.id, until={"awaiting_follow_up"}, timeout=120)
    status = f"GET /api/v1/coding-agent/runs/{run.id}/status ".encode()
    cancel = f"POST /api/v1/coding-agent/runs/{run.id}/cancel ".encode()
    with lossy_proxy(api.url) as (url, proxy):
        proxy.rules.append(Rule(status, times=2, answer=unavailable))
        with api.client(url) as client:
            assert client.get_run_status(run.id).id == run.id  # a read is retried past 503s
        proxy.rules.append(Rule(cancel, times=1, answer=unavailable))
        with api.client(url) as client, pytest.raises(ApiServerError) as failed:
            client.cancel_run(run.id)  # a write is not: the 503 may come after the effect
        assert failed.value.status == 503
        proxy.rules.append(Rule(cancel, times=1, answer=limited))
        with api.client(url) as client:
            # 429 with Retry-After: the server refused before doing anything, so it is retried.
            assert client.cancel_run(run.id).lifecycle.value == "cancelled"
        assert sum(r.startswith(cancel) for r in proxy.requests) == 3


def _cuts(seed: int) -> Rule:
    rng = random.Random(seed)
    stream = b"GET /api/v1/coding-agent/runs/"
    return Rule(stream, times=6, cut_after=lambda: rng.randint(120, 1500))


def test_follow_across_forced_disconnects_yields_the_exact_ledger(api: Api) -> None:
    with api.client() as direct:
        run = direct.create_run(body())
    with lossy_proxy(api.url) as (url, proxy):
        proxy.rules.append(_cuts(11))
        # Only stream requests go through this client, so each connection is one stream.
        with api.client(url) as client:
            seen = [e.model_dump(by_alias=True) for e in client.follow(run.id)]
        cuts = [a for a in proxy.applied if a.startswith("cut_after")]
    ledger = raw_ledger(api, run.id)
    assert [e["seq"] for e in seen] == [e["seq"] for e in ledger]
    assert [e["type"] for e in seen] == [e["type"] for e in ledger]
    assert ledger[-1]["type"] == "run.succeeded"
    assert len(cuts) >= 3, proxy.applied


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # transport, not storage
@pytest.mark.anyio
async def test_async_client_creates_follows_and_waits(api: Api) -> None:
    async with AsyncClient(api.url, api_key=api.key, retry=FAST) as client:
        run = await client.create_run(body())
        with lossy_proxy(api.url) as (url, proxy):
            proxy.rules.append(_cuts(5))
            async with AsyncClient(url, api_key=api.key, retry=FAST) as through:
                seen = [e.seq async for e in through.follow(run.id)]
        status = await client.wait(run.id, timeout=120)
        assert status.lifecycle.value == "succeeded"
        events = await client.list_run_events(run.id, limit=1000)
        assert seen == [e.seq for e in events.items]
        assert [r.id async for r in client.iter_runs(tags=["ci"])] == [run.id]
        assert (await client.get_run(run.id)).id == run.id
        with pytest.raises(ApiNotFoundError):
            await client.get_run_status("run_missing")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # transport, not storage
def test_runs_list_server_matches_get_runs(api: Api, tmp_path: Path) -> None:
    with api.client() as client:
        first = client.create_run(body())
        client.create_run(body(tags=["docs"], prompt="write docs"))
        client.wait(first.id, timeout=120)
    env = {
        "PATH": "/usr/bin:/bin",
        "WRITGATE_HOME": str(tmp_path / "elsewhere"),  # proves no local database is read
        "WRITGATE_API_KEY": api.key,
    }
    command = [WRITGATE, "runs", "list", "--json"]
    for args, params in ((["--tag", "ci"], {"tag": "ci"}), ([], {})):
        result = subprocess.run(
            [*command, "--server", api.url, *args], env=env, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        expected = httpx.get(
            f"{api.url}/api/v1/coding-agent/runs", params=params, timeout=30,
            headers={"Authorization": f"Bearer {api.key}"},
        ).json()  # fmt: skip
        assert json.loads(result.stdout) == expected
    shown = subprocess.run(
        [WRITGATE, "runs", "show", first.id, "--json"],
        env={**env, "WRITGATE_SERVER": api.url}, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == first.id
    followed = subprocess.run(
        [WRITGATE, "runs", "follow", first.id, "--json", "--server", api.url],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert followed.returncode == 0, followed.stderr
    lines = [json.loads(line) for line in followed.stdout.splitlines()]
    assert [e["seq"] for e in lines] == [e["seq"] for e in raw_ledger(api, first.id)]
    missing = subprocess.run(
        [WRITGATE, "runs", "show", "run_nope", "--server", api.url],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "run_not_found" in missing.stderr and "Traceback" not in missing.stderr
    denied = subprocess.run(
        [*command, "--server", api.url], env={**env, "WRITGATE_API_KEY": "wg_bad"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert denied.returncode == 1 and "wg_bad" not in denied.stderr
    assert "Traceback" not in denied.stderr
