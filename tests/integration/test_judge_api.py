"""The judge's HTTP routes on a real uvicorn server, with real git, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import jsonschema
import pytest

from forge import LocalForge
from tests.conftest import git
from tests.integration.forge_server import create_api_key, running_server
from writgate.app.database import open_database
from writgate.settings import Settings

REPO = "acme/web"
PROBLEM = "application/problem+json"
POLICY = """\
policy: writgate/v1
name: api-guard
rules:
  - name: no-secrets
    if: {review.findings: {reviewer: secrets, count: "> 0"}}
    block: "A secret was found in the change."
  - name: one-approval
    require: {approvals: {count: 1}}
"""
SARIF_SCHEMA = json.loads(
    (Path(__file__).parent.parent / "data" / "sarif-schema-2.1.0.json").read_text()
)


def _pull_request(settings: Settings, tmp_path: Path) -> str:
    async def go() -> str:
        database = await open_database(settings)
        try:
            forge = LocalForge(engine=database.engine, ledger=database.ledger, home=settings.home)
            project = tmp_path / "project"
            (project / "src").mkdir(parents=True)
            (project / "src" / "app.py").write_text("def answer():\n    return 41\n")
            await forge.create_repository(REPO, from_dir=project)
            work = tmp_path / "work"
            git(tmp_path, "clone", "-q", await forge.clone_url(REPO), str(work))
            git(work, "checkout", "-qb", "fix")
            (work / "src" / "app.py").write_text("def answer():\n    print('x')\n    return 42\n")
            git(work, "commit", "-qam", "fix")
            await forge.push_branch(REPO, work, "fix")
            pr = await forge.open_pull_request(
                REPO, head="fix", base="main", title="Fix", body="", draft=False
            )
            return pr.head_sha
        finally:
            await database.dispose()

    return anyio.run(go)


@pytest.fixture
def client(settings: Settings, tmp_path: Path) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {create_api_key(settings)}"}
    with (
        running_server(settings) as url,
        httpx.Client(base_url=url, timeout=60, headers=headers) as http,
    ):
        http.headers["X-Other"] = create_api_key(settings, "other")
        yield http


def test_review_runs_and_merge_gate_over_http(
    client: httpx.Client, settings: Settings, tmp_path: Path
) -> None:
    head = _pull_request(settings, tmp_path)
    created = client.post(
        "/api/v1/review-runs",
        json={"repository": REPO, "pullRequest": 1, "reviewers": ["secrets", "debug-leftovers"]},
    )
    assert created.status_code == 201, created.text
    run = created.json()
    assert run["id"].startswith("rvw_") and run["head"] == {"ref": "fix", "sha": head}
    assert [(f["rule"], f["path"], f["startLine"]) for f in run["findings"]] == [
        ("debug-print", "src/app.py", 2)
    ]
    assert client.get(f"/api/v1/review-runs/{run['id']}").json() == run
    sarif = client.get(f"/api/v1/review-runs/{run['id']}", params={"format": "sarif"})
    assert sarif.headers["content-type"].startswith("application/sarif+json")
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(sarif.json())
    rdjson = client.get(f"/api/v1/review-runs/{run['id']}", params={"format": "rdjson"}).json()
    assert rdjson["diagnostics"][0]["code"] == {"value": "debug-print"}
    listed = client.get("/api/v1/review-runs", params={"repository": REPO}).json()
    assert [r["id"] for r in listed["items"]] == [run["id"]] and listed["nextCursor"] is None
    other = {"Authorization": f"Bearer {client.headers['X-Other']}"}
    hidden = client.get(f"/api/v1/review-runs/{run['id']}", headers=other)
    assert hidden.status_code == 404 and hidden.headers["content-type"] == PROBLEM

    by_range = client.post(
        "/api/v1/review-runs",
        json={"repository": REPO, "base": "main", "head": head, "reviewers": ["secrets"]},
    )
    assert by_range.status_code == 201 and by_range.json()["findings"] == []

    judged = client.post(
        "/api/v1/merge-gate/evaluate",
        json={"policy": POLICY, "repository": REPO, "pullRequest": 1, "publish": True,
              "reviewers": ["secrets", "debug-leftovers"]},
    )  # fmt: skip
    assert judged.status_code == 200, judged.text
    decision = judged.json()
    assert decision["decision"] == "pending" and decision["status"] == "current"
    assert decision["publication"]["status"]["state"] == "pending"
    assert decision["reviewRun"].startswith("rvw_")
    fetched = client.get(f"/api/v1/merge-gate/decisions/{decision['id']}").json()
    assert fetched["id"] == decision["id"] and fetched["headSha"] == head

    approved = client.post(
        f"/api/v1/forge/local/repositories/{REPO}/pulls/1/reviews",
        json={"user": "alice", "state": "approved"},
    )
    assert approved.status_code in (200, 201), approved.text
    refreshed = client.post(
        "/api/v1/merge-gate/refresh", json={"repository": REPO, "pullRequest": 1}
    ).json()["decision"]
    assert refreshed["decision"] == "allow"
    assert client.get(f"/api/v1/merge-gate/decisions/{decision['id']}").json()["status"] == (
        "superseded"
    )
    # The server's watcher re-evaluates after the approval too: wait until the latest status
    # is the one of the current decision.
    deadline = time.monotonic() + 20
    while True:
        listed = client.get(
            "/api/v1/merge-gate/decisions", params={"repository": REPO, "pullRequest": 1}
        ).json()["items"]
        statuses = client.get(f"/api/v1/forge/local/repositories/{REPO}/pulls/1/statuses")
        assert statuses.status_code == 200, statuses.text
        latest = next(s for s in statuses.json()["items"] if s["context"] == "writgate/merge-gate")
        if latest["targetUrl"].endswith(f"/gate/decisions/{listed[0]['id']}"):
            break
        assert time.monotonic() < deadline, (latest, listed)
        time.sleep(0.1)
    assert latest["state"] == "success" and listed[0]["decision"] == "allow"
    assert [d["status"] for d in listed] == ["current"] + ["superseded"] * (len(listed) - 1)
    assert len(listed) >= 2 and listed[-1]["id"] == decision["id"]


def test_evaluate_a_passport_body_and_errors(
    client: httpx.Client, settings: Settings, tmp_path: Path
) -> None:
    head = _pull_request(settings, tmp_path)
    from passport import build_passport

    repo = settings.home / "forge" / "acme" / "web.git"
    statement = anyio.run(lambda: build_passport(repo, "main", head, repository=REPO))
    pr_state = {"number": 1, "title": "Fix", "draft": False, "author": "writgate-bot",
                "base": "main", "headSha": head, "labels": [],
                "reviews": [{"user": "alice", "state": "approved", "commitSha": head}],
                "checks": {}}  # fmt: skip
    decided = client.post(
        "/api/v1/merge-gate/evaluate",
        json={"policy": POLICY, "passport": statement, "prState": pr_state},
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["decision"] == "allow"
    assert decided.json()["publication"] is None

    bad_policy = client.post(
        "/api/v1/merge-gate/evaluate",
        json={"policy": "policy: writgate/v1\nname: x\nrules: 3\n", "passport": statement},
    )
    assert bad_policy.status_code == 422 and bad_policy.headers["content-type"] == PROBLEM
    assert bad_policy.json()["code"] == "invalid_policy"
    bad_passport = client.post(
        "/api/v1/merge-gate/evaluate", json={"policy": POLICY, "passport": {"_type": "nope"}}
    )
    assert bad_passport.status_code == 422
    nothing = client.post("/api/v1/merge-gate/evaluate", json={"policy": POLICY})
    assert nothing.status_code == 422 and nothing.json()["field"] == "passport"
    unknown_field = client.post("/api/v1/review-runs", json={"repository": REPO, "pr": 1})
    assert unknown_field.status_code == 422
    both = client.post(
        "/api/v1/review-runs", json={"repository": REPO, "pullRequest": 1, "base": "main"}
    )
    assert both.status_code == 422 and both.json()["field"] == "base"
    missing = client.get("/api/v1/merge-gate/decisions/gd_nope")
    assert missing.status_code == 404 and missing.json()["code"] == "gate_decision_not_found"
    # API callers never get the server to run a program of their choosing.
    program = client.post(
        "/api/v1/review-runs",
        json={"repository": REPO, "pullRequest": 1, "reviewers": ["x"],
              "config": {"x": {"uses": "command", "argv": ["touch", str(tmp_path / "pwned")]}}},
    )  # fmt: skip
    assert program.status_code == 422 and program.json()["field"] == "reviewers.x"
    assert "WRITGATE_ALLOW_PROGRAM_REVIEWERS" in program.json()["title"]
    for options in ({"uses": "agent", "argv": ["true"]}, {"uses": "os:system"}):
        refused = client.post(
            "/api/v1/merge-gate/evaluate",
            json={"policy": POLICY, "repository": REPO, "pullRequest": 1,
                  "reviewers": ["x"], "config": {"x": options}},
        )  # fmt: skip
        assert refused.status_code == 422, refused.text
    ruff_elsewhere = client.post(
        "/api/v1/review-runs",
        json={"repository": REPO, "pullRequest": 1, "reviewers": ["ruff"],
              "config": {"ruff": {"executable": "/bin/sh"}}},
    )  # fmt: skip
    assert ruff_elsewhere.status_code == 422
    assert not (tmp_path / "pwned").exists()
    no_repo = client.post("/api/v1/review-runs", json={"repository": "acme/none", "pullRequest": 1})
    assert no_repo.status_code == 404


def test_the_server_re_evaluates_on_approval_and_on_a_new_head(
    client: httpx.Client, settings: Settings, tmp_path: Path
) -> None:
    head = _pull_request(settings, tmp_path)
    judged = client.post(
        "/api/v1/merge-gate/evaluate",
        json={"policy": POLICY, "repository": REPO, "pullRequest": 1, "publish": True,
              "reviewers": ["secrets"]},
    ).json()  # fmt: skip
    assert judged["decision"] == "pending"
    approved = client.post(
        f"/api/v1/forge/local/repositories/{REPO}/pulls/1/reviews",
        json={"user": "alice", "state": "approved"},
    )
    assert approved.status_code in (200, 201), approved.text

    def current() -> dict | None:  # type: ignore[type-arg]
        items = client.get(
            "/api/v1/merge-gate/decisions",
            params={"repository": REPO, "pullRequest": 1, "status": "current"},
        ).json()["items"]
        return items[0] if items else None

    deadline = time.monotonic() + 20
    while (found := current()) is None or found["decision"] != "allow":
        assert time.monotonic() < deadline, f"no re-evaluation after the approval: {found}"
        time.sleep(0.1)
    assert found["headSha"] == head and found["id"] != judged["id"]

    # A new head pushed with git: the forge notices it on the next read (pr.synchronize) and
    # the watcher marks the decision stale.
    work = tmp_path / "work"
    (work / "src" / "app.py").write_text("def answer():\n    return 43\n")
    git(work, "commit", "-qam", "again")
    git(work, "push", "-q", "origin", "fix")
    deadline = time.monotonic() + 20
    while current() is not None:
        if time.monotonic() > deadline:
            pytest.fail("the decision did not go stale after a new head")
        client.get(f"/api/v1/forge/local/repositories/{REPO}/pulls/1")  # reading synchronizes
        time.sleep(0.1)
    stale = client.get(f"/api/v1/merge-gate/decisions/{found['id']}").json()
    assert stale["status"] == "stale"
