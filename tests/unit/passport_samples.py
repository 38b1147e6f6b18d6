"""Sample passports for unit tests (no git needed)."""

from __future__ import annotations

import hashlib
from typing import Any

from passport import DiffFacts, FileStat, build_statement

HEAD = "1" * 40
BASE = "0" * 40


def sample_facts(files: int = 3) -> DiffFacts:
    stats = [
        FileStat(f"src/module_{i}.py", None, "modified", i + 1, i % 3, False) for i in range(files)
    ]
    patch = ("".join(s.path for s in stats)).encode()
    return DiffFacts(patch=patch, sha256=hashlib.sha256(patch).hexdigest(), files=tuple(stats))


def sample_writer() -> dict[str, Any]:
    return {
        "kind": "agent",
        "runId": "run_01hx",
        "chain": [],
        "agent": "command",
        "model": "anthropic/claude-sonnet-4.6",
        "promptSha256": "ab" * 32,
        "title": "Fix Stripe webhook verification",
        "tags": ["ci", "payments"],
        "metadata": {"ticket": "PAY-742"},
    }


def sample_statement(files: int = 3, **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "repository": "acme/web",
        "base_sha": BASE,
        "head_sha": HEAD,
        "base_ref": "main",
        "head_ref": "writgate/abc-fix",
        "diff": sample_facts(files),
        "writer": sample_writer(),
    }
    arguments.update(overrides)
    return build_statement(**arguments)
