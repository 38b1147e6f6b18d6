"""Whole-system failure tests of the run API: crashes, storms, reconnecting followers."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from tests.integration.lossy_proxy import Rule, lossy_proxy
from tests.support.waiting import wait_for_server
from writgate.settings import Settings

from ._system import prepare

WRITGATE = str(Path(sys.executable).with_name("writgate"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``writgate serve`` as a subprocess that a test may SIGKILL and start again."""

    def __init__(self, home: Path, database_url: str):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WRITGATE_")}
        self.env.update(
            WRITGATE_HOME=str(home), WRITGATE_DATABASE_URL=database_url, WRITGATE_ORG="rel"
        )
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [WRITGATE, "serve", "--port", str(self.port), "--log-level", "warning"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_server(self.url, self.process)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[tuple[Server, dict[str, str]]]:
    server = Server(tmp_path / "home", database_url)
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "README.md").write_text("hello\n")
    key = prepare(
        Settings(home=tmp_path / "home", database_url=database_url, org="rel"), "acme/app", seed
    )
    server.start()
    try:
        yield server, {"Authorization": f"Bearer {key}"}
    finally:
        server.stop()


def _body(argv: list[str], **changes: object) -> dict[str, object]:
    return {
        "repository": "acme/app",
        "prompt": "work",
        "publish": {"mode": "draft_pr"},
        "session": {"keepWarmSeconds": 0},
        "agent": {"driver": "command", "argv": argv},
        **changes,
    }


