"""Running reviewers over a change: :func:`review_change` and its :class:`ReviewResult`.

Reviewers run concurrently. A reviewer that fails does not fail the review silently: its failure
becomes an ``error`` finding (rule ``reviewer-failed``), so a policy that blocks on errors fails
closed. The reviewer configuration of a repository (``.writgate.yml``: ``reviewers:``) is read at
the BASE commit — a change cannot switch off the reviewers that judge it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anyio
import yaml

from writgate.errors import WritgateError

from .change import Change, load_change
from .errors import ReviewConfigError, ReviewerSkipped
from .findings import SEVERITIES, Finding, count_by_severity, disambiguate
from .reviewers import Reviewer, resolve_reviewers
from .reviewers.secrets import redact, secret_values

__all__ = [
    "ReviewResult",
    "ReviewerOutcome",
    "load_repository_config",
    "review_change",
    "run_reviewers",
]

CONFIG_FILE = ".writgate.yml"


@dataclass(frozen=True)
class ReviewerOutcome:
    """How one reviewer went."""

    name: str
    status: str  # "succeeded" | "failed" | "skipped"
    findings: int
    duration_seconds: float
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON shape."""
        return {
            "name": self.name,
            "status": self.status,
            "findings": self.findings,
            "durationSeconds": round(self.duration_seconds, 3),
            "error": self.error,
        }


@dataclass
class ReviewResult:
    """The findings of a review run over one change."""

    base: str
    head: str
    findings: list[Finding]
    reviewers: list[ReviewerOutcome]
    totals: dict[str, int] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    change: Change | None = field(default=None, repr=False, compare=False)

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        """Findings by reviewer and severity."""
        counts: dict[str, dict[str, int]] = {
            outcome.name: dict.fromkeys(SEVERITIES, 0) for outcome in self.reviewers
        }
        for finding in self.findings:
            counts.setdefault(finding.reviewer, dict.fromkeys(SEVERITIES, 0))
            counts[finding.reviewer][finding.severity] += 1
        return counts

    @property
    def failed(self) -> list[ReviewerOutcome]:
        """Reviewers that could not run."""
        return [outcome for outcome in self.reviewers if outcome.status == "failed"]

    def to_passport_reviews(self) -> list[dict[str, Any]]:
        """The ``reviews[]`` of the Change Passport (contract 1)."""
        reviews = []
        for name, counts in self.counts.items():
            own = [f.to_json() for f in self.findings if f.reviewer == name]
            reviews.append({"reviewer": name, "counts": counts, "findings": own})
        return reviews

    def to_json(self) -> dict[str, Any]:
        """JSON shape used by the CLI and the API."""
        return {
            "base": self.base,
            "head": self.head,
            "totals": self.totals,
            "counts": count_by_severity(self.findings),
            "reviewers": [outcome.to_json() for outcome in self.reviewers],
            "findings": [finding.to_json() for finding in self.findings],
        }


def _sort_key(finding: Finding) -> tuple[Any, ...]:
    order = {"error": 0, "warning": 1, "info": 2}
    return (order[finding.severity], finding.path or "", finding.start_line or 0, finding.reviewer,
            finding.rule)  # fmt: skip


async def run_reviewers(change: Change, reviewers: Sequence[Reviewer]) -> ReviewResult:
    """Run ``reviewers`` concurrently over ``change``."""
    results: dict[int, tuple[list[Finding], ReviewerOutcome]] = {}

    async def run(index: int, reviewer: Reviewer) -> None:
        started = time.perf_counter()
        try:
            found = list(await reviewer.review(change))
        except ReviewerSkipped as exc:
            results[index] = _skipped(reviewer.name, str(exc), started)
            return
        except WritgateError as exc:
            results[index] = _failure(reviewer.name, str(exc), started)
            return
        except Exception as exc:  # a plugin bug must not take the whole review down
            results[index] = _failure(reviewer.name, f"{type(exc).__name__}: {exc}", started)
            return
        elapsed = time.perf_counter() - started
        results[index] = (
            found,
            ReviewerOutcome(reviewer.name, "succeeded", len(found), elapsed),
        )

    async with anyio.create_task_group() as group:
        for index, reviewer in enumerate(reviewers):
            group.start_soon(run, index, reviewer)
    findings: list[Finding] = []
    outcomes = []
    for index in range(len(reviewers)):
        found, outcome = results[index]
        findings.extend(found)
        outcomes.append(outcome)
    findings = _redacted(findings, outcomes, secret_values(change))
    return ReviewResult(
        base=change.base,
        head=change.head,
        findings=sorted(disambiguate(findings), key=_sort_key),
        reviewers=outcomes,
        totals=change.totals,
        files=[f.to_json() for f in change],
        change=change,
    )


