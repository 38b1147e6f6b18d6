"""The forge's HTTP routes on a real uvicorn server, with real git, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from forge.webhooks import sign
from tests.conftest import git
from tests.integration.forge_server import create_api_key, running_server
from tests.integration.github_fake import deep_update, schema_example
from writgate.settings import Settings

GATE = "writgate/merge-gate"
SECRET = "s3cret-for-tests"
PROBLEM = "application/problem+json"


@pytest.fixture
def client(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    monkeypatch.setenv("WRITGATE_GITHUB_WEBHOOK_SECRET", SECRET)
    token = create_api_key(settings)
    headers = {"Authorization": f"Bearer {token}"}
    with (
        running_server(settings) as url,
        httpx.Client(base_url=url, timeout=30, headers=headers) as http,
    ):
        http.headers["X-Other-Org-Key"] = create_api_key(settings, "other")
        yield http


def commit_all(work: Path, message: str) -> str:
    git(work, "add", "-A")
    git(work, "commit", "-qm", message)
    return git(work, "rev-parse", "HEAD").strip()


def test_pull_request_through_the_api(client: httpx.Client, tmp_path: Path) -> None:
    created = client.post("/api/v1/forge/local/repositories", json={"name": "acme/web"})
    assert created.status_code == 201, created.text
    clone_url = created.json()["cloneUrl"]
    assert created.json()["requiredContexts"] == [GATE]
    again = client.post("/api/v1/forge/local/repositories", json={"name": "acme/web"})
    assert again.json()["id"] == created.json()["id"]

    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "app.py").write_text("print(1)\n")
    commit_all(work, "initial")
    git(work, "push", "-q", clone_url, "main")
    git(work, "checkout", "-qb", "fix")
    (work / "app.py").write_text("print(2)\n")
    first = commit_all(work, "fix")
    git(work, "push", "-q", clone_url, "fix")

    base = "/api/v1/forge/local/repositories/acme/web"
    opened = client.post(f"{base}/pulls", json={"head": "fix", "title": "Fix", "draft": False})
    assert opened.status_code == 201, opened.text
    assert (opened.json()["number"], opened.json()["base"]) == (1, "main")

    listed = client.get("/api/v1/forge/local/pulls").json()
    assert listed["nextCursor"] is None
    assert [(p["repository"], p["number"], p["headSha"]) for p in listed["items"]] == [
        ("acme/web", 1, first)
    ]
    files = client.get(f"{base}/pulls/1/files").json()
    assert files == {
        "items": [
            {
                "filename": "app.py",
                "status": "modified",
                "additions": 1,
                "deletions": 1,
                "changes": 2,
                "previousFilename": None,
                "binary": False,
            }
        ],
        "nextCursor": None,
    }
    approved = client.post(f"{base}/pulls/1/approve", json={"user": "alice"})
    assert approved.status_code == 201 and approved.json()["commitSha"] == first
    assert client.get(f"{base}/pulls/1").json()["approvedBy"] == ["alice"]

    (work / "app.py").write_text("print(3)\n")
    second = commit_all(work, "again")
    git(work, "push", "-q", clone_url, "fix")
    pr = client.get(f"{base}/pulls/1").json()
    assert pr["headSha"] == second
    assert pr["approvedBy"] == []
    assert pr["reviews"][0]["stale"] is True
    assert pr["mergeBlockers"] == [f"required context {GATE!r} is missing on {second[:12]}"]
    assert pr["prState"]["reviews"] == [{"user": "alice", "state": "approved", "commitSha": first}]

    refused = client.post(f"{base}/pulls/1/merge")
    assert refused.status_code == 409
    assert refused.headers["content-type"] == PROBLEM
    assert refused.json()["code"] == "merge_refused"
    assert refused.json()["reasons"] == pr["mergeBlockers"]

    labelled = client.post(f"{base}/pulls/1/labels", json={"add": ["ready", "bug"]})
    assert labelled.json()["labels"] == ["ready", "bug"]
    labelled = client.post(f"{base}/pulls/1/labels", json={"remove": ["bug"]})
    assert labelled.json()["labels"] == ["ready"]

    annotations = [
        {
            "path": "app.py",
            "startLine": 1,
            "endLine": 1,
            "annotationLevel": "notice",
            "message": f"note {i}",
        }
        for i in range(120)
    ]
    run = client.post(
        f"{base}/commits/{second}/check-runs",
        json={"name": "judge", "status": "in_progress", "annotations": annotations[:50]},
    )
    assert run.status_code == 201, run.text
    run_id = run.json()["id"]
    for chunk in (annotations[50:100], annotations[100:]):
        patched = client.patch(f"{base}/check-runs/{run_id}", json={"annotations": chunk})
        assert patched.status_code == 200, patched.text
    done = client.patch(f"{base}/check-runs/{run_id}", json={"conclusion": "failure"})
    assert (done.json()["status"], done.json()["annotationsCount"]) == ("completed", 120)
    full = client.get(f"{base}/check-runs/{run_id}").json()
    assert [a["message"] for a in full["annotations"]] == [f"note {i}" for i in range(120)]
    runs = client.get(f"{base}/pulls/1/check-runs").json()["items"]
    assert [(r["name"], r["conclusion"]) for r in runs] == [("judge", "failure")]

    status = client.post(
        f"{base}/commits/{second}/statuses",
        json={"context": GATE, "state": "success", "description": "allowed"},
    )
    assert status.status_code == 201, status.text
    statuses = client.get(f"{base}/pulls/1/statuses").json()["items"]
    assert [(s["context"], s["state"]) for s in statuses] == [(GATE, "success")]
    merged = client.post(f"{base}/pulls/1/merge", json={"mergedBy": "alice"})
    assert merged.status_code == 200, merged.text
    assert merged.json()["state"] == "merged"
    assert git(Path(clone_url), "rev-parse", "main").strip() == second

    events = client.get(f"{base}/pulls/1/events").json()["items"]
    first_page = client.get(f"{base}/pulls/1/events", params={"limit": 3}).json()
    rest = client.get(f"{base}/pulls/1/events", params={"cursor": first_page["nextCursor"]}).json()
    assert [e["seq"] for e in first_page["items"] + rest["items"]] == [e["seq"] for e in events]
    types = [e["type"] for e in events]
    assert types[0] == "pr.opened" and types[-1] == "pr.merged"
    assert {"pr.review", "pr.synchronize", "pr.merge_refused", "status.set"} <= set(types)


def test_api_errors_are_problem_json(client: httpx.Client) -> None:
    assert client.post("/api/v1/forge/local/repositories", json={"name": "acme/web"}).is_success
    other = {"Authorization": f"Bearer {client.headers['X-Other-Org-Key']}"}
    hidden = client.get("/api/v1/forge/local/repositories/acme/web", headers=other)
    assert hidden.status_code == 404
    assert client.get("/api/v1/forge/local/repositories", headers=other).json()["items"] == []
    anonymous = client.get("/api/v1/forge/local/pulls", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    missing = client.get("/api/v1/forge/local/repositories/acme/none/pulls/1")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM
    assert "acme/none" in missing.json()["title"]
    bad = client.post("/api/v1/forge/local/repositories", json={"name": "not-a-repo"})
    assert bad.status_code == 422
    assert bad.json()["field"] == "repository"
    bad_state = client.get("/api/v1/forge/local/pulls", params={"state": "weird"})
    assert bad_state.status_code == 422
    bad_cursor = client.get("/api/v1/forge/local/pulls", params={"cursor": "nope"})
    assert (bad_cursor.status_code, bad_cursor.json()["field"]) == (422, "cursor")


def _delivery(client: httpx.Client, event: str, payload: dict[str, object], **headers: str):
    body = json.dumps(payload).encode()
    sent = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(SECRET, body),
        "Content-Type": "application/json",
        **headers,
    }
    return client.post("/api/v1/forge/github/webhook", content=body, headers=sent), sent


# A pull_request "opened" delivery shaped by GitHub's own schema (every required field).
PR_PAYLOAD = deep_update(
    schema_example("webhook-pull-request-opened"),
    {
        "number": 7,
        "pull_request": {
            "number": 7,
            "head": {"ref": "writgate/fix", "sha": "a" * 40},
            "base": {"ref": "main", "sha": "b" * 40},
        },
        "repository": {"full_name": "acme/web"},
        "installation": {"id": 42, "node_id": "x"},
        "sender": {"login": "octocat"},
    },
)


def test_webhook_signature_dedup_and_triggers(client: httpx.Client) -> None:
    accepted, headers = _delivery(client, "pull_request", PR_PAYLOAD)
    assert accepted.status_code == 202, accepted.text
    trigger = accepted.json()["trigger"]
    assert (trigger["event"], trigger["action"], trigger["repository"], trigger["number"]) == (
        "pull_request",
        "opened",
        "acme/web",
        7,
    )
    assert (trigger["headSha"], trigger["baseRef"], trigger["installationId"]) == (
        "a" * 40,
        "main",
        42,
    )

    # The same delivery id again: rejected as a duplicate, no second record.
    body = json.dumps(PR_PAYLOAD).encode()
    replay = client.post("/api/v1/forge/github/webhook", content=body, headers=headers)
    assert replay.status_code == 409
    assert replay.headers["content-type"] == PROBLEM
    assert replay.json()["code"] == "duplicate_delivery"

    wrong, _ = _delivery(
        client, "pull_request", PR_PAYLOAD, **{"X-Hub-Signature-256": "sha256=" + "0" * 64}
    )
    assert wrong.status_code == 401
    assert wrong.headers["content-type"] == PROBLEM
    assert wrong.json()["code"] == "bad_signature"
    tampered = client.post(
        "/api/v1/forge/github/webhook",
        content=body.replace(b"acme/web", b"evil/web"),
        headers={**headers, "X-GitHub-Delivery": str(uuid.uuid4())},
    )
    assert tampered.status_code == 401
    unsigned, _ = _delivery(client, "pull_request", PR_PAYLOAD, **{"X-Hub-Signature-256": ""})
    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "signature_missing")

    ignored, _ = _delivery(client, "pull_request", {**PR_PAYLOAD, "action": "labeled"})
    assert (ignored.status_code, ignored.json()["ignored"]) == (200, True)
    suite, _ = _delivery(
        client,
        "check_suite",
        {
            "action": "rerequested",
            "check_suite": {"head_branch": "fix", "head_sha": "c" * 40, "pull_requests": []},
            "repository": {"full_name": "acme/web"},
        },
    )
    assert suite.status_code == 202
    group, _ = _delivery(
        client,
        "merge_group",
        {
            "action": "checks_requested",
            "merge_group": {
                "head_sha": "d" * 40,
                "head_ref": "refs/heads/gh-readonly-queue/main/pr-7",
                "base_ref": "refs/heads/main",
            },
            "repository": {"full_name": "acme/web"},
        },
    )
    assert group.status_code == 202
    assert group.json()["trigger"]["baseRef"] == "main"

    listed = client.get("/api/v1/forge/triggers").json()
    assert [t["event"] for t in listed["items"]] == ["merge_group", "check_suite", "pull_request"]
    assert listed["nextCursor"] is None
    page = client.get("/api/v1/forge/triggers", params={"limit": 2}).json()
    assert len(page["items"]) == 2 and page["nextCursor"]
    rest = client.get("/api/v1/forge/triggers", params={"limit": 2, "cursor": page["nextCursor"]})
    assert [t["event"] for t in rest.json()["items"]] == ["pull_request"]
    one = client.get(f"/api/v1/forge/triggers/{trigger['id']}").json()
    assert one["payload"]["sender"]["login"] == "octocat"
    only = client.get("/api/v1/forge/triggers", params={"event": "check_suite"}).json()
    assert [t["event"] for t in only["items"]] == ["check_suite"]


def test_webhook_refused_without_a_secret_and_when_too_large(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WRITGATE_GITHUB_WEBHOOK_SECRET", raising=False)
    body = json.dumps(PR_PAYLOAD).encode()
    headers = {
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(SECRET, body),
    }
    with running_server(settings) as url, httpx.Client(base_url=url, timeout=30) as http:
        refused = http.post("/api/v1/forge/github/webhook", content=body, headers=headers)
        assert refused.status_code == 503
        assert refused.json()["code"] == "webhook_not_configured"
    monkeypatch.setenv("WRITGATE_GITHUB_WEBHOOK_SECRET", SECRET)
    monkeypatch.setattr("forge.api.MAX_WEBHOOK_BYTES", 1000)
    big = json.dumps({**PR_PAYLOAD, "padding": "x" * 5000}).encode()
    with running_server(settings) as url, httpx.Client(base_url=url, timeout=30) as http:
        huge = http.post(
            "/api/v1/forge/github/webhook",
            content=big,
            headers={**headers, "X-Hub-Signature-256": sign(SECRET, big)},
        )
        assert (huge.status_code, huge.json()["code"]) == (413, "webhook_too_large")
        token = create_api_key(settings)
        listed = http.get("/api/v1/forge/triggers", headers={"Authorization": f"Bearer {token}"})
        assert listed.json() == {"items": [], "nextCursor": None}
