"""Tenancy: every route, called with another org's key on an object of org A, answers 404.

The routes come from the app itself (``create_app().routes``), so a route added later is covered
without touching this test: one with a path parameter this test cannot fill fails it, unless
:data:`ALLOWLIST` says why it names no tenant's object. Org A gets one object of each kind (a
repository, a pull request, a commit's check run, a coding-agent run, a pipeline run, a review run,
a passport, a gate decision, a webhook endpoint and its delivery, a forge trigger); then org B
calls every route with A's ids — the API and the dashboard, reading and changing — and gets 404
(problem+json from the API, an HTML page from the dashboard), never 403, 200 or 500. Org B's lists
show none of A's objects, and A's objects are unchanged afterwards.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import routing

from forge import LocalForge
from judge.publish import Publisher
from tests.conftest import git
from tests.integration.forge_server import create_api_key, running_server
from tests.support.webhook_receiver import webhook_receiver
from writgate.app.database import open_database
from writgate.app.server import create_app
from writgate.settings import Settings

PROBLEM = "application/problem+json"
REPO = "acme/app"
HOOK_SECRET = "tenancy-github-hook-secret"
POLICY = """\
policy: writgate/v1
name: tenancy
rules:
  - name: one-approval
    require: {approvals: {count: 1}}
"""

RUN = {
    "repository": REPO,
    "prompt": "work",
    "publish": {"mode": "none"},
    "session": {"keepWarmSeconds": 0},
    "agent": {"driver": "command", "argv": ["true"]},
}
IDEMPOTENCY = {"Idempotency-Key": "tenancy-run"}

# Routes with a path parameter that names no tenant's object, and why.
ALLOWLIST: dict[str, str] = {
    "/_dashboard/static/{name}": "the dashboard's public assets (CSS, icons): no tenant data",
}

# A valid body per (method, route), so that B's call reaches the lookup (a 422 for a bad body
# would say nothing about tenancy). JSON for the API, a form (plus the CSRF token) for the
# dashboard. A mutating route missing here is called with an empty body.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/coding-agent/runs/{run_id}/messages"): {"text": "more", "fallback": "chain"},
    ("PUT", "/api/v1/forge/local/repositories/{owner}/{name}/required-contexts"): {
        "contexts": ["ci"]
    },
    ("POST", "/api/v1/forge/local/repositories/{owner}/{name}/pulls"): {
        "head": "fix",
        "title": "Another",
    },
    ("PATCH", "/api/v1/forge/local/repositories/{owner}/{name}/pulls/{number}"): {
        "title": "Hijacked"
    },
    ("POST", "/api/v1/forge/local/repositories/{owner}/{name}/pulls/{number}/reviews"): {
        "user": "mallory",
        "state": "approved",
    },
    ("POST", "/api/v1/forge/local/repositories/{owner}/{name}/pulls/{number}/approve"): {
        "user": "mallory"
    },
    ("POST", "/api/v1/forge/local/repositories/{owner}/{name}/pulls/{number}/labels"): {
        "add": ["pwned"]
    },
    ("POST", "/api/v1/forge/local/repositories/{owner}/{name}/pulls/{number}/merge"): {
        "mergedBy": "mallory"
    },
    ("POST", "/api/v1/forge/local/repositories/{owner}/{name}/commits/{sha}/statuses"): {
        "context": "ci",
        "state": "success",
    },
    ("POST", "/api/v1/forge/local/repositories/{owner}/{name}/commits/{sha}/check-runs"): {
        "name": "ci"
    },
    ("PATCH", "/api/v1/forge/local/repositories/{owner}/{name}/check-runs/{check_run_id}"): {
        "status": "completed",
        "conclusion": "success",
    },
    ("POST", "/api/v1/pipeline-runs/{run_id}/cancel"): {"reason": "mallory"},
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): {"description": "hijacked"},
    ("POST", "/runs/{run_id}/follow-up"): {"text": "more"},
    ("POST", "/forge/{owner}/{name}/pulls/{number}/approve"): {"user": "mallory"},
}

# Routes without an id whose body names A's objects: B must get 404 too.
BODY_REFERENCES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/review-runs"): {"repository": REPO, "pullRequest": 1},
    ("POST", "/api/v1/merge-gate/evaluate"): {
        "policy": POLICY,
        "repository": REPO,
        "pullRequest": 1,
    },
    ("POST", "/api/v1/merge-gate/refresh"): {"repository": REPO, "pullRequest": 1},
}


@dataclass(frozen=True)
class Route:
    path: str
    methods: frozenset[str]
    params: tuple[str, ...]

    @property
    def api(self) -> bool:
        return self.path.startswith("/api/")


def all_routes() -> list[Route]:
    """Every route of the app (included routers flattened), with its path parameters."""
    app = create_app(Settings(home=Path("/nonexistent"), database_url="sqlite+aiosqlite://"))
    found = []
    for context in routing.iter_route_contexts(app.routes):
        path = context.path
        methods = frozenset(getattr(context, "methods", None) or {"GET"}) - {"HEAD"}
        found.append(Route(path, methods, tuple(re.findall(r"{(\w+)(?::\w+)?}", path))))
    return found


def _seed_repository(settings: Settings, tmp_path: Path, org: str) -> str:
    """``acme/app`` of ``org`` with branch ``fix`` and PR #1; the PR's head sha."""

    async def go() -> str:
        database = await open_database(settings)
        try:
            forge = LocalForge(
                engine=database.engine, ledger=database.ledger, home=settings.home, org=org
            )
            project = tmp_path / "project"
            project.mkdir()
            (project / "app.py").write_text("X = 1\n")
            await forge.create_repository(REPO, from_dir=project)
            work = tmp_path / "work"
            git(tmp_path, "clone", "-q", await forge.clone_url(REPO), str(work))
            git(work, "checkout", "-qb", "fix")
            (work / "app.py").write_text("X = 2\n")
            git(work, "commit", "-qam", "fix")
            await forge.push_branch(REPO, work, "fix")
            pr = await forge.open_pull_request(
                REPO, head="fix", base="main", title="Fix", body="", draft=False
            )
            return pr.head_sha
        finally:
            await database.dispose()

    return anyio.run(go)


