"""The webhook API on a real uvicorn server: real runs and gate decisions, a real receiver.

SQLite and PostgreSQL; every delivery is verified with the ``standardwebhooks`` package.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from standardwebhooks import Webhook

from forge import LocalForge
from tests.conftest import git
from tests.integration.forge_server import create_api_key, running_server
from tests.support.webhook_receiver import Received, Receiver, webhook_receiver
from writgate.app.database import open_database
from writgate.settings import Settings

PROBLEM = "application/problem+json"
POLICY = """\
policy: writgate/v1
name: webhook-demo
rules:
  - name: one-approval
    require: {approvals: {count: 1}}
"""


@pytest.fixture
def server(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    monkeypatch.setenv("WRITGATE_WEBHOOKS_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("WRITGATE_WEBHOOKS_RETRY_SCHEDULE", "100ms,100ms,100ms")
    monkeypatch.setenv("WRITGATE_WEBHOOKS_POLL", "100ms")
    monkeypatch.setenv("WRITGATE_WEBHOOKS_SUBSCRIPTION_CACHE", "50ms")
    headers = {"Authorization": f"Bearer {create_api_key(settings, 'default')}"}
    other = create_api_key(settings, "other")
    with (
        running_server(settings) as url,
        httpx.Client(base_url=url, timeout=60, headers=headers) as client,
    ):
        client.headers["X-Other"] = other
        yield client


def _seed(settings: Settings, tmp_path: Path) -> None:
    """Repository ``acme/app`` and an open pull request #1 on the local forge."""

    async def go() -> None:
        database = await open_database(settings)
        try:
            forge = LocalForge(engine=database.engine, ledger=database.ledger, home=settings.home)
            project = tmp_path / "project"
            project.mkdir()
            (project / "app.py").write_text("X = 1\n")
            await forge.create_repository("acme/app", from_dir=project)
            work = tmp_path / "work"
            git(tmp_path, "clone", "-q", await forge.clone_url("acme/app"), str(work))
            git(work, "checkout", "-qb", "fix")
            (work / "app.py").write_text("X = 2\n")
            git(work, "commit", "-qam", "fix")
            await forge.push_branch("acme/app", work, "fix")
            await forge.open_pull_request(
                "acme/app", head="fix", base="main", title="Fix", body="", draft=False
            )
        finally:
            await database.dispose()

    anyio.run(go)


def _verified(secret: str, requests: list[Received]) -> list[dict[str, Any]]:
    return [Webhook(secret).verify(r.body, r.headers) for r in requests if r.status == 200]


def _of_type(receiver: Receiver, secret: str, type: str) -> list[dict[str, Any]]:
    return [p for p in _verified(secret, receiver.snapshot()) if p["type"] == type]


