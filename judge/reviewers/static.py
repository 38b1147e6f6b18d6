"""An in-memory reviewer for tests of code that runs reviewers (pipelines, the gate)."""

from __future__ import annotations

from collections.abc import Sequence

from ..change import Change
from ..findings import Finding

__all__ = ["StaticReviewer"]


class StaticReviewer:
    """Reports the same findings for every change, and remembers the changes it saw."""

    def __init__(self, name: str, findings: Sequence[Finding] = ()):
        self.name = name
        self.findings = list(findings)
        self.seen: list[Change] = []

    async def review(self, change: Change) -> list[Finding]:
        self.seen.append(change)
        return list(self.findings)
