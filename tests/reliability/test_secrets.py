"""Secrets never leave the agent: a run whose agent prints credentials of the common formats, and
whose server holds a GitHub token in its environment, leaves none of them in the ledger, the
server's logs, webhook deliveries, the passport, the review findings, the forge's PR or the pages.

One real ``writgate serve`` process (logging at DEBUG) runs a pipeline — a ``command`` agent in
the bubblewrap sandbox, the judge's review, a signed passport, the merge gate — against a repository
of the local forge, with a webhook endpoint subscribed to every event on a loopback receiver. Then
every place a value could surface is read back and searched for each token and for a 16-character
prefix of it.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import socket
import sqlite3
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.integration.forge_server import create_api_key
from tests.support.waiting import wait_for_server
from tests.support.webhook_receiver import webhook_receiver
from writgate.settings import Settings
from writgate.webhooks.events import EVENT_FAMILIES

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

_RNG = random.Random(0x5EC12E7)
_ALNUM = string.ascii_letters + string.digits


def _rand(alphabet: str, n: int) -> str:
    return "".join(_RNG.choice(alphabet) for _ in range(n))


def _b64url(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


_PEM_LINES = [_rand(_ALNUM + "+/", 64) for _ in range(5)]

# The server's own credentials: formats no pattern knows (legacy 40-hex token, App token), so
# only the literal values of the host environment can hide them.
HOST_ENV = {
    "GITHUB_TOKEN": _rand("0123456789abcdef", 40),
    "WRITGATE_GITHUB_TOKEN": "v1." + _rand("0123456789abcdef", 40),
}

# What the agent prints and writes: credentials of the common formats.
TOKENS: dict[str, str] = {
    "github-classic": "ghp_" + _rand(_ALNUM, 36),
    "github-fine-grained": "github_pat_" + _rand(_ALNUM, 22) + "_" + _rand(_ALNUM, 59),
    "github-oauth": "gho_" + _rand(_ALNUM, 36),
    "github-app": "ghs_" + _rand(_ALNUM, 36),
    "aws-access-key-id": "AKIA" + _rand(string.ascii_uppercase + string.digits, 16),
    "aws-secret-access-key": _rand(_ALNUM + "/+", 40),
    "slack": f"xoxb-{_rand(string.digits, 12)}-{_rand(string.digits, 13)}-{_rand(_ALNUM, 24)}",
    "stripe": "sk_live_" + _rand(_ALNUM, 24),
    "openai": "sk-proj-" + _rand(_ALNUM + "_-", 48),
    "anthropic": "sk-ant-api03-" + _rand(_ALNUM + "_-", 93) + "AA",
    "jwt": ".".join(
        [
            _b64url({"alg": "HS256", "typ": "JWT"}),
            _b64url({"sub": _rand(_ALNUM, 12), "iat": 1_700_000_000}),
            _rand(_ALNUM + "_-", 43),
        ]
    ),
    **{f"pem-line-{i}": line for i, line in enumerate(_PEM_LINES)},
    **{f"host-{name}": value for name, value in HOST_ENV.items()},
}
PEM = "\n".join(["-----BEGIN RSA PRIVATE KEY-----", *_PEM_LINES, "-----END RSA PRIVATE KEY-----"])

# The agent: the tokens travel in its program as base64 (the argv is visible in the run), and come
# out on stdout, on stderr and in the files it changes.
AGENT = """\
import base64, json, pathlib, sys
t = json.loads(base64.b64decode({blob!r}).decode())
pem = t.pop("__pem__")
aws = t.pop("aws-secret-access-key")  # no format of its own: recognisable by its name only
print("export AWS_SECRET_ACCESS_KEY=" + aws, flush=True)
print("aws_secret_access_key = " + aws, file=sys.stderr, flush=True)
for name, value in t.items():
    print(f"found {{name}}: {{value}}", flush=True)
    print(f"warning: leaked {{value}} in the logs", file=sys.stderr, flush=True)
