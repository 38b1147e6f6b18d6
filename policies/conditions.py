"""The conditions of the policy language: one class per kind of attribute, each deciding a fact.

A condition is an immutable object whose ``evaluate(facts)`` gives an
:class:`~policies.truth.Outcome` with reasons that name what matched (files, findings, tags,
approvers). A condition that reads a fact the input lacks gives ``error`` (through :func:`check`),
except approvals and checks, which give ``pending`` because the PR state may still bring them.
How each attribute key is written and which condition it becomes lives in ``attributes.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pathspec

from .facts import ChangedFile, Facts, Missing
from .matchers import Comparison, SeverityComparison, TextMatcher, sample, text_of
from .truth import Outcome, Truth

__all__ = [
    "STATUS_GROUPS",
    "ApprovalsCondition",
    "BoolCondition",
    "CheckCondition",
    "Condition",
    "FindingsCondition",
    "PathCondition",
    "SetCondition",
    "TextCondition",
    "TotalCondition",
    "ValidationCondition",
    "check",
    "team_names",
]


class Condition(Protocol):
    """One attribute test of a predicate."""

    @property
    def attribute(self) -> str: ...

    def evaluate(self, facts: Facts) -> Outcome: ...


def check(condition: Condition, facts: Facts) -> Outcome:
    """Evaluate ``condition``; a missing fact becomes ``pending`` or ``error``."""
    try:
        return condition.evaluate(facts)
    except Missing as missing:
        truth = Truth.PENDING if missing.may_arrive else Truth.ERROR
        return Outcome(truth, (f"{condition.attribute}: {missing.what}",))


@dataclass(frozen=True, slots=True)
class TextCondition:
    """A text fact (``author.kind``, ``pr.title``, ``metadata.ticket``…) against a matcher."""

    attribute: str
    read: Callable[[Facts], Any]
    matcher: TextMatcher

    def evaluate(self, facts: Facts) -> Outcome:
        value = self.read(facts)
        if isinstance(value, list):
            return self._evaluate_list(value)
        try:
            actual = text_of(value)
        except TypeError:
            raise Missing(f"{self.attribute} is not a text value") from None
        if actual is None:
            return Outcome(Truth.FALSE, (f"{self.attribute} is not set",))
        if self.matcher.matches(actual):
            how = f" ({self.matcher})" if self.matcher.pattern is not None else ""
            return Outcome(Truth.TRUE, (f"{self.attribute} is {actual!r}{how}",))
        return Outcome(Truth.FALSE, (f"{self.attribute} is {actual!r}, not {self.matcher}",))

    def _evaluate_list(self, values: list[Any]) -> Outcome:
        # A list-valued fact (``metadata.owners: [a, b]``) matches when any item does.
        try:
            items = [text for text in map(text_of, values) if text is not None]
        except TypeError:
            raise Missing(f"{self.attribute} is not a text value or a list of them") from None
        matched = [item for item in items if self.matcher.matches(item)]
        if matched:
            return Outcome(Truth.TRUE, (f"{self.attribute} includes {sample(matched)}",))
        shown = sample(items) if items else "nothing"
        return Outcome(Truth.FALSE, (f"{self.attribute} holds {shown}, not {self.matcher}",))


# -- booleans, numbers, sets ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BoolCondition:
    """``provenance.verified: true``, ``pr.draft: false``."""

    attribute: str
    read: Callable[[Facts], Any]
    expected: bool

    def evaluate(self, facts: Facts) -> Outcome:
        value = self.read(facts)
        if not isinstance(value, bool):
            raise Missing(f"{self.attribute} is not a boolean in the input")
        return Outcome.of(value == self.expected, f"{self.attribute} is {str(value).lower()}")


@dataclass(frozen=True, slots=True)
class TotalCondition:
    """``diff.lines: "> 500"``."""

    attribute: str
    key: str
    comparison: Comparison

    def evaluate(self, facts: Facts) -> Outcome:
        actual = facts.total(self.key)
        if self.comparison.holds(actual):
            return Outcome(Truth.TRUE, (f"{self.attribute} is {actual} ({self.comparison})",))
        return Outcome(Truth.FALSE, (f"{self.attribute} is {actual}, not {self.comparison}",))


@dataclass(frozen=True, slots=True)
class SetCondition:
    """``tags.any|all|none``, ``pr.labels.any|all|none``."""

    attribute: str
    read: Callable[[Facts], Any]
    mode: str  # any | all | none
    values: tuple[str, ...]
    casefold: bool = False

    def evaluate(self, facts: Facts) -> Outcome:
        raw = self.read(facts)
        if raw is None:
            raw = []
        if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
            raise Missing(f"{self.attribute.rsplit('.', 1)[0]} is not a list of strings")
        norm: Callable[[str], str] = str.casefold if self.casefold else str
        present = {norm(v) for v in raw}
        found = [v for v in self.values if norm(v) in present]
        noun = self.attribute.rsplit(".", 1)[0]
        wanted = ", ".join(self.values)
        if self.mode == "any":
            if found:
                return Outcome(Truth.TRUE, (f"{noun} include {', '.join(found)}",))
            return Outcome(Truth.FALSE, (f"{noun} include none of {wanted}",))
        if self.mode == "all":
            absent = [v for v in self.values if norm(v) not in present]
            if not absent:
                return Outcome(Truth.TRUE, (f"{noun} include all of {wanted}",))
            return Outcome(Truth.FALSE, (f"{noun} lack {', '.join(absent)}",))
        if found:
            return Outcome(Truth.FALSE, (f"{noun} include {', '.join(found)}",))
        return Outcome(Truth.TRUE, (f"{noun} include none of {wanted}",))


# -- paths ------------------------------------------------------------------------------------

STATUS_GROUPS = {
    "added": frozenset({"added", "copied"}),
    "removed": frozenset({"removed"}),
    "renamed": frozenset({"renamed"}),
    "modified": frozenset({"modified", "changed"}),
}


@dataclass(frozen=True)
class PathCondition:
    """``paths`` (any file matches), ``paths.only``, ``paths.none``, ``paths.<status>``.

    Patterns are gitignore-style (``**``, trailing ``/`` for directories, ``!`` to exclude what an
    earlier pattern matched). A renamed file is tested under its new and its previous path.
    """

    attribute: str
    mode: str  # any | only | none
    statuses: frozenset[str] | None
    patterns: tuple[str, ...]
    spec: pathspec.PathSpec  # type: ignore[type-arg]

    def _matches(self, file: ChangedFile) -> bool:
        return any(self.spec.match_file(path) for path in file.paths)

    def evaluate(self, facts: Facts) -> Outcome:
        files = facts.files
        if self.statuses is not None:
            files = [f for f in files if f.status in self.statuses]
        globs = ", ".join(self.patterns)
        noun = "changed file" if self.statuses is None else f"{self.attribute[6:]} file"
        if self.mode == "only":
            if not files:
                return Outcome(Truth.FALSE, ("the change has no files",))
            outside = [f.path for f in files if not all(self.spec.match_file(p) for p in f.paths)]
            if outside:
                return Outcome(Truth.FALSE, (f"files outside {globs}: {sample(outside)}",))
            return Outcome(Truth.TRUE, (f"all {len(files)} changed files match {globs}",))
        matched = [f.path for f in files if self._matches(f)]
        if self.mode == "none":
            if matched:
                return Outcome(Truth.FALSE, (f"{noun}s matching {globs}: {sample(matched)}",))
            return Outcome(Truth.TRUE, (f"no {noun} matches {globs}",))
        if matched:
            return Outcome(Truth.TRUE, (f"{noun}s matching {globs}: {sample(matched)}",))
        return Outcome(Truth.FALSE, (f"no {noun} matches {globs}",))


# -- validation, findings, checks, approvals --------------------------------------------------


@dataclass(frozen=True, slots=True)
class ValidationCondition:
    """``validation: passed|failed|missing``: passed = every result PASSED or WARNED."""

    attribute: str
    expected: tuple[str, ...]

    def evaluate(self, facts: Facts) -> Outcome:
        results = facts.passport_list("validation")
        failed, summary = [], []
        for item in results:
            name = str(item.get("name", "?")) if isinstance(item, Mapping) else "?"
            result = item.get("result") if isinstance(item, Mapping) else None
            summary.append(f"{name}: {result}")
            if result not in ("PASSED", "WARNED"):
                failed.append(name)
        state = "missing" if not results else "failed" if failed else "passed"
        detail = f" ({sample(summary)})" if summary else ""
        wanted = " or ".join(self.expected)
        if state in self.expected:
            return Outcome(Truth.TRUE, (f"validation {state}{detail}",))
        return Outcome(Truth.FALSE, (f"validation {state}{detail}, not {wanted}",))


@dataclass(frozen=True, slots=True)
class FindingsCondition:
    """``review.findings: {reviewer?, rule?, severity?, count}`` (count defaults to ``> 0``)."""

    attribute: str
    reviewers: tuple[str, ...] | None
    rules: tuple[str, ...] | None
    severity: SeverityComparison | None
    count: Comparison

    def _describe(self) -> str:
        parts = []
        if self.reviewers:
            parts.append("from " + ", ".join(self.reviewers))
        if self.rules:
            parts.append("rule " + ", ".join(self.rules))
        if self.severity:
            parts.append(f"severity {self.severity}")
        return (" " + " ".join(parts)) if parts else ""

    def evaluate(self, facts: Facts) -> Outcome:
        matched = []
        for finding in facts.findings:
            if self.reviewers is not None and finding.get("reviewer") not in self.reviewers:
                continue
            if self.rules is not None and finding.get("rule") not in self.rules:
                continue
            if self.severity is not None and not self.severity.holds(finding.get("severity")):
                continue
            matched.append(finding)
        count = len(matched)
        noun = f"{count} finding{'' if count == 1 else 's'}{self._describe()}"
        if not self.count.holds(count):
            return Outcome(Truth.FALSE, (f"{noun}, not {self.count}",))
        if not matched:
            return Outcome(Truth.TRUE, (f"{noun} ({self.count})",))
        names = [_finding_name(f) for f in matched]
        return Outcome(Truth.TRUE, (f"{noun} ({self.count}): {sample(names)}",))


def _finding_name(finding: Mapping[str, Any]) -> str:
    name = f"{finding.get('reviewer', '?')}/{finding.get('rule', '?')}"
    if finding.get("path"):
        name += f" at {finding['path']}"
        if finding.get("startLine") is not None:
            name += f":{finding['startLine']}"
    return name


# A check in one of these states can still move to the states listed.
_CHECK_FUTURE = {"missing": {"pending", "success", "failure"}, "pending": {"success", "failure"}}
_CHECK_ALIASES = {
    "error": "failure",
    "cancelled": "failure",
    "timed_out": "failure",
    "action_required": "failure",
    "queued": "pending",
    "in_progress": "pending",
    "expected": "pending",
}


@dataclass(frozen=True, slots=True)
class CheckCondition:
    """``checks.<context>: success|failure|pending|missing`` (or a list of them)."""

    attribute: str
    context: str
    expected: tuple[str, ...]

    def evaluate(self, facts: Facts) -> Outcome:
        checks = facts.pr_state("checks")
        if not isinstance(checks, Mapping):
            raise Missing("the PR state's checks is not an object")
        raw = checks.get(self.context)
        text = str(raw).lower()
        actual = "missing" if raw is None else _CHECK_ALIASES.get(text, text)
        wanted = " or ".join(self.expected)
        if actual in self.expected:
            return Outcome(Truth.TRUE, (f"check {self.context} is {actual}",))
        if _CHECK_FUTURE.get(actual, set()) & set(self.expected):
            return Outcome(
                Truth.PENDING, (f"check {self.context} is {actual}, waiting for {wanted}",)
            )
        return Outcome(Truth.FALSE, (f"check {self.context} is {actual}, not {wanted}",))


@dataclass(frozen=True, slots=True)
class ApprovalsCondition:
    """``approvals: {count, from: {users?, teams?}}``.

    Only the latest approving-or-rejecting review of each user counts; an approval of an older
    head commit is stale and the PR author never counts. Unmet approvals are ``pending``.
    """

    attribute: str
    count: int
    users: tuple[str, ...] | None
    teams: tuple[str, ...] | None

    def _describe(self) -> str:
        parts = []
        if self.users:
            parts.append("users " + ", ".join(self.users))
        if self.teams:
            parts.append("teams " + ", ".join(self.teams))
        return (" from " + " or ".join(parts)) if parts else ""

    def evaluate(self, facts: Facts) -> Outcome:
        reviews = facts.pr_state("reviews")
        head = facts.pr_state("headSha")
        author = facts.pull_request("author")
        if not isinstance(reviews, list):
            raise Missing("the PR state's reviews is not a list")
        eligible = self._eligible(facts)
        latest: dict[str, tuple[str, Mapping[str, Any]]] = {}
        names: dict[str, str] = {}
        for review in reviews:
            if not isinstance(review, Mapping) or not isinstance(review.get("user"), str):
                continue
            state = str(review.get("state", "")).lower()  # GitHub spells them APPROVED, …
            # A comment does not withdraw an earlier approval (as on GitHub).
            if state in ("approved", "changes_requested", "dismissed"):
                key = review["user"].casefold()
                latest[key] = (state, review)
                names[key] = review["user"]
        approvers, not_counted = [], []
        for key, (state, review) in latest.items():
            name = names[key]
            if state != "approved":
                not_counted.append(f"{name} ({state.replace('_', ' ')})")
            elif isinstance(author, str) and key == author.casefold():
                not_counted.append(f"{name} (the PR author)")
            elif review.get("commitSha") != head:
                not_counted.append(f"{name} (stale: approved an older head)")
            elif eligible is not None and key not in eligible:
                not_counted.append(f"{name} (not in{self._describe()[5:]})")
            else:
                approvers.append(name)
        summary = f"{len(approvers)} of {self.count} approvals{self._describe()}"
        if approvers:
            summary += f": {sample(approvers)}"
        reasons = [summary]
        if not_counted:
            reasons.append(f"not counted: {sample(not_counted)}")
        truth = Truth.TRUE if len(approvers) >= self.count else Truth.PENDING
        return Outcome(truth, tuple(reasons))

    def _eligible(self, facts: Facts) -> set[str] | None:
        if self.users is None and self.teams is None:
            return None
        eligible = {u.casefold() for u in self.users or ()}
        for team in self.teams or ():
            members = facts.team(team)
            if members is None:
                raise Missing(
                    f"team {team!r} is not in the policy's teams and no team resolver knows it"
                )
            eligible |= members
        return eligible


def team_names(conditions: Iterable[Condition]) -> set[str]:
    """The teams named by the approvals conditions among ``conditions``."""
    names: set[str] = set()
    for condition in conditions:
        if isinstance(condition, ApprovalsCondition) and condition.teams:
            names.update(condition.teams)
    return names
