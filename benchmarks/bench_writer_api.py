"""Run API figures: ``POST /runs`` at 64 concurrent clients, idempotency storm, SSE fan-out."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import time
from typing import Any

import httpx
from _server import WRITGATE, served

CLIENTS = 64
PER_CLIENT = 16
ROUNDS = 3
SUBSCRIBERS = 1000
LINES = 20


def _body(i: int) -> dict[str, Any]:
    return {
        "repository": "bench/app",
        "prompt": f"task {i}",
        "tags": ["bench"],
        "metadata": {"i": i},
        "agent": {"driver": "command", "argv": ["true"]},
        "publish": {"mode": "none"},
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _create_round(url: str, key: str, offset: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, limits=limits, timeout=60
    ) as client:

        async def one_client(c: int) -> None:
            for j in range(PER_CLIENT):
                started = time.perf_counter()
                response = await client.post(
                    "/api/v1/coding-agent/runs", json=_body(offset + c * PER_CLIENT + j)
                )
                latencies.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one_client(c) for c in range(CLIENTS)))
        elapsed = time.perf_counter() - started
    return latencies, len(latencies) / elapsed


async def _storm(url: str, key: str) -> tuple[int, int]:
    """Runs made by 1,000 concurrent creates with one key, and how many were retried.

    A create whose connection broke (a loaded machine resets some of 200 loopback connections)
    is sent again with the same key, as a client should: it must still make no second run.
    """
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "storm"}
    limits = httpx.Limits(max_connections=200)
    retried = 0
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=120
    ) as client:

        async def create() -> httpx.Response:
            nonlocal retried
            for attempt in range(3):
                try:
                    return await client.post("/api/v1/coding-agent/runs", json=_body(-1))
                except httpx.TransportError:
                    if attempt == 2:
                        raise
                    retried += 1
            raise AssertionError("unreachable")

        responses = await asyncio.gather(*(create() for _ in range(1000)))
        runs = len({r.json()["id"] for r in responses if r.status_code in (200, 201)})
    return runs, retried


def create_figures() -> list[dict[str, Any]]:
    with served(WRITGATE_EXECUTOR="off") as (url, key, _home):
        p50s, p99s, rates = [], [], []
        for round_ in range(ROUNDS):
            latencies, rate = asyncio.run(_create_round(url, key, round_ * 10_000))
            p50s.append(_percentile(latencies, 0.50))
            p99s.append(_percentile(latencies, 0.99))
            rates.append(rate)
        runs, retried = asyncio.run(_storm(url, key))
    return [
        {
            "figure": "POST /runs p50, 64 clients, SQLite",
            "unit": "ms",
            "samples": p50s,
            "target": None,
            "peer": None,
        },
        {
            "figure": "POST /runs p99, 64 clients, SQLite",
            "unit": "ms",
            "samples": p99s,
            "target": "<= 50 ms",
            "peer": None,
        },
        {
            "figure": "POST /runs throughput, 64 clients, SQLite",
            "unit": "req/s",
            "samples": rates,
            "target": None,
            "peer": None,
        },
        {
            "figure": "runs made by 1,000 concurrent identical keyed creates",
            "unit": "runs",
            "samples": [runs],
            "target": "1 run",
            "peer": None,
            "note": f"{retried} creates resent after a broken connection",
        },
    ]


async def _fanout(url: str, key: str) -> tuple[list[float], int]:
    program = (
        "import time\ntime.sleep(12)\n"
        f"for i in range({LINES}):\n    print('t=%.6f' % time.time(), flush=True)\n"
        "    time.sleep(0.1)\n"
    )
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=SUBSCRIBERS + 10)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=httpx.Timeout(120, connect=60)
    ) as client:
        source = await client.post(
            "/api/v1/coding-agent/runs",
            json={
                "repository": "bench/app",
                "prompt": "print timestamps",
                "publish": {"mode": "none"},
                "session": {"keepWarmSeconds": 0},
                "agent": {"driver": "command", "argv": ["python3", "-c", program]},
            },
        )
        source.raise_for_status()
        run_id = source.json()["id"]
        latencies: list[float] = []
        complete = 0

        async def subscriber() -> None:
            nonlocal complete
            received = 0
            async with client.stream("GET", f"/api/v1/coding-agent/runs/{run_id}/stream") as r:
                event = None
                async for line in r.aiter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == "agent.message":
                        text = line.split('"text":"', 1)[1].split('"', 1)[0]
                        if text.startswith("t="):
                            latencies.append((time.time() - float(text[2:])) * 1000)
                            received += 1
                    elif line.startswith("data: ") and event == "done":
                        break
            if received == LINES:
                complete += 1

        await asyncio.gather(*(subscriber() for _ in range(SUBSCRIBERS)))
    return latencies, complete


def fanout_figures() -> list[dict[str, Any]]:
    with served() as (url, key, home):
        seed = home / "seed"
        seed.mkdir()
        (seed / "README.md").write_text("bench\n")
        subprocess.run(
            [WRITGATE, "forge", "create-repo", "bench/app", "--from", str(seed)],
            env={"WRITGATE_HOME": str(home), "WRITGATE_ORG": "bench", "PATH": "/usr/bin:/bin"},
            check=True,
            capture_output=True,
        )
        latencies, complete = asyncio.run(_fanout(url, key))
    return [
        {
            "figure": f"SSE delivery p99, {SUBSCRIBERS} subscribers of one run",
            "unit": "ms",
            "samples": [_percentile(latencies, 0.99)],
            "target": "<= 100 ms",
            "peer": None,
            "note": f"median {statistics.median(latencies):.1f} ms",
        },
        {
            "figure": f"SSE subscribers that got all {LINES} events",
            "unit": "subscribers",
            "samples": [complete],
            "target": f"{SUBSCRIBERS}",
            "peer": None,
        },
    ]


def run() -> list[dict[str, Any]]:
    return create_figures() + fanout_figures()


if __name__ == "__main__":
    for figure in run():
        print(figure)
