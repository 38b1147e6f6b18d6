from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from passport import generate_signing_key, recover_provenance
from writer.lifecycle import Lifecycle
from writer.models import CreateRunRequest
from writer.pr_body import render_pr_body, signing_key_from_env
from writer.store import RunRecord
from writgate.errors import ConfigError

KEY = generate_signing_key("p256")
HEAD = "a" * 40


def _record(**request: object) -> RunRecord:
    spec = CreateRunRequest.model_validate(
        {
            "repository": "acme/web",
            "title": "Fix | webhook\nverification",
            "prompt": "Add Stripe webhook signature verification.",
            "modelId": "anthropic/claude-sonnet-4.6",
            "tags": ["payments"],
            "metadata": {"ticket": "PAY-742", "note": "<b>x</b>"},
            **request,
        }
    )
    now = datetime(2026, 11, 28, tzinfo=UTC)
    return RunRecord(
        id="run_1",
        org_id="default",
        repository="acme/web",
        title=spec.title or "",
        lifecycle=Lifecycle.RUNNING,
        request=spec.model_dump(mode="json", by_alias=True),
        intent={"label": "security", "ruleset": "intent/v1", "matched": ["signature"]},
        usage={},
        result={},
        turns=[],
        failure=None,
        parent_run_id=None,
        chain=[],
        sandbox_id=None,
        session_expires_at=None,
        owner=None,
        created_at=now,
        updated_at=now,
        started_at=now,
        finished_at=None,
    )


USAGE = {"turns": 1, "credits": 0.42, "inputTokens": 1000, "outputTokens": 50, "reported": True}
VALIDATION = {"result": "FAILED", "command": "pytest -q", "passed": 3, "failed": 1, "skipped": 0}


def test_body_summarizes_and_ends_with_a_verifiable_block() -> None:
    body = render_pr_body(
        _record(),
        head_sha=HEAD,
        driver="claude-code",
        usage=USAGE,
        validation=VALIDATION,
        key=KEY,
    )
    assert body.startswith("Fix \\| webhook verification\n")
    assert "| Agent | `claude-code` · model `anthropic/claude-sonnet-4.6` |" in body
    assert "| Intent | security (signature) |" in body
    assert "| note | &lt;b&gt;x&lt;/b&gt; |" in body
    assert "**FAILED** — `pytest -q`: 3 passed, 1 failed, 0 skipped" in body
    assert "0.42 credits · 1000 input tokens · 50 output tokens" in body
    assert body.rstrip().endswith("-->")
    writer, verified, reason = recover_provenance(
        body, {"Writgate-Run": ["run_1"]}, HEAD, "run_1", [KEY.public_key]
    )
    assert verified, reason
    assert writer is not None and writer["agent"] == "claude-code"
    assert writer["model"] == "anthropic/claude-sonnet-4.6"
    assert writer["usage"] == {"turns": 1, "credits": 0.42, "inputTokens": 1000, "outputTokens": 50}
    assert writer["sandbox"] == {"provider": "local", "network": "none"}
    # Edited after signing: the head it signed is not the PR's head any more.
    _, verified, reason = recover_provenance(body, {}, "b" * 40, "run_1", [KEY.public_key])
    assert not verified and "is for head" in reason


def test_unreported_usage_and_no_validation() -> None:
    body = render_pr_body(
        _record(),
        head_sha=HEAD,
        driver="aider",
        usage={**USAGE, "reported": False},
        validation=None,
        key=None,
    )
    assert "The `aider` agent reports no usage" in body
    assert "Not run (validation mode `none`)." in body
    assert "<!-- writgate-provenance v1 unsigned\n" in body


def test_signing_key_from_env(tmp_path: Path) -> None:
    assert signing_key_from_env({}) is None
    pem = KEY.to_pem()
    path = tmp_path / "key.pem"
    path.write_bytes(pem)
    assert signing_key_from_env({"WRITGATE_SIGNING_KEY": str(path)}).keyid == KEY.keyid  # type: ignore[union-attr]
    assert signing_key_from_env({"WRITGATE_SIGNING_KEY": pem.decode()}).keyid == KEY.keyid  # type: ignore[union-attr]
    locked = tmp_path / "locked.pem"
    locked.write_bytes(KEY.to_pem(b"pw"))
    env = {"WRITGATE_SIGNING_KEY": str(locked), "WRITGATE_SIGNING_KEY_PASSWORD": "pw"}
    assert signing_key_from_env(env).keyid == KEY.keyid  # type: ignore[union-attr]
    with pytest.raises(ConfigError) as missing:
        signing_key_from_env({"WRITGATE_SIGNING_KEY": str(tmp_path / "nope.pem")})
    assert "WRITGATE_SIGNING_KEY" in str(missing.value) and "nope.pem" in str(missing.value)
    with pytest.raises(ConfigError) as encrypted:
        signing_key_from_env({"WRITGATE_SIGNING_KEY": str(locked)})
    assert "WRITGATE_SIGNING_KEY_PASSWORD" in str(encrypted.value)
    # The error never carries key material.
    with pytest.raises(ConfigError) as garbage:
        signing_key_from_env({"WRITGATE_SIGNING_KEY": "-----BEGIN PRIVATE KEY-----\nnot a key"})
    assert "not a key" not in json.dumps(str(garbage.value))
