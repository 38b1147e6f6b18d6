"""Passport statements and PR states for the policy tests, built from one realistic baseline."""

from __future__ import annotations

import copy
from typing import Any

import yaml

import policies

HEAD = "b" * 40
OLD_HEAD = "a" * 40


def _files() -> list[dict[str, Any]]:
    return [
        file("services/payments/api.py", "modified", 4, 1),
        file("docs/guide.md", "modified", 2, 0),
        file("README.md", "modified", 1, 1),
        file(".github/workflows/ci.yml", "added", 3, 0),
        file("tests/test_api.py", "removed", 0, 0),
        file("lib/new_name.py", "renamed", 0, 0, previous="lib/old_name.py"),
        file("assets/logo.png", "added", 0, 0, binary=True),
    ]


def file(
    path: str,
    status: str = "modified",
    additions: int = 1,
    deletions: int = 0,
    *,
    previous: str | None = None,
    binary: bool = False,
) -> dict[str, Any]:
    """One entry of ``predicate.change.files``."""
    return {
        "path": path,
        "previousPath": previous,
        "status": status,
        "additions": additions,
        "deletions": deletions,
        "binary": binary,
    }


def finding(reviewer: str, rule: str, severity: str, path: str = "src/a.py") -> dict[str, Any]:
    """A judge finding (contract 3)."""
    return {
        "reviewer": reviewer,
        "rule": rule,
        "severity": severity,
        "path": path,
        "startLine": 3,
        "endLine": 3,
        "message": f"{rule} found",
        "suggestion": None,
        "fingerprint": f"{reviewer}-{rule}-{path}",
    }


def base_statement() -> dict[str, Any]:
    """An agent's CI fix with seven changed files, validated, reviewed clean, unverified."""
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {"name": f"git+acme/web@{HEAD}", "digest": {"gitCommit": HEAD}},
            {"name": "diff", "digest": {"sha256": "0" * 64}},
        ],
        "predicateType": "https://writgate.dev/change-passport/v1",
        "predicate": {
            "change": {
                "repository": "acme/web",
                "base": {"ref": "main", "sha": "c" * 40},
                "head": {"ref": "writgate/fix", "sha": HEAD},
                "pullRequest": None,
                "totals": {"files": 7, "additions": 10, "deletions": 2, "lines": 12},
                "files": _files(),
            },
            "writer": {
                "kind": "agent",
                "runId": "run_01JDZX0000000000000000000A",
                "chain": ["run_01JDZX0000000000000000000A"],
                "agent": "command",
                "model": "claude-sonnet-4",
                "promptSha256": "d" * 64,
                "title": "Fix flaky payments test",
                "tags": ["ci", "owner:platform"],
                "metadata": {"ticket": "PAY-742", "attempt": 2, "retry": "3"},
                "intent": {"label": "bugfix", "ruleset": "intent/v1", "matched": ["fix"]},
                "usage": None,
                "sandbox": {"provider": "local", "network": "none"},
                "startedAt": "2026-11-28T20:00:00Z",
                "finishedAt": "2026-11-28T20:05:00Z",
            },
            "validation": [
                {
                    "name": "tests",
                    "result": "PASSED",
                    "counts": {"passed": 3, "failed": 0, "skipped": 0, "errors": 0},
                    "command": "pytest -q",
                },
                {
                    "name": "lint",
                    "result": "WARNED",
                    "counts": {"passed": 1, "failed": 0, "skipped": 0, "errors": 0},
                    "command": "ruff check",
                },
            ],
            "reviews": [
                {
                    "reviewer": "secrets",
                    "counts": {"error": 0, "warning": 0, "info": 0},
                    "findings": [],
                },
                {
                    "reviewer": "debug-leftovers",
                    "counts": {"error": 0, "warning": 0, "info": 1},
                    "findings": [finding("debug-leftovers", "print-call", "info")],
                },
            ],
            "provenanceVerified": False,
            "provenanceReason": "no signed provenance block",
        },
    }


def base_pr() -> dict[str, Any]:
    """An open PR by the bot with mixed checks and no reviews yet."""
    return {
        "number": 12,
        "title": "Fix flaky payments test",
        "draft": False,
        "author": "writgate-bot",
        "base": "main",
        "headSha": HEAD,
        "labels": ["bugfix", "Needs-Review"],
        "reviews": [],
        "checks": {"ci/tests": "success", "lint": "failure", "deploy": "pending"},
    }


_DELETE = object()
DELETE: Any = _DELETE
"""A change value that removes the key."""


def changed(
    document: dict[str, Any], changes: dict[str, Any], root: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A deep copy of ``document`` with dotted-path ``changes`` applied under ``root``."""
    result = copy.deepcopy(document)
    for dotted, value in changes.items():
        keys = [*root, *dotted.split(".")]
        target = result
        for key in keys[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[keys[-1]]
        else:
            target[keys[-1]] = copy.deepcopy(value)
    return result


def statement(changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The base statement with dotted-path changes under ``predicate``."""
    return changed(base_statement(), changes or {}, ("predicate",))


def policy_of(rules: list[dict[str, Any]], **top: Any) -> policies.Policy:
    """A policy made of ``rules`` (Python values dumped to YAML and parsed like a file)."""
    document = {"policy": "writgate/v1", "name": "test", **top, "rules": rules}
    return policies.parse_policy(yaml.safe_dump(document, sort_keys=False), source="test.yaml")
