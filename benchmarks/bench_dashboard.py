"""Dashboard page latency: the runs list and a run's page, server-rendered, against the JSON API
that answers the same question (``writgate serve`` on loopback, 200 stored runs)."""

from __future__ import annotations

import re
import statistics
import time
from typing import Any

import httpx
from _server import served

RUNS = 200
SAMPLES = 40


def _timed(client: httpx.Client, path: str) -> list[float]:
    client.get(path).raise_for_status()  # warm up
    samples = []
    for _ in range(SAMPLES):
        start = time.perf_counter()
        client.get(path).raise_for_status()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def run() -> list[dict[str, Any]]:
    """Figures: runs list (50 of 200), filtered list, and a run page, each with the API as peer."""
    with served(WRITGATE_EXECUTOR="off", WRITGATE_SERVER_WORKER="off") as (url, key, _home):
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        ids = []
        for i in range(RUNS):
            body = {
                "repository": "acme/web",
                "title": f"Fix flaky check {i}",
                "prompt": "Fix the flaky check and add a regression test.",
                "tags": ["ci", f"team-{i % 5}"],
                "metadata": {"ticket": f"OPS-{i}", "source": "bench"},
                "agent": {"driver": "command", "argv": ["true"]},
            }
            ids.append(api.post("/api/v1/coding-agent/runs", json=body).json()["id"])
        browser = httpx.Client(base_url=url, timeout=30)
        form = browser.get("/login").text
        token = re.search(r'name="csrf" value="([^"]+)"', form)
        assert token is not None
        browser.post("/login", data={"key": key, "csrf": token.group(1)})
        cases = [
            ("dashboard runs list, 50 of 200 runs", "/", "/api/v1/coding-agent/runs?limit=50"),
            (
                "dashboard runs list filtered by tag and metadata",
                "/?tag=team-3&metadata=source%3Dbench",
                "/api/v1/coding-agent/runs?tag=team-3&metadata.source=bench",
            ),
            ("dashboard run page", f"/runs/{ids[0]}", f"/api/v1/coding-agent/runs/{ids[0]}"),
        ]
        figures = []
        for figure, page, peer in cases:
            samples = _timed(browser, page)
            figures.append(
                {
                    "figure": figure,
                    "unit": "ms",
                    "samples": samples,
                    "target": None,
                    "peer": {
                        "name": f"JSON API GET {peer.split('?')[0]}",
                        "samples": _timed(api, peer),
                    },
                }
            )
        return figures


if __name__ == "__main__":
    for found in run():
        median = statistics.median(found["samples"])
        peer = statistics.median(found["peer"]["samples"])
        print(f"{found['figure']}: median {median:.1f} ms (API {peer:.1f} ms)")
