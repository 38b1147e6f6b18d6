"""The attributes of the policy language (DESIGN.md §9): how each is written and how it is decided.

Each attribute key of a predicate (``paths.only``, ``diff.lines``, ``approvals``, …) is parsed from
its YAML node into a *condition*: an immutable object whose ``evaluate(facts)`` gives an
:class:`~policies.truth.Outcome` with reasons that name what matched (files, findings, tags,
approvers). A condition that reads a fact the input lacks gives ``error``, except approvals and
checks, which give ``pending`` because the PR state may still bring them.
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pathspec
import yaml

from ._yaml import Reader, join
from .facts import ChangedFile, Facts, Missing
from .truth import Outcome, Truth

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_PREFIXES",
    "Condition",
    "check",
    "parse_condition",
]

SEVERITIES = ("info", "warning", "error")
AUTHOR_KINDS = ("agent", "human", "external")
NETWORK_MODES = ("none", "restricted", "open")
VALIDATION_STATES = ("passed", "failed", "missing")
CHECK_STATES = ("success", "failure", "pending", "missing")

# How many files / findings / logins a reason lists before "(+N more)".
SAMPLE = 5


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


def sample(items: Sequence[str], limit: int = SAMPLE) -> str:
    """``a, b, c (+4 more)``."""
    shown = ", ".join(items[:limit])
    if len(items) > limit:
        shown += f" (+{len(items) - limit} more)"
    return shown


# -- comparisons ---------------------------------------------------------------------------------

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_COMPARISON = re.compile(r"^\s*(==|!=|>=|<=|>|<)\s*(\S+)\s*$")


@dataclass(frozen=True, slots=True)
class Comparison:
    """``> 500``, ``== 0``: an operator and an integer."""

    op: str
    value: int

    def holds(self, actual: int) -> bool:
        return _OPERATORS[self.op](actual, self.value)

    def __str__(self) -> str:
        return f"{self.op} {self.value}"


def parse_comparison(reader: Reader, node: yaml.Node, field: str) -> Comparison:
    """An integer (meaning ``==``) or a string ``"<op> <integer>"``."""
    what = 'a comparison such as "> 500", "<= 10" or "== 0"'
    value = reader.scalar(node, field, what)
    if isinstance(value, int) and not isinstance(value, bool):
        return Comparison("==", value)
    match = _COMPARISON.match(value) if isinstance(value, str) else None
    if match is None or not re.fullmatch(r"-?\d+", match.group(2)):
        reader.expected(node, field, what)
    return Comparison(match.group(1), int(match.group(2)))


@dataclass(frozen=True, slots=True)
class SeverityComparison:
    """``>= warning``: an operator and a severity, ordered info < warning < error."""

    op: str
    severity: str

    def holds(self, actual: Any) -> bool:
        # A severity the reviewer invented is treated as the most severe, never ignored.
        rank = SEVERITIES.index(actual) if actual in SEVERITIES else len(SEVERITIES) - 1
        return _OPERATORS[self.op](rank, SEVERITIES.index(self.severity))

    def __str__(self) -> str:
        return self.severity if self.op == "==" else f"{self.op} {self.severity}"


def parse_severity(reader: Reader, node: yaml.Node, field: str) -> SeverityComparison:
    what = 'a severity (info, warning, error), optionally compared: ">= warning"'
    value = reader.scalar(node, field, what)
    if isinstance(value, str):
        match = _COMPARISON.match(value)
        op, name = (match.group(1), match.group(2)) if match else ("==", value.strip())
        if name in SEVERITIES:
            return SeverityComparison(op, name)
    reader.expected(node, field, what)


# -- text -----------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TypeError(type(value).__name__)


@dataclass(frozen=True, slots=True)
class TextMatcher:
    """Equal to one of ``values``, or (``pattern``) a regular-expression search."""

    values: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    casefold: bool = False

    def matches(self, actual: str) -> bool:
        if self.pattern is not None:
            return self.pattern.search(actual) is not None
        if self.casefold:
            return actual.casefold() in {v.casefold() for v in self.values}
        return actual in self.values

    def __str__(self) -> str:
        if self.pattern is not None:
            return f"~= {self.pattern.pattern}"
        if len(self.values) == 1:
            return self.values[0]
        return "one of " + ", ".join(self.values)


def parse_text(
    reader: Reader,
    node: yaml.Node,
    field: str,
    *,
    choices: Sequence[str] | None = None,
    regex: bool = True,
    casefold: bool = False,
) -> TextMatcher:
    """A value, a list of values (any of them), or ``{"~=": regex}``."""
    if choices:
        what = "one of " + ", ".join(choices)
    else:
        what = "a value, a list of values" + (' or {"~=": regex}' if regex else "")
    if isinstance(node, yaml.MappingNode):
        if not regex:
            reader.expected(node, field, what)
        entries = reader.mapping(node, field)
        reader.check_keys(entries, field, ("~=",))
        if not entries:
            reader.expected(node, field, '{"~=": regex}')
        _, _, pattern_node = entries[0]
        source = reader.string(pattern_node, join(field, "~="), "a regular expression")
        try:
            pattern = re.compile(source)
        except re.error as exc:
            reader.fail(pattern_node, join(field, "~="), f"invalid regular expression: {exc}")
        return TextMatcher(pattern=pattern)
    items = reader.sequence(node, field) if isinstance(node, yaml.SequenceNode) else [node]
    if not items:
        reader.expected(node, field, what)
    values = []
    for index, item in enumerate(items):
        item_field = f"{field}[{index}]" if isinstance(node, yaml.SequenceNode) else field
        value = reader.scalar(item, item_field, what)
        text = _text(value) if not isinstance(value, (list, dict)) else None
        if text is None or (choices and text not in choices):
            reader.expected(item, item_field, what)
        values.append(text)
    return TextMatcher(values=tuple(values), casefold=casefold)


@dataclass(frozen=True, slots=True)
class TextCondition:
    """A text fact (``author.kind``, ``pr.title``, ``metadata.ticket``…) against a matcher."""

    attribute: str
    read: Callable[[Facts], Any]
    matcher: TextMatcher

    def evaluate(self, facts: Facts) -> Outcome:
        value = self.read(facts)
        try:
            actual = _text(value)
        except TypeError:
            raise Missing(f"{self.attribute} is not a text value") from None
        if actual is None:
            return Outcome(Truth.FALSE, (f"{self.attribute} is not set",))
        if self.matcher.matches(actual):
            how = f" ({self.matcher})" if self.matcher.pattern is not None else ""
            return Outcome(Truth.TRUE, (f"{self.attribute} is {actual!r}{how}",))
        return Outcome(Truth.FALSE, (f"{self.attribute} is {actual!r}, not {self.matcher}",))


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

_STATUS_GROUPS = {
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


def parse_paths(reader: Reader, attribute: str, node: yaml.Node, field: str) -> PathCondition:
    patterns = reader.strings(node, field, "a gitignore-style glob")
    for index, pattern in enumerate(patterns):
        if pattern.strip() in ("!", "") or pattern.lstrip().startswith("#"):
            target = node.value[index] if isinstance(node, yaml.SequenceNode) else node
            reader.expected(target, field, "a gitignore-style glob (not empty, not a comment)")
    try:
        spec = pathspec.GitIgnoreSpec.from_lines(patterns)
    except (ValueError, TypeError, re.error) as exc:
        reader.fail(node, field, f"invalid glob: {exc}")
    suffix = attribute[len("paths") :].lstrip(".")
    if suffix in _STATUS_GROUPS:
        return PathCondition(attribute, "any", _STATUS_GROUPS[suffix], tuple(patterns), spec)
    return PathCondition(attribute, suffix or "any", None, tuple(patterns), spec)


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


def parse_findings(reader: Reader, attribute: str, node: yaml.Node, field: str) -> Condition:
    if isinstance(node, yaml.ScalarNode):
        # ``review.findings: "> 0"`` counts every finding.
        return FindingsCondition(attribute, None, None, None, parse_comparison(reader, node, field))
    entries = reader.mapping(node, field, "a mapping {reviewer?, rule?, severity?, count?}")
    reader.check_keys(entries, field, ("reviewer", "rule", "severity", "count"))
    reviewers = rules = None
    severity = None
    count = Comparison(">", 0)
    for key, _, value in entries:
        sub = join(field, key)
        if key == "reviewer":
            reviewers = tuple(reader.strings(value, sub, "a reviewer name"))
        elif key == "rule":
            rules = tuple(reader.strings(value, sub, "a rule id"))
        elif key == "severity":
            severity = parse_severity(reader, value, sub)
        else:
            count = parse_comparison(reader, value, sub)
    return FindingsCondition(attribute, reviewers, rules, severity, count)


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
        actual = "missing" if raw is None else _CHECK_ALIASES.get(str(raw), str(raw))
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
        latest: dict[str, Mapping[str, Any]] = {}
        names: dict[str, str] = {}
        for review in reviews:
            if not isinstance(review, Mapping) or not isinstance(review.get("user"), str):
                continue
            # A comment does not withdraw an earlier approval (as on GitHub).
            if review.get("state") in ("approved", "changes_requested", "dismissed"):
                key = review["user"].casefold()
                latest[key] = review
                names[key] = review["user"]
        approvers, not_counted = [], []
        for key, review in latest.items():
            name = names[key]
            if review.get("state") != "approved":
                not_counted.append(f"{name} ({str(review.get('state')).replace('_', ' ')})")
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


def parse_approvals(reader: Reader, attribute: str, node: yaml.Node, field: str) -> Condition:
    if isinstance(node, yaml.ScalarNode):
        return ApprovalsCondition(attribute, reader.integer(node, field, minimum=1), None, None)
    entries = reader.mapping(node, field, "a mapping {count, from?} or a number of approvals")
    reader.check_keys(entries, field, ("count", "from"))
    count = None
    users = teams = None
    for key, _, value in entries:
        sub = join(field, key)
        if key == "count":
            count = reader.integer(value, sub, minimum=1)
        else:
            source = reader.mapping(value, sub, "a mapping {users?, teams?}")
            reader.check_keys(source, sub, ("users", "teams"))
            if not source:
                reader.fail(value, sub, "expected users and/or teams, found an empty mapping")
            for source_key, _, source_value in source:
                names = tuple(reader.strings(source_value, join(sub, source_key), "a name"))
                if source_key == "users":
                    users = names
                else:
                    teams = names
    if count is None:
        reader.fail(node, join(field, "count"), "missing key 'count' (the number of approvals)")
    return ApprovalsCondition(attribute, count, users, teams)


# -- the registry -----------------------------------------------------------------------------


def _writer(key: str) -> Callable[[Facts], Any]:
    return lambda facts: facts.writer(key)


def _pull_request(key: str) -> Callable[[Facts], Any]:
    return lambda facts: facts.pull_request(key)


def _intent(facts: Facts) -> Any:
    intent = facts.writer("intent")
    return intent.get("label") if isinstance(intent, Mapping) else intent


def _network(facts: Facts) -> Any:
    sandbox = facts.writer("sandbox")
    return sandbox.get("network") if isinstance(sandbox, Mapping) else sandbox


def _metadata(key: str) -> Callable[[Facts], Any]:
    def read(facts: Facts) -> Any:
        metadata = facts.writer("metadata")
        return metadata.get(key) if isinstance(metadata, Mapping) else None

    return read


def _text_parser(
    read: Callable[[Facts], Any], **options: Any
) -> Callable[[Reader, str, yaml.Node, str], Condition]:
    def parse(reader: Reader, attribute: str, node: yaml.Node, field: str) -> Condition:
        return TextCondition(attribute, read, parse_text(reader, node, field, **options))

    return parse


def _bool_parser(
    read: Callable[[Facts], Any],
) -> Callable[[Reader, str, yaml.Node, str], Condition]:
    def parse(reader: Reader, attribute: str, node: yaml.Node, field: str) -> Condition:
        return BoolCondition(attribute, read, reader.boolean(node, field))

    return parse


def _total_parser(key: str) -> Callable[[Reader, str, yaml.Node, str], Condition]:
    def parse(reader: Reader, attribute: str, node: yaml.Node, field: str) -> Condition:
        return TotalCondition(attribute, key, parse_comparison(reader, node, field))

    return parse


def _set_parser(
    read: Callable[[Facts], Any], mode: str, *, casefold: bool = False
) -> Callable[[Reader, str, yaml.Node, str], Condition]:
    def parse(reader: Reader, attribute: str, node: yaml.Node, field: str) -> Condition:
        values = tuple(reader.strings(node, field, "a name"))
        return SetCondition(attribute, read, mode, values, casefold)

    return parse


def _validation(reader: Reader, attribute: str, node: yaml.Node, field: str) -> Condition:
    matcher = parse_text(reader, node, field, choices=VALIDATION_STATES, regex=False)
    return ValidationCondition(attribute, matcher.values)


_Parser = Callable[[Reader, str, yaml.Node, str], Condition]

_PARSERS: dict[str, _Parser] = {
    "paths": parse_paths,
    "paths.only": parse_paths,
    "paths.none": parse_paths,
    "paths.added": parse_paths,
    "paths.removed": parse_paths,
    "paths.renamed": parse_paths,
    "paths.modified": parse_paths,
    "diff.files": _total_parser("files"),
    "diff.additions": _total_parser("additions"),
    "diff.deletions": _total_parser("deletions"),
    "diff.lines": _total_parser("lines"),
    "author.kind": _text_parser(_writer("kind"), choices=AUTHOR_KINDS, regex=False),
    "author.login": _text_parser(_pull_request("author"), casefold=True),
    "writer.model": _text_parser(_writer("model")),
    "writer.agent": _text_parser(_writer("agent")),
    "tags.any": _set_parser(_writer("tags"), "any"),
    "tags.all": _set_parser(_writer("tags"), "all"),
    "tags.none": _set_parser(_writer("tags"), "none"),
    "intent": _text_parser(_intent),
    "provenance.verified": _bool_parser(lambda facts: facts.passport("provenanceVerified")),
    "safety.network": _text_parser(_network, choices=NETWORK_MODES, regex=False),
    "validation": _validation,
    "review.findings": parse_findings,
    "pr.draft": _bool_parser(_pull_request("draft")),
    "pr.labels.any": _set_parser(_pull_request("labels"), "any", casefold=True),
    "pr.labels.all": _set_parser(_pull_request("labels"), "all", casefold=True),
    "pr.labels.none": _set_parser(_pull_request("labels"), "none", casefold=True),
    "pr.title": _text_parser(_pull_request("title")),
    "pr.base": _text_parser(_pull_request("base")),
    "approvals": parse_approvals,
}

ATTRIBUTES: tuple[str, ...] = tuple(_PARSERS)
"""Every attribute key with a fixed name."""

ATTRIBUTE_PREFIXES: tuple[str, ...] = ("metadata.", "checks.")
"""Attribute keys that take a name after the prefix: ``metadata.ticket``, ``checks.ci/tests``."""


def parse_condition(
    reader: Reader, key: str, key_node: yaml.Node, node: yaml.Node, field: str
) -> Condition:
    """The condition for attribute ``key`` written as ``node``."""
    parser = _PARSERS.get(key)
    if parser is not None:
        return parser(reader, key, node, field)
    if key.startswith("metadata.") and len(key) > len("metadata."):
        return _text_parser(_metadata(key[len("metadata.") :]))(reader, key, node, field)
    if key.startswith("checks.") and len(key) > len("checks."):
        matcher = parse_text(reader, node, field, choices=CHECK_STATES, regex=False)
        return CheckCondition(key, key[len("checks.") :], matcher.values)
    known = [*ATTRIBUTES, "all", "any", "not", "metadata.<key>", "checks.<context>"]
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        reader.fail(
            key_node,
            field,
            f"unknown attribute {key!r}; did you mean {close[0]!r}? "
            "(`writgate policy schema` lists every attribute)",
        )
    reader.fail(
        key_node,
        field,
        f"unknown attribute {key!r}; expected all, any, not or one of: " + ", ".join(known),
    )


def team_names(conditions: Iterable[Condition]) -> set[str]:
    """The teams named by the approvals conditions among ``conditions``."""
    names: set[str] = set()
    for condition in conditions:
        if isinstance(condition, ApprovalsCondition) and condition.teams:
            names.update(condition.teams)
    return names
