"""Killing the server between an event and its delivery loses nothing (SQLite and PostgreSQL).

``writgate serve`` runs as a subprocess; the receiver is down, so the run's event is committed
with its outbox row but not delivered; the server is SIGKILLed, the receiver comes up, the
server restarts and delivers the event exactly once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks import Webhook

from tests.integration.forge_server import create_api_key
from tests.support.waiting import eventually, wait_for_server
from tests.support.webhook_receiver import webhook_receiver
from writgate.settings import Settings

WRITGATE = str(Path(sys.executable).parent / "writgate")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _server(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as output:
        process = subprocess.Popen(
            [WRITGATE, "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_server(
            f"http://127.0.0.1:{port}", process, describe_exit=lambda: log.read_text()[-2000:]
        )
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def test_sigkill_between_event_and_delivery_loses_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    key = create_api_key(settings, "default")  # also migrates the database
    port, receiver_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "WRITGATE_HOME": str(settings.home),
        "WRITGATE_DATABASE_URL": settings.database_url,
        "WRITGATE_WEBHOOKS_ALLOW_PRIVATE": "1",
        "WRITGATE_WEBHOOKS_RETRY_SCHEDULE": ",".join(["200ms"] * 100),
        "WRITGATE_EXECUTOR": "off",  # the run stays queued: its one event is run.queued
        "WRITGATE_SERVER_WORKER": "off",
    }
    headers = {"Authorization": f"Bearer {key}"}
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    hook_url = f"http://127.0.0.1:{receiver_port}/hooks"

    with _server(env, port, log) as process:
        endpoint = httpx.post(
            f"{base}/api/v1/webhooks",
            json={"url": hook_url, "eventTypes": ["run.*"]},
            headers=headers,
        ).json()
        run = httpx.post(
            f"{base}/api/v1/coding-agent/runs",
            json={
                "repository": "acme/app",
                "prompt": "fix it",
                "tags": ["crash"],
                "agent": {"driver": "command", "argv": ["true"]},
                "publish": {"mode": "none"},
            },
            headers=headers,
        )
        assert run.status_code == 201, run.text
        deliveries = f"{base}/api/v1/webhooks/{endpoint['id']}/deliveries"

        def failed_once() -> list[Any]:
            items = httpx.get(deliveries, headers=headers).json()["items"]
            return items if items and items[0]["attempts"] >= 1 else []

        pending = eventually(failed_once, what="a failed attempt")[0]
        assert pending["status"] == "pending" and pending["lastStatusCode"] is None
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    with webhook_receiver(port=receiver_port) as receiver, _server(env, port, log):
        received = receiver.wait_for(lambda seen: any(r.status == 200 for r in seen))
        time.sleep(1.0)  # a duplicate would show up by now
        received = receiver.snapshot()
        assert [r.headers["webhook-id"] for r in received] == [pending["id"]]
        payload = Webhook(endpoint["secret"]).verify(received[0].body, received[0].headers)
        assert payload["type"] == "run.queued"
        assert payload["data"]["runId"] == run.json()["id"]
        assert payload["data"]["tags"] == ["crash"]

        def settled() -> dict[str, Any] | None:
            detail = httpx.get(f"{deliveries}/{pending['id']}", headers=headers).json()
            return detail if detail["status"] == "succeeded" else None

        detail = eventually(settled, what="the delivery to settle")
        outcomes = [a["outcome"] for a in detail["attemptLog"]]
        assert outcomes[-1] == "succeeded" and set(outcomes[:-1]) == {"failed"}
        assert "ConnectError" in detail["attemptLog"][0]["error"]


def test_writgate_workers_deliver_when_the_server_does_not(
    settings: Settings, tmp_path: Path
) -> None:
    key = create_api_key(settings, "default")
    port = _free_port()
    env = {
        **os.environ,
        "WRITGATE_HOME": str(settings.home),
        "WRITGATE_DATABASE_URL": settings.database_url,
        "WRITGATE_WEBHOOKS_ALLOW_PRIVATE": "1",
        "WRITGATE_WEBHOOKS_DELIVERY": "off",  # the API node only stores; workers deliver
        "WRITGATE_WEBHOOKS_POLL": "100ms",
        "WRITGATE_EXECUTOR": "off",
        "WRITGATE_SERVER_WORKER": "off",
    }
    headers = {"Authorization": f"Bearer {key}"}
    base = f"http://127.0.0.1:{port}"
    # SQLite allows one worker; PostgreSQL workers share the outbox (FOR UPDATE SKIP LOCKED).
    workers_count = 1 if settings.is_embedded else 2
    with webhook_receiver() as receiver, _server(env, port, tmp_path / "server.log"):
        endpoint = httpx.post(
            f"{base}/api/v1/webhooks",
            json={"url": receiver.url, "eventTypes": ["run.queued"]},
            headers=headers,
        ).json()
        workers = []
        for i in range(workers_count):
            with (tmp_path / f"worker{i}.log").open("wb") as worker_log:
                workers.append(
                    subprocess.Popen(
                        [WRITGATE, "worker", "--all-orgs"],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=worker_log,
                        start_new_session=True,
                    )
                )
        try:
            run_ids = []
            for i in range(12):
                run = httpx.post(
                    f"{base}/api/v1/coding-agent/runs",
                    json={
                        "repository": "acme/app",
                        "prompt": f"task {i}",
                        "agent": {"driver": "command", "argv": ["true"]},
                        "publish": {"mode": "none"},
                    },
                    headers=headers,
                )
                assert run.status_code == 201, run.text
                run_ids.append(run.json()["id"])
            receiver.wait_for(lambda seen: len(seen) >= 12, timeout=60)
            time.sleep(0.5)
        finally:
            for process in workers:
                process.send_signal(signal.SIGTERM)
            for process in workers:
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(5)
        received = receiver.snapshot()
        ids = [r.headers["webhook-id"] for r in received]
        assert len(ids) == len(set(ids)) == 12
        verified = [Webhook(endpoint["secret"]).verify(r.body, r.headers) for r in received]
        assert sorted(p["data"]["runId"] for p in verified) == sorted(run_ids)
        assert all(process.returncode == 0 for process in workers)
