"""writgate.client figures: what the typed, retrying client costs over raw httpx.

Sequential ``create_run`` (with its generated Idempotency-Key and response validation into the
server's ``Run`` model) and ``get_run_status`` against a ``writgate serve`` with
``WRITGATE_EXECUTOR=off`` on SQLite, each compared with the same request sent by plain httpx.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

import httpx
from _server import served

from writgate.client import Client

SAMPLES = 200
ROUNDS = 3


def _body(i: int) -> dict[str, Any]:
    return {
        "repository": "bench/app",
        "prompt": f"task {i}",
        "tags": ["bench"],
        "agent": {"driver": "command", "argv": ["true"]},
        "publish": {"mode": "none"},
    }


def _median_ms(action: Any) -> float:
    latencies = []
    for i in range(SAMPLES):
        started = time.perf_counter()
        action(i)
        latencies.append((time.perf_counter() - started) * 1000)
    return statistics.median(latencies)


def run() -> list[dict[str, Any]]:
    with served(WRITGATE_EXECUTOR="off") as (url, key, _home):
        headers = {"Authorization": f"Bearer {key}"}
        with (
            Client(url, api_key=key) as client,
            httpx.Client(base_url=url, headers=headers, timeout=30) as raw,
        ):
            run_id = client.create_run(_body(-1)).id
            status_path = f"/api/v1/coding-agent/runs/{run_id}/status"

            def raw_create(i: int) -> None:
                response = raw.post(
                    "/api/v1/coding-agent/runs", json=_body(i),
                    headers={"Idempotency-Key": str(uuid.uuid4())},
                )  # fmt: skip
                response.raise_for_status()
                response.json()

            def raw_status(_i: int) -> None:
                raw.get(status_path).raise_for_status()

            creates, raw_creates, statuses, raw_statuses = [], [], [], []
            for _ in range(ROUNDS):
                creates.append(_median_ms(lambda i: client.create_run(_body(i))))
                raw_creates.append(_median_ms(raw_create))
                statuses.append(_median_ms(lambda _i: client.get_run_status(run_id)))
                raw_statuses.append(_median_ms(raw_status))
    return [
        {
            "figure": f"Client.create_run, median of {SAMPLES} sequential (SQLite, executor off)",
            "unit": "ms",
            "samples": creates,
            "target": None,
            "peer": {"name": "httpx POST with the same key and body", "samples": raw_creates},
        },
        {
            "figure": f"Client.get_run_status, median of {SAMPLES} sequential",
            "unit": "ms",
            "samples": statuses,
            "target": None,
            "peer": {"name": "httpx GET", "samples": raw_statuses},
        },
    ]


if __name__ == "__main__":
    for figure in run():
        print(figure)