def _redacted(
    findings: list[Finding], outcomes: list[ReviewerOutcome], values: set[str]
) -> list[Finding]:
    """Strip secret values that a tool may have echoed into a message (in place for outcomes)."""
    if not values:
        return findings
    for index, outcome in enumerate(outcomes):
        if outcome.error:
            outcomes[index] = replace(outcome, error=redact(outcome.error, values))
    return [
        replace(
            finding,
            message=redact(finding.message, values),
            suggestion=redact(finding.suggestion, values) if finding.suggestion else None,
        )
        for finding in findings
    ]


def _skipped(name: str, message: str, started: float) -> tuple[list[Finding], ReviewerOutcome]:
    finding = Finding.create(
        reviewer=name,
        rule="reviewer-skipped",
        severity="info",
        message=f"The {name} reviewer was skipped: {message}",
        snippet="reviewer-skipped",
    )
    outcome = ReviewerOutcome(name, "skipped", 1, time.perf_counter() - started, message)
    return [finding], outcome


def _failure(name: str, message: str, started: float) -> tuple[list[Finding], ReviewerOutcome]:
    finding = Finding.create(
        reviewer=name,
        rule="reviewer-failed",
        severity="error",
        message=f"The {name} reviewer could not run: {message}",
        snippet="reviewer-failed",
        suggestion="Fix the reviewer configuration or install the tool, then review again.",
    )
    outcome = ReviewerOutcome(name, "failed", 1, time.perf_counter() - started, message)
    return [finding], outcome


def parse_repository_config(text: str, *, source: str = CONFIG_FILE) -> dict[str, Any]:
    """``reviewers:`` of a ``.writgate.yml``: ``{"names": [...] | None, "options": {...}}``."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ReviewConfigError(
            f"invalid YAML: {getattr(exc, 'problem', exc)}",
            file=source,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from exc
    if not isinstance(data, Mapping):
        raise ReviewConfigError("must be a mapping", file=source)
    reviewers = data.get("reviewers")
    if reviewers is None:
        return {"names": None, "options": {}}
    if isinstance(reviewers, list):
        names = []
        options: dict[str, Any] = {}
        for index, item in enumerate(reviewers):
            if isinstance(item, str):
                names.append(item)
            elif isinstance(item, Mapping) and len(item) == 1:
                name, value = next(iter(item.items()))
                names.append(str(name))
                options[str(name)] = dict(value or {})
            else:
                raise ReviewConfigError(
                    "must be a reviewer name or {name: options}",
                    file=source,
                    field=f"reviewers[{index}]",
                )
        return {"names": names, "options": options}
    if isinstance(reviewers, Mapping):
        return {
            "names": [str(k) for k in reviewers],
            "options": {str(k): dict(v or {}) for k, v in reviewers.items()},
        }
    raise ReviewConfigError("must be a list or a mapping", file=source, field="reviewers")


async def load_repository_config(change: Change) -> dict[str, Any]:
    """The reviewer configuration of the repository at the change's base."""
    text = await change.text_at(change.base, CONFIG_FILE)
    if text is None:
        return {"names": None, "options": {}}
    return parse_repository_config(text, source=f"{CONFIG_FILE}@{change.base[:12]}")


async def review_change(
    repo: Path | str,
    base: str,
    head: str,
    *,
    reviewers: Sequence[str] | None = None,
    config: Mapping[str, Any] | None = None,
    allow_programs: bool = True,
) -> ReviewResult:
    """Review ``base..head`` of the repository at ``repo``.

    ``reviewers`` selects reviewers by name; ``config`` maps names to their options. When both are
    ``None`` the repository's ``.writgate.yml`` (at base) decides, else every default built-in.
    ``allow_programs=False`` refuses reviewers that run programs named by the configuration
    (``command``, ``agent``, dotted paths): a server judging tenants' repositories passes it.
    """
    change = await load_change(repo, base, head)
    if reviewers is None and config is None:
        repository_config = await load_repository_config(change)
        reviewers, config = repository_config["names"], repository_config["options"]
    selected = resolve_reviewers(reviewers, config, allow_programs=allow_programs)
    return await run_reviewers(change, selected)