def test_webhooks_over_http_with_real_runs_and_gate_decisions(
    server: httpx.Client, settings: Settings, tmp_path: Path
) -> None:
    _seed(settings, tmp_path)
    with webhook_receiver() as runs, webhook_receiver() as gates:
        created = server.post(
            "/api/v1/webhooks",
            json={"url": runs.url, "eventTypes": ["run.*"], "description": "bot"},
        )
        assert created.status_code == 201, created.text
        endpoint = created.json()
        run_secret = endpoint["secret"]
        assert run_secret.startswith("whsec_") and endpoint["enabled"] is True
        assert endpoint["eventTypes"] == ["run.*"] and endpoint["id"].startswith("whk_")
        gate = server.post(
            "/api/v1/webhooks", json={"url": gates.url, "eventTypes": ["gate.decided"]}
        ).json()
        listed = server.get("/api/v1/webhooks").json()
        assert {e["id"] for e in listed["items"]} == {endpoint["id"], gate["id"]}
        assert listed["nextCursor"] is None
        assert all("secret" not in e for e in listed["items"])
        fetched = server.get(f"/api/v1/webhooks/{endpoint['id']}").json()
        assert "secret" not in fetched and fetched["description"] == "bot"
        assert run_secret not in server.get("/api/v1/webhooks").text

        # A run that really executes: every lifecycle change arrives, signed.
        run = server.post(
            "/api/v1/coding-agent/runs",
            json={
                "repository": "acme/app",
                "title": "Say hi",
                "prompt": "say hi",
                "tags": ["ci", "owner:platform"],
                "metadata": {"ticket": "SUP-9"},
                "agent": {"driver": "command", "argv": ["python3", "-c", "print('hi')"]},
                "publish": {"mode": "none"},
                "session": {"keepWarmSeconds": 0},
            },
        )
        assert run.status_code == 201, run.text
        run_id = run.json()["id"]
        runs.wait_for(
            lambda seen: any(
                p["type"] in ("run.succeeded", "run.failed") for p in _verified(run_secret, seen)
            ),
            timeout=60,
        )
        payloads = [p for p in _verified(run_secret, runs.snapshot()) if p["type"] != "x"]
        types = {p["type"] for p in payloads}
        assert {"run.queued", "run.succeeded"} <= types, types
        assert all(t.startswith("run.") for t in types)
        final = next(p for p in payloads if p["type"] == "run.succeeded")["data"]
        assert final["runId"] == run_id and final["subjectId"] == run_id
        assert final["lifecycle"] == "succeeded" and final["terminal"] is True
        assert final["tags"] == ["ci", "owner:platform"]
        assert final["metadata"] == {"ticket": "SUP-9"} and final["title"] == "Say hi"
        assert {"awaitingFollowUp", "canFollowUp", "nextActions"} <= set(final)
        ids = [r.headers["webhook-id"] for r in runs.snapshot()]
        assert len(ids) == len(set(ids))  # no duplicate deliveries

        # A gate decision.
        judged = server.post(
            "/api/v1/merge-gate/evaluate",
            json={"policy": POLICY, "repository": "acme/app", "pullRequest": 1},
        )
        assert judged.status_code == 200, judged.text
        gates.wait_for(lambda seen: bool(_verified(gate["secret"], seen)))
        decided = _of_type(gates, gate["secret"], "gate.decided")
        assert len(decided) == 1
        assert decided[0]["data"]["decision"] == judged.json()["decision"] == "pending"

        # The delivery log.
        log = server.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries").json()
        assert log["items"] and {d["status"] for d in log["items"]} == {"succeeded"}
        assert {d["eventType"] for d in log["items"]} == types
        first = log["items"][-1]
        detail = server.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries/{first['id']}").json()
        assert detail["payload"]["type"] == first["eventType"]
        attempt = detail["attemptLog"][0]
        assert attempt["statusCode"] == 200 and attempt["outcome"] == "succeeded"
        assert attempt["latencyMs"] > 0 and attempt["responseBody"] == "ok"
        assert attempt["trigger"] == "scheduled"
        filtered = server.get(
            f"/api/v1/webhooks/{endpoint['id']}/deliveries", params={"status": "failed"}
        ).json()
        assert filtered["items"] == []
        paged = server.get(
            f"/api/v1/webhooks/{endpoint['id']}/deliveries", params={"limit": 1}
        ).json()
        assert len(paged["items"]) == 1 and paged["nextCursor"] == paged["items"][0]["id"]

        # Manual redelivery: the same message (same webhook-id) once more.
        before = len(runs.snapshot())
        again = server.post(f"/api/v1/webhooks/{endpoint['id']}/deliveries/{first['id']}/redeliver")
        assert again.status_code == 202, again.text
        runs.wait_for(lambda seen: len(seen) > before)
        assert runs.snapshot()[-1].headers["webhook-id"] == first["id"]
        Webhook(run_secret).verify(runs.snapshot()[-1].body, runs.snapshot()[-1].headers)

        # Test delivery and secret rotation.
        tested = server.post(f"/api/v1/webhooks/{endpoint['id']}/test")
        assert tested.status_code == 200, tested.text
        assert tested.json()["status"] == "succeeded"
        assert tested.json()["eventType"] == "webhook.test"
        assert tested.json()["attemptLog"][0]["trigger"] == "test"
        rotated = server.post(
            f"/api/v1/webhooks/{endpoint['id']}/rotate-secret", json={"graceSeconds": 60}
        ).json()
        assert rotated["secret"] != run_secret and rotated["previousSecretExpiresAt"]
        server.post(f"/api/v1/webhooks/{endpoint['id']}/test")
        newest = runs.snapshot()[-1]
        Webhook(rotated["secret"]).verify(newest.body, newest.headers)
        Webhook(run_secret).verify(newest.body, newest.headers)

    # Update, org isolation, delete.
    bad = server.patch(f"/api/v1/webhooks/{endpoint['id']}", json={"eventTypes": ["rn.*"]})
    assert bad.status_code == 422 and bad.json()["field"] == "/eventTypes/0"
    assert bad.headers["content-type"] == PROBLEM
    off = server.patch(f"/api/v1/webhooks/{endpoint['id']}", json={"enabled": False}).json()
    assert off["enabled"] is False and off["disabledReason"] == "disabled by a user"
    blocked = server.post(f"/api/v1/webhooks/{endpoint['id']}/deliveries/{first['id']}/redeliver")
    assert blocked.status_code == 409 and blocked.json()["code"] == "webhook_endpoint_disabled"
    on = server.patch(f"/api/v1/webhooks/{endpoint['id']}", json={"enabled": True}).json()
    assert on["enabled"] is True and on["disabledReason"] is None
    other = {"Authorization": f"Bearer {server.headers['X-Other']}"}
    hidden = server.get(f"/api/v1/webhooks/{endpoint['id']}", headers=other)
    assert hidden.status_code == 404 and hidden.headers["content-type"] == PROBLEM
    assert server.get("/api/v1/webhooks", headers=other).json()["items"] == []
    foreign = server.get(
        f"/api/v1/webhooks/{endpoint['id']}/deliveries/{first['id']}", headers=other
    )
    assert foreign.status_code == 404
    wrong_parent = server.get(f"/api/v1/webhooks/{gate['id']}/deliveries/{first['id']}")
    assert wrong_parent.status_code == 404
    assert server.delete(f"/api/v1/webhooks/{endpoint['id']}").status_code == 204
    assert server.get(f"/api/v1/webhooks/{endpoint['id']}").status_code == 404
    assert server.get("/api/v1/webhooks/event-types").json()["items"][0]["name"] == "run"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_refused_destinations_and_bad_input_are_422s_naming_the_field(
    server: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WRITGATE_WEBHOOKS_ALLOW_PRIVATE")
    cases = [
        ("http://127.0.0.1:8080/hook", "/url", "a loopback address"),
        ("http://169.254.169.254/latest", "/url", "a link-local address"),
        ("http://10.0.0.5/hook", "/url", "a private address"),
        ("ftp://example.com/hook", "/url", "only http and https"),
    ]
    for url, field, fragment in cases:
        response = server.post("/api/v1/webhooks", json={"url": url, "eventTypes": ["run.*"]})
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == PROBLEM
        problem = response.json()
        assert problem["field"] == field and fragment in problem["title"], problem
        assert "Traceback" not in response.text
    missing = server.post("/api/v1/webhooks", json={"url": "https://example.com/x"})
    assert missing.status_code == 422 and missing.json()["field"] == "/eventTypes"
    typo = server.post(
        "/api/v1/webhooks", json={"url": "https://93.184.215.14/x", "eventTypes": ["gate.*", "x"]}
    )
    assert typo.status_code == 422 and typo.json()["field"] == "/eventTypes/1"
    assert server.get("/api/v1/webhooks").json()["items"] == []  # nothing was stored
    monkeypatch.setenv("WRITGATE_WEBHOOKS_ALLOW_PRIVATE", "1")
    allowed = server.post(
        "/api/v1/webhooks", json={"url": "http://127.0.0.1:8080/hook", "eventTypes": ["run.*"]}
    )
    assert allowed.status_code == 201, allowed.text
    moved = server.patch(
        f"/api/v1/webhooks/{allowed.json()['id']}", json={"url": "gopher://example.com"}
    )
    assert moved.status_code == 422 and moved.json()["field"] == "/url"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_openapi_documents_the_webhook_payloads(server: httpx.Client) -> None:
    document = server.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    hooks = document["webhooks"]
    assert {"run.*", "gate.decided", "gate.stale", "review.completed", "webhook.test"} <= set(hooks)
    run = hooks["run.*"]["post"]
    ref = run["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schemas = document["components"]["schemas"]
    payload = schemas[ref.rsplit("/", 1)[1]]
    assert set(payload["required"]) >= {"type", "timestamp", "data"}
    data = schemas[payload["properties"]["data"]["$ref"].rsplit("/", 1)[1]]
    assert {"runId", "lifecycle", "tags", "metadata", "nextActions"} <= set(data["properties"])
    headers = {p["name"] for p in run["parameters"] if p["in"] == "header"}
    assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver" in document["paths"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_schemathesis_finds_no_server_error_in_the_webhook_api(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WRITGATE_WEBHOOKS_SUBSCRIPTION_CACHE", "0")
    key = create_api_key(settings, "fuzz")
    with running_server(settings) as url:
        # One real endpoint so that the item routes meet an existing id too.
        created = httpx.post(
            f"{url}/api/v1/webhooks",
            json={"url": "https://93.184.215.14/hook", "eventTypes": ["run.*"]},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert created.status_code == 201, created.text
        result = subprocess.run(
            [
                str(Path(sys.executable).with_name("st")),
                "run",
                f"{url}/openapi.json",
                "--checks",
                "not_a_server_error,response_schema_conformance,content_type_conformance",
                "--header",
                f"Authorization: Bearer {key}",
                "--max-examples",
                "15",
                "--generation-deterministic",
                "--request-timeout",
                "30",
                "--include-path-regex",
                "^/api/v1/webhooks",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
            cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "POST /api/v1/webhooks" in output, output[-3000:]
