"""The value forms shared by attributes: comparisons, severities, text matchers, sampled lists."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from ._yaml import Reader, join

__all__ = [
    "Comparison",
    "SeverityComparison",
    "TextMatcher",
    "parse_comparison",
    "parse_severity",
    "parse_text",
    "sample",
    "text_of",
]

SEVERITIES = ("info", "warning", "error")

# How many files / findings / logins a reason lists before "(+N more)".
SAMPLE = 5


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
        """Whether ``actual <op> value``."""
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
        """Whether the severity ``actual`` compares as asked."""
        # A severity the reviewer invented is treated as the most severe, never ignored.
        rank = SEVERITIES.index(actual) if actual in SEVERITIES else len(SEVERITIES) - 1
        return _OPERATORS[self.op](rank, SEVERITIES.index(self.severity))

    def __str__(self) -> str:
        return self.severity if self.op == "==" else f"{self.op} {self.severity}"


def parse_severity(reader: Reader, node: yaml.Node, field: str) -> SeverityComparison:
    """A severity (``warning``, meaning ``==``) or ``"<op> <severity>"``."""
    what = 'a severity (info, warning, error), optionally compared: ">= warning"'
    value = reader.scalar(node, field, what)
    if isinstance(value, str):
        match = _COMPARISON.match(value)
        op, name = (match.group(1), match.group(2)) if match else ("==", value.strip())
        if name in SEVERITIES:
            return SeverityComparison(op, name)
    reader.expected(node, field, what)


# -- text -----------------------------------------------------------------------------------------


def text_of(value: Any) -> str | None:
    """A scalar as the text a policy compares (``true``, ``2``); None stays None."""
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
        """Whether ``actual`` is one of the values, or the pattern is found in it."""
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
        # Compare with the text as written: ``ticket: 0042`` means "0042", ``flag: yes`` "yes".
        text = None if value is None else str(item.value)
        if text is None or (choices and text not in choices):
            reader.expected(item, item_field, what)
        values.append(text)
    return TextMatcher(values=tuple(values), casefold=casefold)