def _ok(response: httpx.Response, *expected: int) -> Any:
    assert response.status_code in (expected or (200, 201)), (
        response.request.method,
        response.request.url,
        response.status_code,
        response.text,
    )
    return response.json()


def _wait(predicate: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _seed_org_a(api: httpx.Client, hook_url: str, head: str) -> dict[str, str]:
    """One object of each kind in org A; the values of the path parameters naming them."""
    run = _ok(api.post("/api/v1/coding-agent/runs", json=RUN, headers=IDEMPOTENCY))
    pipeline = _ok(
        api.post(
            "/api/v1/pipelines",
            json={
                "spec": {
                    "name": "tenancy",
                    "stages": {"gate": {"uses": "gate", "with": {"policy": "library:default"}}},
                }
            },
        )
    )
    review = _ok(
        api.post(
            "/api/v1/review-runs",
            json={"repository": REPO, "pullRequest": 1, "reviewers": ["secrets"]},
        )
    )
    decision = _ok(
        api.post(
            "/api/v1/merge-gate/evaluate",
            json={"policy": POLICY, "repository": REPO, "pullRequest": 1, "reviewers": []},
        )
    )
    passport = _ok(api.get("/api/v1/passports"))["items"][0]
    base = f"/api/v1/forge/local/repositories/{REPO}"
    # Named like the gate's own check run: the gate's watcher ignores it, so nothing re-evaluates
    # A's PR behind the test's back (the before/after comparison stays exact).
    check = {"name": Publisher.check_name}
    check_run = _ok(api.post(f"{base}/commits/{head}/check-runs", json=check))
    hook = _ok(api.post("/api/v1/webhooks", json={"url": hook_url, "eventTypes": ["gate.*"]}))
    delivery = _ok(api.post(f"/api/v1/webhooks/{hook['id']}/test"))
    body = json.dumps(
        {
            "action": "opened",
            "number": 1,
            "repository": {"full_name": REPO},
            "pull_request": {"number": 1, "head": {"ref": "fix", "sha": head}},
        }
    ).encode()
    signature = "sha256=" + hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    received = api.post(
        "/api/v1/forge/github/webhook",
        content=body,
        headers={
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": "tenancy-1",
            "X-Hub-Signature-256": signature,
            "Content-Type": "application/json",
        },
    )
    trigger = _ok(received, 202)["trigger"]
    # Settle: the run and the pipeline run end, so B's calls race with nothing.
    settled = ("succeeded", "failed", "cancelled")
    for path in (
        f"/api/v1/coding-agent/runs/{run['id']}",
        f"/api/v1/pipeline-runs/{pipeline['id']}",
    ):
        _wait(
            lambda path=path: (
                (lambda b: b.get("lifecycle") or b.get("status"))(api.get(path).json()) in settled
            ),
            path,
        )
    return {
        "coding-agent run": run["id"],
        "pipeline run": pipeline["id"],
        "review run": review["id"],
        "decision_id": decision["id"],
        "passport": passport["id"],
        "passport_id": passport["id"],
        "passport digest": passport["passportId"],
        "check_run_id": str(check_run["id"]),
        "webhook_id": hook["id"],
        "delivery_id": delivery["id"],
        "trigger_id": str(trigger["id"]),
        "owner": "acme",
        "name": "app",
        "number": "1",
        "sha": head,
    }


def _fill(route: Route, ids: dict[str, str]) -> str | None:
    """The route's path with A's ids, or None when a parameter cannot be filled."""
    values = dict(ids)
    if "run_id" in route.params:
        kind = (
            "pipeline run"
            if "/pipeline" in route.path
            else "review run"
            if "/review-runs" in route.path
            else "coding-agent run"
            if route.path.startswith(("/api/v1/coding-agent/", "/runs/"))
            else None
        )
        if kind is None:
            return None
        values["run_id"] = ids[kind]
    if any(p not in values for p in route.params):
        return None
    path = route.path
    for param in route.params:
        path = re.sub(r"\{" + param + r"(?::\w+)?\}", values[param], path)
    return path


@pytest.fixture
def server(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, dict[str, str], dict[str, str]]]:
    monkeypatch.setenv("WRITGATE_WEBHOOKS_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("WRITGATE_GITHUB_WEBHOOK_SECRET", HOOK_SECRET)
    org_a = settings.org  # the org a GitHub webhook's triggers belong to
    head = _seed_repository(settings, tmp_path, org_a)
    keys = {"a": create_api_key(settings, org_a), "b": create_api_key(settings, "intruder")}
    with (
        webhook_receiver() as receiver,
        running_server(settings) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {keys['a']}"}, timeout=30
        ) as api,
    ):
        ids = _seed_org_a(api, receiver.url, head)
        yield url, keys, ids