print(pem, flush=True)
print(pem, file=sys.stderr, flush=True)
print("and once more, alone: " + aws, flush=True)
pathlib.Path("settings.py").write_text(
    "".join(f"{{n.upper().replace('-', '_')}} = {{v!r}}\\n" for n, v in t.items())
    + "AWS_SECRET_ACCESS_KEY = " + repr(aws) + "\\n"
)
pathlib.Path("deploy.env").write_text(
    "".join(f"TOKEN_{{i}}={{v}}\\n" for i, v in enumerate(t.values()))
    + "aws_secret_access_key=" + aws + "\\n"
)
pathlib.Path("id_rsa").write_text(pem + "\\n")
print("done", flush=True)
"""

PIPELINE = """\
name: secrets
stages:
  write:
    uses: writer
    with:
      repository: acme/app
      seedFrom: repo
      title: Configure the deployment
      prompt: Configure the deployment credentials.
      agent: {driver: command, script: agent.py}
      publish: {mode: draft_pr}
      validationMode: tests
      session: {keepWarmSeconds: 0}
      safety: {network: {mode: none}, resources: {maxTurns: 1, maxWallSeconds: 120}}
  review:
    uses: review
    needs: [write]
    with: {reviewers: [secrets, sensitive-paths, debug-leftovers]}
  passport:
    uses: passport
    needs: [write, review]
  gate:
    uses: gate
    needs: [passport]
    with: {policy: policy.yaml}
"""

POLICY = """\
policy: writgate/v1
name: secrets
rules:
  - name: no-secrets
    if: {review.findings: {reviewer: secrets, count: "> 0"}}
    block: "A secret was found in the change."
"""

# The server with DEBUG logging on every logger (its own, uvicorn's, the libraries').
SERVE = """\
import logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                    format="%(asctime)s %(levelname)s %(name)s %(message)s")
from writgate.app.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _blob() -> str:
    agent_tokens = {k: v for k, v in TOKENS.items() if not k.startswith("pem-line-")}
    agent_tokens["__pem__"] = PEM
    return base64.b64encode(json.dumps(agent_tokens).encode()).decode()


def _setup_home(home: Path) -> Path:
    folder = home / "pipelines" / "secrets"
    (folder / "repo").mkdir(parents=True)
    (folder / "repo" / "README.md").write_text("hello\n")
    (folder / "repo" / "app.py").write_text("X = 1\n")
    # The repository's tests print the configuration the agent wrote (as a failing assertion
    # would): the validation output carries every token too.
    (folder / "repo" / ".writgate.yml").write_text("validate:\n  - python3 check.py\n")
    (folder / "repo" / "check.py").write_text(
        "import pathlib\n"
        "for name in ('settings.py', 'deploy.env', 'id_rsa'):\n"
        "    print(pathlib.Path(name).read_text())\n"
    )
    (folder / "pipeline.yaml").write_text(PIPELINE)
    (folder / "policy.yaml").write_text(POLICY)
    (folder / "agent.py").write_text(AGENT.format(blob=_blob()))
    key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (home / "signing.pem").write_bytes(key)
    return home / "signing.pem"


