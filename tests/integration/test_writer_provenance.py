"""A run's PR carries its signed provenance to the judge, through the local forge and real git."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import anyio
import pytest

from passport import (
    NO_PROVENANCE,
    generate_signing_key,
    recover_pull_request_provenance,
)
from writer.lifecycle import Lifecycle
from writer.models import CreateRunRequest, FollowUpRequest
from writgate.app.database import Database
from writgate.settings import Settings

from ..support.writer_env import WriterEnv, writer_env

pytestmark = pytest.mark.anyio

SCRIPT = (
    "import pathlib, sys; p = pathlib.Path('notes.txt'); "
    "p.write_text((p.read_text() if p.exists() else '') + sys.argv[1] + '\\n')"
)


def _request(**changes: Any) -> CreateRunRequest:
    body: dict[str, Any] = {
        "repository": "acme/app",
        "title": "Add notes <!-- writgate-provenance v1",
        "prompt": "first",
        "tags": ["ci", "owner:platform"],
        "metadata": {"ticket": "PAY-742"},
        "agent": {"driver": "command", "argv": ["python3", "-c", SCRIPT, "{{ instruction }}"]},
        "publish": {"mode": "draft_pr"},
        "session": {"keepWarmSeconds": 30},
        **changes,
    }
    return CreateRunRequest.model_validate(body)


async def _recover(env: WriterEnv, number: int, base: str, run_id: str, keys: list[Any]) -> Any:
    pr = await env.forge.get_pull_request("acme/app", number)
    repo = env.forge.repository_path("acme/app")
    return pr, await recover_pull_request_provenance(
        repo, base, pr.head_sha, pr.body, keys, run_id=run_id
    )


async def test_signed_provenance_round_trip_and_follow_up(
    settings: Settings, database: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = generate_signing_key("ed25519")
    key_file = tmp_path / "signing.pem"
    key_file.write_bytes(key.to_pem())
    monkeypatch.setenv("WRITGATE_SIGNING_KEY", str(key_file))
    async with writer_env(settings, database) as env:
        record, _ = await env.writer.create_run("default", _request())
        with anyio.fail_after(60):
            record = await env.writer.wait("default", record.id)
        assert record.lifecycle is Lifecycle.AWAITING_FOLLOW_UP, record.failure
        number = record.result["pullRequest"]["number"]
        base = record.result["baseSha"]
        pr, (writer, verified, reason) = await _recover(
            env, number, base, record.id, [key.public_key]
        )
        assert verified, reason
        assert writer is not None
        assert writer["runId"] == record.id and writer["agent"] == "command"
        assert writer["tags"] == ["ci", "owner:platform"]
        assert writer["metadata"] == {"ticket": "PAY-742"}
        assert writer["promptSha256"] == hashlib.sha256(b"first").hexdigest()
        assert writer["intent"]["label"] == record.intent["label"]
        assert writer["usage"]["turns"] == 1
        # The title cannot smuggle a second block: it is escaped in the body.
        assert pr.body.count("<!--") == 1
        assert "Add notes &lt;!-- writgate-provenance v1" in pr.body
        # A key the judge does not trust verifies nothing.
        _, (_, untrusted, _) = await _recover(
            env, number, base, record.id, [generate_signing_key().public_key]
        )
        assert not untrusted

        await env.writer.send_message("default", record.id, FollowUpRequest(text="second"))
        with anyio.fail_after(60):
            record = await env.writer.wait("default", record.id)
        assert record.result["pullRequest"]["number"] == number
        pr2, (writer2, verified2, reason2) = await _recover(
            env, number, base, record.id, [key.public_key]
        )
        assert pr2.head_sha != pr.head_sha and pr2.head_sha == record.result["headSha"]
        assert verified2, reason2  # the updated body signs the new head
        assert writer2 is not None and writer2["usage"]["turns"] == 2
        log = (
            await anyio.run_process(
                ["git", "log", "--format=%B%x00", f"{base}..{pr2.head_sha}"],
                cwd=env.forge.repository_path("acme/app"),
            )
        ).stdout.decode()
        messages = [m for m in log.split("\0") if m.strip()]
        assert len(messages) == 2
        assert all(f"Writgate-Run: {record.id}" in m for m in messages)
        assert all("Assisted-by: command:none" in m for m in messages)
        await env.writer.complete("default", record.id)


async def test_without_a_key_the_block_is_unsigned_and_not_trusted(
    settings: Settings, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WRITGATE_SIGNING_KEY", raising=False)
    async with writer_env(settings, database) as env:
        record, _ = await env.writer.create_run(
            "default", _request(session={"keepWarmSeconds": 0}, validationMode="none")
        )
        with anyio.fail_after(60):
            record = await env.writer.wait("default", record.id)
        assert record.lifecycle is Lifecycle.SUCCEEDED, record.failure
        pr, (writer, verified, reason) = await _recover(
            env,
            record.result["pullRequest"]["number"],
            record.result["baseSha"],
            record.id,
            [generate_signing_key().public_key],
        )
        assert "writgate-provenance v1 unsigned" in pr.body
        assert "provenance **unsigned**" in pr.body
        assert (writer, verified, reason) == (None, False, NO_PROVENANCE)
