"""Findings: what a reviewer reports, with a fingerprint that survives unrelated edits.

The fingerprint is the sha256 of the reviewer, the rule, the path and a normalized snippet of the
offending code (whitespace collapsed) — never of line numbers, so a finding keeps its identity when
lines are inserted above it. Identical snippets in one file are told apart by their occurrence
index (see :func:`disambiguate`).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

from writgate.errors import InputError

__all__ = [
    "SEVERITIES",
    "Finding",
    "Severity",
    "count_by_severity",
    "disambiguate",
    "fingerprint",
    "severity_rank",
]

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")
_RANK = {"info": 0, "warning": 1, "error": 2}
_SPACE = re.compile(r"\s+")


def severity_rank(severity: str) -> int:
    """``info`` < ``warning`` < ``error``."""
    return _RANK[severity]


def fingerprint(
    reviewer: str, rule: str, path: str | None, snippet: str, occurrence: int = 0
) -> str:
    """The stable fingerprint of a finding (hex sha256)."""
    normalized = _SPACE.sub(" ", snippet).strip()
    parts = [reviewer, rule, path or "", normalized]
    if occurrence:
        parts.append(str(occurrence))
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Finding:
    """One finding of one reviewer (contract 3 of CONTRACTS.md)."""

    reviewer: str
    rule: str
    severity: Severity
    path: str | None
    start_line: int | None
    end_line: int | None
    message: str
    suggestion: str | None
    fingerprint: str

    @classmethod
    def create(
        cls,
        *,
        reviewer: str,
        rule: str,
        severity: Severity,
        message: str,
        path: str | None = None,
        start_line: int | None = None,
        end_line: int | None = None,
        snippet: str = "",
        suggestion: str | None = None,
    ) -> Finding:
        """A finding whose fingerprint is computed from ``snippet`` (the offending code)."""
        if severity not in _RANK:
            raise ValueError(f"unknown severity {severity!r}")
        if start_line is not None and end_line is None:
            end_line = start_line
        return cls(
            reviewer=reviewer,
            rule=rule,
            severity=severity,
            path=path,
            start_line=start_line,
            end_line=end_line,
            message=message,
            suggestion=suggestion,
            fingerprint=fingerprint(reviewer, rule, path, snippet or message),
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of contract 3."""
        return {
            "reviewer": self.reviewer,
            "rule": self.rule,
            "severity": self.severity,
            "path": self.path,
            "startLine": self.start_line,
            "endLine": self.end_line,
            "message": self.message,
            "suggestion": self.suggestion,
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "finding") -> Finding:
        """Parse the JSON shape back; a malformed value raises ``InputError`` naming the field."""
        if not isinstance(data, Mapping):
            raise InputError("a finding must be an object", field=where)

        def text(name: str, *, optional: bool = False) -> str | None:
            value = data.get(name)
            if value is None and optional:
                return None
            if not isinstance(value, str) or not value:
                raise InputError("must be a non-empty string", field=f"{where}.{name}")
            return value

        def line(name: str) -> int | None:
            value = data.get(name)
            if value is None:
                return None
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError("must be a positive integer", field=f"{where}.{name}")
            return value

        severity = data.get("severity")
        if severity not in _RANK:
            raise InputError("must be one of error, warning, info", field=f"{where}.severity")
        return cls(
            reviewer=cast(str, text("reviewer")),
            rule=cast(str, text("rule")),
            severity=cast(Severity, severity),
            path=text("path", optional=True),
            start_line=line("startLine"),
            end_line=line("endLine"),
            message=cast(str, text("message")),
            suggestion=text("suggestion", optional=True),
            fingerprint=cast(str, text("fingerprint")),
        )


def disambiguate(findings: Iterable[Finding]) -> list[Finding]:
    """Make fingerprints unique: the n-th repeat of a fingerprint gets the occurrence n mixed in."""
    seen: Counter[str] = Counter()
    result = []
    for finding in findings:
        count = seen[finding.fingerprint]
        seen[finding.fingerprint] += 1
        if count:
            unique = hashlib.sha256(f"{finding.fingerprint}\x00{count}".encode()).hexdigest()
            finding = replace(finding, fingerprint=unique)
        result.append(finding)
    return result


def count_by_severity(findings: Iterable[Finding]) -> dict[str, int]:
    """``{"error": n, "warning": n, "info": n}``."""
    counts: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
    for finding in findings:
        counts[finding.severity] += 1
    return counts