class Server:
    """``writgate serve`` at DEBUG as a subprocess; its stdout and stderr go to files."""

    def __init__(self, home: Path, database_url: str, logs: Path):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WRITGATE_")}
        self.env.update(
            WRITGATE_HOME=str(home),
            WRITGATE_DATABASE_URL=database_url,
            WRITGATE_ORG="sec",
            WRITGATE_WEBHOOKS_ALLOW_PRIVATE="1",
            WRITGATE_SIGNING_KEY=str(home / "signing.pem"),
            **HOST_ENV,
        )
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.logs = logs
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-c", SERVE, "serve", "--port", str(self.port)]
        with (self.logs / "out.log").open("wb") as out, (self.logs / "err.log").open("wb") as err:
            self.process = subprocess.Popen(
                [*argv, "--log-level", "debug"],
                env=self.env,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        wait_for_server(
            self.url,
            self.process,
            describe_exit=lambda: (self.logs / "err.log").read_text()[-3000:],
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)

    def log_text(self) -> str:
        return "".join(
            (self.logs / name).read_text(errors="replace") for name in ("out.log", "err.log")
        )


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[tuple[Server, str]]:
    home = tmp_path / "home"
    home.mkdir()
    _setup_home(home)
    logs = tmp_path / "logs"
    logs.mkdir()
    srv = Server(home, database_url, logs)
    key = create_api_key(Settings(home=home, database_url=database_url), "sec")
    srv.start()
    try:
        yield srv, key
    finally:
        srv.stop()


def _leaks(where: str, text: str) -> list[str]:
    """``where: token-name`` for every token (or a 16-character prefix of it) found in ``text``."""
    found = []
    for name, value in TOKENS.items():
        if value in text or value[:16] in text:
            found.append(f"{where}: {name}")
    return found


def _login(client: httpx.Client, key: str) -> None:
    form = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf, form.text
    done = client.post("/login", data={"key": key, "csrf": csrf.group(1), "next": "/"})
    assert done.status_code == 303, done.text


def _wait_pipeline(client: httpx.Client, run_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = client.get(f"/api/v1/pipeline-runs/{run_id}").json()
        if run["status"] in ("succeeded", "failed", "cancelled"):
            return run  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, run
        time.sleep(0.1)


def test_no_token_leaves_the_agent(
    server: tuple[Server, str], tmp_path: Path, database_url: str
) -> None:
    srv, key = server
    leaks: list[str] = []
    with (
        webhook_receiver() as receiver,
        httpx.Client(
            base_url=srv.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as api,
    ):
        hook = api.post("/api/v1/webhooks", json={"url": receiver.url, "eventTypes": ["*"]})
        assert hook.status_code == 201, hook.text
        started = api.post("/api/v1/pipelines", json={"path": "secrets/pipeline.yaml"})
        assert started.status_code == 201, started.text
        pipeline = _wait_pipeline(api, started.json()["id"])
        assert pipeline["status"] == "succeeded", pipeline
        stages = {s["stage"]: s for s in pipeline["stages"]}
        run_id = stages["write"]["outputs"]["runId"]
        pr_number = stages["write"]["outputs"]["pullRequestNumber"]
        passport_ref = stages["passport"]["outputs"]["id"]
        decision_id = stages["gate"]["outputs"]["decisionId"]
        assert stages["passport"]["outputs"]["signed"] is True
        assert stages["gate"]["outputs"]["decision"] == "block", stages["gate"]["outputs"]

        # The agent did print and write every token: the sweep below is not vacuous.
        run = api.get(f"/api/v1/coding-agent/runs/{run_id}").json()
        assert run["lifecycle"] == "succeeded", run
        assert run["result"]["validation"]["result"] == "PASSED", run["result"]
        assert "[REDACTED" in run["result"]["validation"]["outputTail"], run["result"]
        messages = api.get(
            f"/api/v1/coding-agent/runs/{run_id}/events", params={"limit": 1000}
        ).json()["items"]
        texts = [e["data"]["text"] for e in messages if e["type"] == "agent.message"]
        assert sum("[REDACTED" in t for t in texts) >= len(TOKENS), texts
        assert {e["data"]["stream"] for e in messages if e["type"] == "agent.message"} == {
            "stdout",
            "stderr",
        }
        repo = "acme/app"
        pr_base = f"/api/v1/forge/local/repositories/{repo}/pulls/{pr_number}"
        files = api.get(f"{pr_base}/files").json()
        assert {"settings.py", "deploy.env", "id_rsa"} <= {f["filename"] for f in files["items"]}
        assert stages["review"]["outputs"]["findings"] >= 10, stages["review"]["outputs"]

        # The judge over the API too: a stored review run, and a published gate decision with
        # its own passport.
        reviewers = ["secrets", "sensitive-paths", "debug-leftovers"]
        target = {"repository": repo, "pullRequest": pr_number, "reviewers": reviewers}
        review = api.post("/api/v1/review-runs", json=target)
        assert review.status_code == 201, review.text
        assert sum(f["reviewer"] == "secrets" for f in review.json()["findings"]) >= 10
        judged = api.post(
            "/api/v1/merge-gate/evaluate", json={"policy": POLICY, "publish": True, **target}
        )
        assert judged.status_code == 200, judged.text
        assert judged.json()["decision"] == "block", judged.json()
        reviews = api.get("/api/v1/review-runs", params={"limit": 50}).json()["items"]
        assert len(reviews) >= 2, reviews
        passports = api.get("/api/v1/passports").json()["items"]
        assert len(passports) >= 2, passports

        # Webhooks: every event the ledger holds was delivered (the endpoint saw all of them).
        expected = _deliverable(srv)
        deliveries = receiver.wait_for(lambda seen: len(seen) >= expected, timeout=60)

        # The run API, the pipeline run API, the review runs, the passport, the decision, the PR.
        documents = {
            "run": api.get(f"/api/v1/coding-agent/runs/{run_id}"),
            "run-status": api.get(f"/api/v1/coding-agent/runs/{run_id}/status"),
            "run-events": api.get(
                f"/api/v1/coding-agent/runs/{run_id}/events", params={"limit": 1000}
            ),
            "runs": api.get("/api/v1/coding-agent/runs"),
            "pipeline-run": api.get(f"/api/v1/pipeline-runs/{pipeline['id']}"),
            "pipeline-events": api.get(
                f"/api/v1/pipeline-runs/{pipeline['id']}/events", params={"limit": 1000}
            ),
            "passports": api.get("/api/v1/passports"),
            "decision": api.get(f"/api/v1/merge-gate/decisions/{decision_id}"),
            "decisions": api.get("/api/v1/merge-gate/decisions"),
            "pr": api.get(pr_base),
            "pr-comments": api.get(f"{pr_base}/comments"),
            "pr-check-runs": api.get(f"{pr_base}/check-runs"),
            "pr-statuses": api.get(f"{pr_base}/statuses"),
            "pr-events": api.get(f"{pr_base}/events"),
            "pr-commits": api.get(f"{pr_base}/commits"),
            "pulls": api.get("/api/v1/forge/local/pulls", params={"repository": repo}),
            "webhook-deliveries": api.get(f"/api/v1/webhooks/{hook.json()['id']}/deliveries"),
        }
        for stored in passports:
            documents[f"passport-{stored['id']}"] = api.get(f"/api/v1/passports/{stored['id']}")
            documents[f"passport-{stored['id']}-md"] = api.get(
                f"/api/v1/passports/{stored['id']}/markdown"
            )
        for review in reviews:
            for fmt in ("json", "sarif", "rdjson"):
                documents[f"review-{review['id']}-{fmt}"] = api.get(
                    f"/api/v1/review-runs/{review['id']}", params={"format": fmt}
                )
        for name, response in documents.items():
            assert response.status_code == 200, (name, response.text)
            leaks += _leaks(f"api {name}", response.text)
        signed = documents[f"passport-{passport_ref}"].json()
        assert signed["envelope"] is not None
        payload = base64.b64decode(signed["envelope"]["payload"]).decode()
        leaks += _leaks("passport DSSE payload", payload)
        stored_passport = Path(stages["passport"]["outputs"]["path"]).read_text()
        leaks += _leaks("passport file", stored_passport)
        assert any(b'"agent.message"' in d.body for d in deliveries)
        for delivery in deliveries:
            leaks += _leaks(
                f"webhook delivery {delivery.headers.get('webhook-id')}", delivery.body.decode()
            )

    # The dashboard pages of the run, the pipeline, the passport, the gate and the PR.
    with httpx.Client(base_url=srv.url, timeout=60) as browser:
        _login(browser, key)
        for path in (
            "/",
            f"/runs/{run_id}",
            "/pipelines",
            f"/pipelines/{pipeline['id']}",
            "/gate/decisions",
            f"/gate/decisions/{decision_id}",
            f"/gate/decisions/{judged.json()['id']}",
            *(f"/passports/{p['id']}" for p in passports),
        ):
            page = browser.get(path)
            assert page.status_code == 200, (path, page.text[:500])
            leaks += _leaks(f"page {path}", page.text)

    # Every ledger event of every subject, read from the table itself.
    for subject, seq, kind, data in _ledger_rows(srv):
        leaks += _leaks(f"ledger {subject}#{seq} {kind}", json.dumps(data))
    srv.stop()
    log = srv.log_text()
    leaks += _leaks("server log", log)
    assert " DEBUG " in log  # every logger wrote at DEBUG (the database driver's among them)
    assert not leaks, "\n".join(sorted(set(leaks)))


def _ledger_rows(srv: Server) -> list[tuple[str, int, str, object]]:
    path = srv.env["WRITGATE_DATABASE_URL"].split("///", 1)[1]
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT subject_id, seq, type, data FROM ledger_events ORDER BY subject_id, seq"
        ).fetchall()
    db.close()
    return [(s, q, t, json.loads(d)) for s, q, t, d in rows]


def _deliverable(srv: Server) -> int:
    """How many ledger events a ``*`` subscription receives (those of the known families)."""
    return sum(kind.split(".", 1)[0] in EVENT_FAMILIES for _s, _q, kind, _d in _ledger_rows(srv))
