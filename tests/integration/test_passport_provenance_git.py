"""Recovering a PR's provenance from its body and the trailers of its commits in real git."""

from __future__ import annotations

from pathlib import Path

import pytest

from passport import generate_signing_key, recover_pull_request_provenance, render_provenance_block
from tests.conftest import git

pytestmark = pytest.mark.anyio
KEY = generate_signing_key("p256")
WRITER = {"kind": "agent", "runId": "run_7", "model": "m", "tags": ["ci"], "metadata": {}}


def _commit(repo: Path, message: str) -> str:
    (repo / "f.txt").write_text(message)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD").strip()


async def test_trailers_and_head_from_git(git_repo: Path) -> None:
    head = _commit(git_repo, "Fix\n\nWritgate-Run: run_7\nAssisted-by: command:m\n")
    body = "Fix.\n\n" + render_provenance_block(WRITER, head_sha=head, key=KEY)
    writer, verified, reason = await recover_pull_request_provenance(
        git_repo, "HEAD~", "HEAD", body, [KEY.public_key]
    )
    assert verified, reason
    assert writer is not None and writer["runId"] == "run_7"

    # A human pushes on top: the block no longer describes the head.
    _commit(git_repo, "Human follow-up")
    writer, verified, reason = await recover_pull_request_provenance(
        git_repo, "HEAD~2", "HEAD", body, [KEY.public_key]
    )
    assert (writer, verified) == (None, False)
    assert "is for head" in reason


async def test_trailer_naming_another_run_is_refused(git_repo: Path) -> None:
    head = _commit(git_repo, "Fix\n\nWritgate-Run: run_8\n")
    body = render_provenance_block(WRITER, head_sha=head, key=KEY)
    _, verified, reason = await recover_pull_request_provenance(
        git_repo, "HEAD~", "HEAD", body, [KEY.public_key]
    )
    assert not verified
    assert "trailers name run_8" in reason
