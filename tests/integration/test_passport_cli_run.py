"""``writgate passport build --run RUN_ID`` takes the writer from a run in the database."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import anyio
import pytest

from tests.conftest import git
from writer.models import CreateRunRequest
from writer.store import RunStore
from writgate.app.cli import main
from writgate.app.database import open_database
from writgate.settings import Settings


def _create_run(settings: Settings, head_sha: str) -> str:
    async def go() -> str:
        database = await open_database(settings)
        try:
            store = RunStore(engine=database.engine, ledger=database.ledger)
            request = CreateRunRequest.model_validate(
                {
                    "repository": "acme/web",
                    "title": "Fix webhook",
                    "tags": ["ci", "payments"],
                    "metadata": {"ticket": "PAY-742"},
                    "prompt": "Add signature verification.",
                    "agent": {"driver": "command", "argv": ["true"]},
                }
            )
            run, _ = await store.create(settings.org, request)
            await store.update(settings.org, run.id, result={**run.result, "headSha": head_sha})
            return run.id
        finally:
            await database.dispose()

    return anyio.run(go)


def test_build_with_run_records_the_runs_writer(
    tmp_path: Path,
    git_repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    monkeypatch.setenv("WRITGATE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WRITGATE_DATABASE_URL", url)
    (git_repo / "a.txt").write_text("a\n")
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "change")
    head = git(git_repo, "rev-parse", "HEAD").strip()
    settings = Settings.from_env()
    run_id = _create_run(settings, head)

    out = tmp_path / "p.json"
    args = ["passport", "build", "--repo", str(git_repo), "--base", "HEAD~", "--head", "HEAD",
            "--run", run_id, "--out", str(out)]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    predicate = json.loads(out.read_text())["predicate"]
    writer = predicate["writer"]
    assert writer["kind"] == "agent" and writer["runId"] == run_id
    assert writer["tags"] == ["ci", "payments"] and writer["metadata"] == {"ticket": "PAY-742"}
    assert writer["agent"] == "command"
    assert writer["promptSha256"] == hashlib.sha256(b"Add signature verification.").hexdigest()
    assert predicate["provenanceVerified"] is True
    assert run_id in predicate["provenanceReason"]

    # The run published another head: its provenance does not vouch for this one.
    git(git_repo, "commit", "-q", "--allow-empty", "-m", "human commit on top")
    assert main(args) == 0
    predicate = json.loads(out.read_text())["predicate"]
    assert predicate["provenanceVerified"] is False
    assert "published head" in predicate["provenanceReason"]