def _login(client: httpx.Client, key: str) -> str:
    """Log ``client`` in to the dashboard; a CSRF token for its forms."""
    form = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token, form.text
    done = client.post("/login", data={"key": key, "csrf": token.group(1), "next": "/"})
    assert done.status_code == 303, done.text
    home = client.get("/")
    token = re.search(r'name="csrf" value="([^"]+)"', home.text)
    assert token, home.text
    return token.group(1)


def _snapshot(api: httpx.Client, ids: dict[str, str]) -> dict[str, Any]:
    base = f"/api/v1/forge/local/repositories/{REPO}"
    paths = {
        "run": f"/api/v1/coding-agent/runs/{ids['coding-agent run']}",
        "pipeline": f"/api/v1/pipeline-runs/{ids['pipeline run']}",
        "pr": f"{base}/pulls/1",
        "statuses": f"{base}/commits/{ids['sha']}/statuses",
        "check-runs": f"{base}/commits/{ids['sha']}/check-runs",
        "repository": f"{base}",
        "webhook": f"/api/v1/webhooks/{ids['webhook_id']}",
        "deliveries": f"/api/v1/webhooks/{ids['webhook_id']}/deliveries",
        "decisions": "/api/v1/merge-gate/decisions",
        "review-runs": "/api/v1/review-runs",
    }
    snapshot = {name: _ok(api.get(path), 200) for name, path in paths.items()}
    for volatile in ("updatedAt", "lastDeliveryAt"):
        for value in snapshot.values():
            if isinstance(value, dict):
                value.pop(volatile, None)
    return snapshot


