"""Validation after a turn, in the sandbox, with the repository's own commands (.writgate.yml)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from writer.lifecycle import Lifecycle
from writer.models import CreateRunRequest
from writgate.app.database import Database
from writgate.settings import Settings

from ..support.writer_env import writer_env

pytestmark = pytest.mark.anyio

TESTS = """\
import unittest

from app import add


class AddTest(unittest.TestCase):
    def test_small(self):
        self.assertEqual(add(1, 1), 2)

    def test_negative(self):
        self.assertEqual(add(-1, -1), -2)

    @unittest.skip("not yet")
    def test_later(self):
        pass
"""
REPO = {
    "README.md": "calc\n",
    "app.py": "def add(a, b):\n    return a - b\n",
    "test_app.py": TESTS,
    ".writgate.yml": "validate:\n  tests:\n    - python3 -m unittest -v\n",
}


def _request(fix: str, **changes: Any) -> CreateRunRequest:
    script = f"import pathlib; pathlib.Path('app.py').write_text({fix!r})"
    return CreateRunRequest.model_validate(
        {
            "repository": "acme/app",
            "title": "Fix add()",
            "prompt": "add() subtracts; fix it",
            "agent": {"driver": "command", "argv": ["python3", "-c", script]},
            "publish": {"mode": "draft_pr"},
            "validationMode": "tests",
            "session": {"keepWarmSeconds": 0},
            **changes,
        }
    )


async def test_failing_tests_fail_the_run_with_counts(
    settings: Settings, database: Database
) -> None:
    async with writer_env(settings, database, repo_files=REPO) as env:
        wrong = "def add(a, b):\n    return abs(a) + abs(b)\n"  # wrong for negatives only
        record, _ = await env.writer.create_run("default", _request(wrong))
        with anyio.fail_after(60):
            record = await env.writer.wait("default", record.id)
        assert record.lifecycle is Lifecycle.FAILED
        assert record.failure is not None and record.failure["code"] == "validation_failed"
        validation = record.result["validation"]
        assert validation["result"] == "FAILED"
        assert (validation["passed"], validation["failed"], validation["skipped"]) == (1, 1, 1)
        assert "pullRequest" not in record.result  # nothing failing is published
        types = [e.type for e in await database.ledger.read(record.id, org_id="default")]
        assert "validation.finished" in types


async def test_passing_tests_are_counted_in_the_run_and_the_pr(
    settings: Settings, database: Database
) -> None:
    async with writer_env(settings, database, repo_files=REPO) as env:
        record, _ = await env.writer.create_run(
            "default", _request("def add(a, b):\n    return a + b\n")
        )
        with anyio.fail_after(60):
            record = await env.writer.wait("default", record.id)
        assert record.lifecycle is Lifecycle.SUCCEEDED, record.failure
        validation = record.result["validation"]
        assert (validation["result"], validation["passed"], validation["skipped"]) == (
            "PASSED",
            2,
            1,
        )
        assert record.turns[0]["validation"]["command"] == "python3 -m unittest -v"
        pr = await env.forge.get_pull_request("acme/app", record.result["pullRequest"]["number"])
        assert "**PASSED** — `python3 -m unittest -v`: 2 passed, 0 failed, 1 skipped" in pr.body
