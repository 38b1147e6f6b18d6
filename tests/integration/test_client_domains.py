"""writgate.client's pipeline, judge, passport and webhook methods against a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from forge import LocalForge
from passport import PassportStore, build_passport
from tests.conftest import git
from tests.support.webhook_receiver import webhook_receiver
from writgate.app.database import open_database
from writgate.client import ApiConflictError, ApiInputError, ApiNotFoundError, Client, RetryPolicy
from writgate.settings import Settings

from .forge_server import create_api_key, running_server

PIPELINE = """\
name: api-demo
inputs:
  who: {default: world}
stages:
  hello: {uses: command, with: {argv: [echo, "hello {{ inputs.who }}"]}}
  shout:
    uses: command
    needs: [hello]
    with: {argv: [sh, -c, "echo {{ stages.hello.outputs.stdout | trim | upper }}"]}
"""
SLOW = """\
name: slow
stages:
  wait: {uses: command, with: {argv: [sleep, "60"]}}
"""
POLICY = """\
policy: writgate/v1
name: client-guard
rules:
  - name: one-approval
    require: {approvals: {count: 1}}
"""
REPO = "acme/web"
WRITGATE = str(Path(sys.executable).with_name("writgate"))
FAST = RetryPolicy(attempts=4, initial_delay=0.01, max_delay=0.05)


@pytest.fixture
def client(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "demo.yaml").write_text(PIPELINE)
    (folder / "slow.yaml").write_text(SLOW)
    monkeypatch.setenv("WRITGATE_PIPELINE_DIR", str(folder))
    monkeypatch.delenv("WRITGATE_API_HOST_STAGES", raising=False)
    monkeypatch.setenv("WRITGATE_WEBHOOKS_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("WRITGATE_WEBHOOKS_POLL", "100ms")
    monkeypatch.setenv("WRITGATE_EXECUTOR", "off")
    key = create_api_key(settings, "default")
    with running_server(settings) as url, Client(url, api_key=key, retry=FAST) as api:
        yield api


def test_pipeline_methods(client: Client) -> None:
    run = client.start_pipeline(path="demo.yaml", inputs={"who": "you"})
    assert run.name == "api-demo" and run.source == "demo.yaml"
    followed = list(client.follow_pipeline_run(run.id))
    assert followed[-1].type == "pipeline.finished"
    finished = client.get_pipeline_run(run.id)
    assert finished.status == "succeeded"
    assert [s.outputs["stdout"].strip() for s in finished.stages if s.stage == "shout"] == [
        "HELLO YOU"
    ]
    events = client.list_pipeline_run_events(run.id, limit=1000)
    assert [e.seq for e in events.items] == [e.seq for e in followed]
    assert run.id in [r.id for r in client.list_pipeline_runs(name="api-demo").items]

    assert client.validate_pipeline(path="demo.yaml").valid is True
    invalid = client.validate_pipeline(yaml="name: x\nstages:\n  a: {uses: writr}\n")
    assert invalid.valid is False and invalid.problems
    with pytest.raises(ApiInputError) as refused:
        client.start_pipeline(yaml="name: x\nstages:\n  a: {uses: command, with: {argv: [id]}}\n")
    assert refused.value.status == 422
    with pytest.raises(ValueError, match="exactly one"):
        client.start_pipeline(path="demo.yaml", yaml="name: x")

    slow = client.start_pipeline(path="slow.yaml")
    cancelled = client.cancel_pipeline_run(slow.id, reason="client test")
    assert cancelled.cancel_requested and cancelled.cancel_reason == "client test"
    with pytest.raises(ApiNotFoundError):
        client.get_pipeline_run("prun_missing")


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


def test_judge_methods(client: Client, settings: Settings, tmp_path: Path) -> None:
    head = _pull_request(settings, tmp_path)
    review = client.create_review_run(
        REPO, pull_request=1, reviewers=["secrets", "debug-leftovers"]
    )
    assert review.id.startswith("rvw_") and review.head.sha == head
    assert [f.rule for f in review.findings or []] == ["debug-print"]
    assert client.get_review_run(review.id) == review
    assert client.export_review_run(review.id, format="rdjson")["diagnostics"]
    assert client.export_review_run(review.id, format="sarif")["version"] == "2.1.0"
    listed = client.list_review_runs(repository=REPO)
    assert [r.id for r in listed.items] == [review.id] and listed.items[0].findings is None
    by_range = client.create_review_run(REPO, base="main", head=head, reviewers=["secrets"])
    assert by_range.findings == []

    decision = client.evaluate_gate(
        POLICY, repository=REPO, pull_request=1, reviewers=["secrets"], publish=True
    )
    assert decision.decision == "pending" and decision.status == "current"
    assert decision.reviewRun is not None and decision.reviewRun.startswith("rvw_")
    assert client.get_gate_decision(decision.id).headSha == head
    decisions = client.list_gate_decisions(repository=REPO, pull_request=1, status="current")
    assert [d.id for d in decisions.items] == [decision.id]
    refreshed = client.refresh_gate(REPO, 1)
    assert refreshed.decision is not None and refreshed.decision.decision == "pending"
    with pytest.raises(ApiNotFoundError):
        client.get_gate_decision("dec_missing")


def test_passport_methods(client: Client, settings: Settings, git_repo: Path) -> None:
    async def seed() -> str:
        database = await open_database(settings)
        try:
            (git_repo / "f.txt").write_text("1\n")
            git(git_repo, "add", "-A")
            git(git_repo, "commit", "-qm", "c")
            statement = await build_passport(git_repo, "HEAD~1", "HEAD", repository="acme/app")
            return (await PassportStore(engine=database.engine).save("default", statement)).id
        finally:
            await database.dispose()

    stored = anyio.run(seed)
    page = client.list_passports(since="1d")
    assert [p.id for p in page.items] == [stored] and page.next_cursor is None
    one = client.get_passport(stored)
    assert one.statement["predicateType"] == "https://writgate.dev/change-passport/v1"
    assert client.get_passport(one.passport_id).id == stored
    assert "f.txt" in client.get_passport_markdown(stored)
    with pytest.raises(ApiInputError) as bad:
        client.list_passports(since="yesterday")
    assert bad.value.field == "since"


def test_webhook_methods(client: Client) -> None:
    families = client.list_webhook_event_types()
    assert "run" in [f.name for f in families.items]
    with webhook_receiver() as receiver:
        endpoint = client.create_webhook_endpoint(receiver.url, ["run.*"], description="ci")
        assert endpoint.secret.startswith("whsec_") and endpoint.event_types == ["run.*"]
        assert [e.id for e in client.list_webhook_endpoints().items] == [endpoint.id]
        assert client.get_webhook_endpoint(endpoint.id).description == "ci"
        updated = client.update_webhook_endpoint(endpoint.id, description="bot", enabled=True)
        assert updated.description == "bot"
        rotated = client.rotate_webhook_secret(endpoint.id, grace_seconds=60)
        assert rotated.secret != endpoint.secret
        delivery = client.test_webhook_endpoint(endpoint.id)
        assert delivery.event_type == "webhook.test" and delivery.attempt_log
        with pytest.raises(ApiConflictError):
            client.redeliver_webhook(endpoint.id, delivery.id)  # tests are not redelivered
        client.create_run(
            {"repository": "acme/none", "prompt": "x", "publish": {"mode": "none"},
             "agent": {"driver": "command", "argv": ["true"]}}
        )  # fmt: skip
        receiver.wait_for(lambda seen: len(seen) >= 2)
        deliveries = client.list_webhook_deliveries(endpoint.id, status="succeeded")
        queued = [d for d in deliveries.items if d.event_type == "run.queued"]
        assert len(queued) == 1
        assert client.get_webhook_delivery(endpoint.id, queued[0].id).payload
        again = client.redeliver_webhook(endpoint.id, queued[0].id)
        assert again.id == queued[0].id
        receiver.wait_for(lambda seen: len(seen) >= 3)
        client.delete_webhook_endpoint(endpoint.id)
        with pytest.raises(ApiNotFoundError):
            client.get_webhook_endpoint(endpoint.id)
    with pytest.raises(ApiInputError) as bad:
        client.create_webhook_endpoint("ftp://example.com/x", ["run.*"])
    assert bad.value.field


def test_conflicts_are_typed(client: Client) -> None:
    run = client.create_run(
        {"repository": "acme/none", "prompt": "x",
         "agent": {"driver": "command", "argv": ["true"]}, "publish": {"mode": "none"}}
    )  # fmt: skip
    cancelled = client.cancel_run(run.id)
    assert cancelled.lifecycle.value == "cancelled"
    with pytest.raises(ApiConflictError) as again:
        client.cancel_run(run.id)
    assert again.value.code == "run_not_cancellable"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_gate_check_through_a_server(client: Client, settings: Settings, tmp_path: Path) -> None:
    head = _pull_request(settings, tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    key = client._config.api_key or ""
    env = {"PATH": "/usr/bin:/bin", "WRITGATE_HOME": str(tmp_path / "nowhere"),
           "WRITGATE_SERVER": client.base_url, "WRITGATE_API_KEY": key}  # fmt: skip
    command = [WRITGATE, "gate", "check", "--policy", str(policy), "--repository", REPO]
    result = subprocess.run(
        [*command, "--pull-request", "1", "--reviewers", "secrets", "--format", "json",
         "--publish"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr  # pending: the policy wants an approval
    output = json.loads(result.stdout)
    assert output["decision"] == "pending"
    stored = client.get_gate_decision(output["decisionId"])
    assert stored.headSha == head and stored.passportId == output["passportId"]
    local_only = subprocess.run(
        [*command, "--repo", str(tmp_path), "--base", "a", "--head", "b"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert local_only.returncode == 2 and "--server" in local_only.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_pipeline_commands_through_a_server(client: Client, tmp_path: Path) -> None:
    run = client.start_pipeline(path="demo.yaml", inputs={"who": "cli"})
    env = {"PATH": "/usr/bin:/bin", "WRITGATE_HOME": str(tmp_path / "nowhere"),
           "WRITGATE_API_KEY": client._config.api_key or ""}  # fmt: skip
    watched = subprocess.run(
        [WRITGATE, "pipeline", "status", run.id, "--watch", "--server", client.base_url],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert watched.returncode == 0, watched.stderr
    assert f"{run.id}  api-demo  succeeded" in watched.stdout and "shout" in watched.stdout
    shown = subprocess.run(
        [WRITGATE, "pipeline", "status", run.id, "--json", "--server", client.base_url],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert json.loads(shown.stdout) == client.get_pipeline_run(run.id).model_dump(
        mode="json", by_alias=True
    )
    listed = subprocess.run(
        [WRITGATE, "pipeline", "list", "--json", "--server", client.base_url],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    raw = client._http.get("/api/v1/pipeline-runs").json()
    assert json.loads(listed.stdout) == raw and [r["id"] for r in raw["items"]] == [run.id]