def test_every_route_with_another_orgs_key_is_404(
    server: tuple[str, dict[str, str], dict[str, str]],
) -> None:
    url, keys, ids = server
    routes = all_routes()
    secret_ids = [v for k, v in ids.items() if k not in ("owner", "name", "number", "check_run_id")]
    unfilled: list[str] = []
    wrong: list[str] = []
    covered = 0
    with (
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {keys['a']}"}, timeout=30
        ) as a_api,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {keys['b']}"}, timeout=30
        ) as b_api,
        httpx.Client(base_url=url, timeout=30) as a_web,
        httpx.Client(base_url=url, timeout=30) as b_web,
    ):
        before = _snapshot(a_api, ids)
        _login(a_web, keys["a"])
        b_csrf = _login(b_web, keys["b"])
        deferred: list[tuple[Route, str, str]] = []  # deletions last: they would change A
        for route in routes:
            if route.path in ALLOWLIST:
                continue
            if not route.params:
                continue
            path = _fill(route, ids)
            if path is None:
                unfilled.append(f"{sorted(route.methods)} {route.path}")
                continue
            for method in sorted(route.methods):
                if method == "DELETE":
                    deferred.append((route, method, path))
                else:
                    wrong += _call_as_b(route, method, path, b_api, b_web, b_csrf)
                    covered += 1
                if method == "GET":  # the ids are real: A sees each of them
                    client = a_api if route.api else a_web
                    seen = _get(client, path)
                    if seen.status_code != 200:
                        wrong.append(f"A GET {path} -> {seen.status_code} (the id is not real?)")
        # A passport is also named by its content id (sha256:…): that name is 404 to B too.
        for route in routes:
            if route.params == ("passport",):
                path = route.path.replace("{passport}", ids["passport digest"])
                wrong += _call_as_b(route, "GET", path, b_api, b_web, b_csrf)
                if _get(a_api, path).status_code != 200:
                    wrong.append(f"A GET {path} is not 200 (the digest is not real?)")
                covered += 1
        for route, method, path in deferred:
            wrong += _call_as_b(route, method, path, b_api, b_web, b_csrf)
            covered += 1
        # Lists: B's show none of A's objects; ids named in bodies are 404 too.
        for route in routes:
            if route.params or route.path in ALLOWLIST:
                continue
            if "GET" in route.methods:
                client = b_api if route.api else b_web
                for params in ({}, {"repository": REPO, "pullRequest": "1"}):
                    listed = client.get(route.path, params=params)
                    if listed.status_code >= 500:
                        wrong.append(f"B GET {route.path} {params} -> {listed.status_code}")
                    leaked = [i for i in secret_ids if i in listed.text]
                    if leaked:
                        wrong.append(f"B GET {route.path} {params} shows A's {leaked}")
                covered += 1
            for method in sorted(route.methods - {"GET"}):
                body = BODY_REFERENCES.get((method, route.path))
                if body is not None:
                    answer = b_api.request(method, route.path, json=body)
                    wrong += _expect_404(f"B {method} {route.path} (body)", answer, api=True)
                    covered += 1
        # Idempotency keys are per org: B's replay of A's key and body is B's own new run.
        replay = b_api.post("/api/v1/coding-agent/runs", json=RUN, headers=IDEMPOTENCY)
        if replay.status_code != 201 or replay.json()["id"] == ids["coding-agent run"]:
            wrong.append(f"B replaying A's Idempotency-Key -> {replay.status_code} {replay.text}")
        else:
            mine = f"/api/v1/coding-agent/runs/{replay.json()['id']}"
            _wait(lambda: b_api.get(mine).json()["terminal"], mine)
        # Names are per org: B may create its own acme/app (no 409 telling it A's exists), and
        # that one is not A's: its PR #1 does not exist.
        own = b_api.post("/api/v1/forge/local/repositories", json={"name": REPO})
        if own.status_code != 201:
            wrong.append(f"B creating its own {REPO} -> {own.status_code} {own.text[:200]}")
        base = f"/api/v1/forge/local/repositories/{REPO}"
        wrong += _expect_404(
            f"B GET {base}/pulls/1 (B's own repo)", b_api.get(f"{base}/pulls/1"), api=True
        )
        after = _snapshot(a_api, ids)
    assert not unfilled, (
        "routes with path parameters this test cannot fill (teach _seed_org_a/_fill the object "
        "they name, or add them to ALLOWLIST with a reason):\n" + "\n".join(unfilled)
    )
    assert not wrong, f"{len(wrong)} wrong answers:\n" + "\n".join(wrong)
    assert after == before, "org B's calls changed org A's objects"
    assert covered >= 70


def _get(client: httpx.Client, path: str) -> httpx.Response:
    if path.endswith(("/stream", "/live")):
        with client.stream("GET", path) as response:
            response.read()
            return response
    return client.get(path)


def _call_as_b(
    route: Route, method: str, path: str, api: httpx.Client, web: httpx.Client, csrf: str
) -> list[str]:
    body = BODIES.get((method, route.path), {})
    if route.api:
        if method == "GET":
            answer = _get(api, path)
        else:
            answer = api.request(method, path, json=body if method != "DELETE" else None)
    elif method == "GET":
        answer = _get(web, path)
    else:
        answer = web.request(method, path, data={"csrf": csrf, **body})
    return _expect_404(f"B {method} {path} [{route.path}]", answer, api=route.api)


def _expect_404(what: str, answer: httpx.Response, *, api: bool) -> list[str]:
    kind = answer.headers.get("content-type", "")
    if answer.status_code != 404:
        return [f"{what} -> {answer.status_code} {answer.text[:200]}"]
    if api and kind != PROBLEM:
        return [f"{what} -> 404 but {kind}"]
    if not api and not kind.startswith("text/html"):
        return [f"{what} -> 404 but {kind}"]
    return []