def _wait(client: httpx.Client, run_id: str, states: set[str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/api/v1/coding-agent/runs/{run_id}/status").json()
        if status["lifecycle"] in states:
            return status
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} never reached {states}")


def test_sigkill_mid_run_leaves_no_run_stuck_and_no_gap(
    server: tuple[Server, dict[str, str]],
) -> None:
    srv, auth = server
    marker = "writgate-reliability-sleeper"
    with httpx.Client(base_url=srv.url, headers=auth, timeout=30) as client:
        slow = client.post(
            "/api/v1/coding-agent/runs",
            json=_body(
                [
                    "python3",
                    "-c",
                    "import time; print('started', flush=True); time.sleep(300)",
                    marker,
                ]
            ),
        ).json()
        _wait(client, slow["id"], {"running"})
        deadline = time.monotonic() + 30
        while not any(
            e["type"] == "agent.message"
            for e in client.get(f"/api/v1/coding-agent/runs/{slow['id']}/events").json()["items"]
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    srv.kill()
    deadline = time.monotonic() + 20
    while subprocess.run(["pgrep", "-f", marker], capture_output=True).stdout.strip():
        assert time.monotonic() < deadline, "the agent outlived the server"
        time.sleep(0.1)
    srv.start()
    with httpx.Client(base_url=srv.url, headers=auth, timeout=30) as client:
        status = _wait(client, slow["id"], {"failed"}, timeout=30)
        assert status["failure"]["code"] == "sandbox_lost"
        assert status["nextActions"] == ["retry", "fallback"]
        events = client.get(
            f"/api/v1/coding-agent/runs/{slow['id']}/events", params={"limit": 1000}
        ).json()["items"]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert events[-1]["type"] == "run.failed"
        # the server works normally after the crash, and a keyed retry never makes a second run
        body = _body(["sh", "-c", "echo ok > done.txt"])
        headers = {"Idempotency-Key": "after-crash"}
        first = client.post("/api/v1/coding-agent/runs", json=body, headers=headers).json()
        again = client.post("/api/v1/coding-agent/runs", json=body, headers=headers)
        assert again.status_code == 200 and again.json()["id"] == first["id"]
        done = _wait(client, first["id"], {"succeeded", "failed"})
        assert done["lifecycle"] == "succeeded", done
        prs = client.get("/api/v1/forge/local/pulls", params={"repository": "acme/app"})
        assert prs.status_code == 200, prs.text
        assert len(prs.json()["items"]) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_idempotency_storm_1000_creates_20_keys(
    server: tuple[Server, dict[str, str]],
) -> None:
    srv, auth = server

    resent = 0

    async def create(client: httpx.AsyncClient, i: int) -> httpx.Response:
        nonlocal resent
        while True:
            try:
                return await client.post(
                    "/api/v1/coding-agent/runs",
                    json=_body(["true"], publish={"mode": "none"}, prompt=f"k{i % 20}"),
                    headers={"Idempotency-Key": f"storm-{i % 20}"},
                )
            except httpx.TransportError:
                # On a loaded machine the server may close a kept-alive connection just as the
                # next request goes out on it; a keyed create is safe to resend, as the
                # writgate clients do.
                resent += 1
                assert resent <= 50, "too many broken connections"

    async def storm() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(
            base_url=srv.url, headers=auth, limits=limits, timeout=120
        ) as client:
            return await asyncio.gather(*(create(client, i) for i in range(1000)))

    responses = asyncio.run(storm())
    assert {r.status_code for r in responses} <= {200, 201}
    ids_by_key: dict[str, set[str]] = {}
    for i, response in enumerate(responses):
        ids_by_key.setdefault(f"storm-{i % 20}", set()).add(response.json()["id"])
    assert all(len(ids) == 1 for ids in ids_by_key.values())
    # One 201 per key (a resent create may have lost its 201: the replay answers 200).
    assert 20 - resent <= sum(r.status_code == 201 for r in responses) <= 20
    with httpx.Client(base_url=srv.url, headers=auth, timeout=30) as client:
        listed = client.get("/api/v1/coding-agent/runs", params={"limit": 200}).json()
        assert len(listed["items"]) == 20


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_100_followers_with_random_disconnects_get_the_exact_ledger(
    server: tuple[Server, dict[str, str]],
) -> None:
    """100 SSE clients follow a live run through a proxy that cuts their connections at random
    bytes (mid-header, mid-event, between events); they also hang up by themselves after a
    random number of events. Each resumes with Last-Event-ID, as a browser's EventSource does,
    and must end up with exactly the run's ledger: every event once, in order, intact."""
    srv, auth = server
    seed = random.randrange(1 << 30)
    cuts = random.Random(seed)
    program = "import time\nfor i in range(60):\n    print(i, flush=True)\n    time.sleep(0.02)\n"
    with httpx.Client(base_url=srv.url, headers=auth, timeout=30) as client:
        run_id = client.post(
            "/api/v1/coding-agent/runs",
            json=_body(["python3", "-c", program], publish={"mode": "none"}),
        ).json()["id"]
    stream = f"/api/v1/coding-agent/runs/{run_id}/stream"

    async def follower(base_url: str, number: int) -> tuple[list[dict[str, Any]], int, int]:
        rng = random.Random(seed + number)
        got: list[dict[str, Any]] = []
        last: str | None = None
        connections = 0
        async with httpx.AsyncClient(base_url=base_url, headers=auth, timeout=60) as client:
            while True:
                connections += 1
                assert connections < 1000, f"follower {number} never got to the end"
                headers = {"Last-Event-ID": last} if last is not None else {}
                budget = rng.choice([rng.randint(1, 15), 0, 0])  # 0: until the end or a cut
                try:
                    async with aconnect_sse(client, "GET", stream, headers=headers) as source:
                        assert source.response.status_code == 200
                        async for sse in source.aiter_sse():
                            if sse.event == "done":
                                return got, int(json.loads(sse.data)["lastEventId"]), connections
                            got.append(json.loads(sse.data))
                            last = sse.id
                            if len(got) % 15 == budget:
                                break  # the client hangs up
                except httpx.TransportError:
                    pass  # cut by the proxy: resume after the last whole event

    async def all_followers(base_url: str) -> list[tuple[list[dict[str, Any]], int, int]]:
        return await asyncio.gather(*(follower(base_url, n) for n in range(100)))

    with lossy_proxy(srv.url) as (proxy_url, proxy):
        # Every other connection is cut somewhere in its first 16 KiB.
        proxy.rules.append(
            Rule(
                prefix=f"GET {stream} ".encode(),
                times=10**9,
                cut_after=lambda: cuts.choice([cuts.randint(1, 16384), 10**9]),
            )
        )
        results = asyncio.run(all_followers(proxy_url))
        cut = sum(1 for note in proxy.applied if note != "cut_after 1000000000")
    with httpx.Client(base_url=srv.url, headers=auth, timeout=30) as client:
        ledger = client.get(f"{stream.rsplit('/', 1)[0]}/events", params={"limit": 1000}).json()
    assert ledger["items"][-1]["type"] in ("run.succeeded", "run.failed"), ledger["items"][-1]
    for number, (got, done_at, _connections) in enumerate(results):
        assert got == ledger["items"], f"follower {number} (seed {seed})"
        assert done_at == ledger["items"][-1]["seq"]
    reconnects = sum(connections - 1 for _, _, connections in results)
    assert cut >= 50 and reconnects >= 100, (cut, reconnects)
    print(f"SSE: {len(ledger['items'])} events, {cut} connections cut, {reconnects} reconnects")
