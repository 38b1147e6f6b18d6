"""Positioned YAML: read a document as PyYAML nodes so that every error names line and column.

The policy and cases loaders never see plain Python values straight from ``yaml.safe_load``: they
walk the composed node tree through a :class:`Reader`, which checks the shape of each node, rejects
duplicate keys, merge keys, custom tags and recursive aliases, and raises :class:`PolicyError`
pointing at the offending node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NoReturn

import yaml

from .errors import PolicyError

__all__ = ["JSONValue", "Reader", "compose"]

JSONValue = Any  # str | int | float | bool | None | list[JSONValue] | dict[str, JSONValue]

# A document larger than this (counting every node an alias expands to) is refused, so that an
# "billion laughs" alias bomb cannot exhaust memory.
MAX_NODES = 200_000

# Integers beyond this cannot be written as RFC 8785 canonical JSON (the digest).
MAX_INTEGER = 2**53 - 1

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"


def compose(text: str, source: str) -> yaml.Node | None:
    """Parse ``text`` into one YAML node tree (``None`` for an empty document)."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)  # type: ignore[no-any-return]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = "; ".join(part for part in (exc.context, exc.problem) if part) or "malformed"
        raise PolicyError(
            f"invalid YAML: {problem}",
            file=source,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from exc
    except yaml.reader.ReaderError as exc:
        # A reader error knows the character offset only: turn it into a line and column.
        offset = exc.position if isinstance(exc.position, int) else 0
        line_start = text.rfind("\n", 0, offset) + 1
        raise PolicyError(
            f"invalid YAML: unacceptable character #x{exc.character:04x}"
            if isinstance(exc.character, int)
            else "invalid YAML: the file is not valid text",
            file=source,
            line=text.count("\n", 0, offset) + 1,
            column=offset - line_start + 1,
        ) from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"invalid YAML: {exc}", file=source) from exc
    except RecursionError as exc:
        raise PolicyError("invalid YAML: the document is nested too deeply", file=source) from exc


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "null"
    if node.tag == _BOOL:
        return f"the boolean {node.value}"
    if node.tag in (_INT, _FLOAT):
        return f"the number {node.value}"
    return f"the string {node.value!r}" if len(node.value) <= 40 else "a string"


@dataclass(frozen=True)
class Reader:
    """Typed, positioned access to the nodes of one document."""

    source: str

    def fail(self, node: yaml.Node | None, field: str | None, message: str) -> NoReturn:
        """Raise a :class:`PolicyError` about ``node``."""
        mark = node.start_mark if node is not None else None
        raise PolicyError(
            message,
            file=self.source,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
            field=field or None,
        )

    def expected(self, node: yaml.Node, field: str, what: str) -> NoReturn:
        """Raise "expected <what>, found <node kind>"."""
        self.fail(node, field, f"expected {what}, found {_kind(node)}")

    # -- shapes -------------------------------------------------------------------------------

    def mapping(
        self, node: yaml.Node, field: str, what: str = "a mapping"
    ) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """The ``(key, key_node, value_node)`` entries of a mapping node, keys unique strings."""
        if not isinstance(node, yaml.MappingNode):
            self.expected(node, field, what)
        seen: dict[str, yaml.Node] = {}
        entries: list[tuple[str, yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                self.fail(key_node, field, "YAML merge keys (<<) are not supported")
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in (_STR, _INT):
                self.expected(key_node, field, "a string key")
            key = str(key_node.value)
            if key in seen:
                first = seen[key].start_mark.line + 1
                self.fail(
                    key_node, _join(field, key), f"duplicate key (first given on line {first})"
                )
            seen[key] = key_node
            entries.append((key, key_node, value_node))
        return entries

    def sequence(self, node: yaml.Node, field: str, what: str = "a list") -> list[yaml.Node]:
        """The items of a sequence node."""
        if not isinstance(node, yaml.SequenceNode):
            self.expected(node, field, what)
        return list(node.value)

    def scalar(self, node: yaml.Node, field: str, what: str = "a value") -> JSONValue:
        """The value of a scalar node: str, int, float, bool or None."""
        if not isinstance(node, yaml.ScalarNode):
            self.expected(node, field, what)
        tag = node.tag
        text = node.value
        if tag in (_STR, _TIMESTAMP):
            return text  # a date stays the text the author wrote
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return text.lower() in ("true", "yes", "on", "y")
        if tag in (_INT, _FLOAT):
            constructor = yaml.constructor.SafeConstructor()
            try:
                value = constructor.construct_object(node)
            except (yaml.YAMLError, ValueError, OverflowError):
                self.expected(node, field, what)
            if isinstance(value, float) and not math.isfinite(value):
                self.expected(node, field, "a finite number")
            if isinstance(value, int) and abs(value) > MAX_INTEGER:
                self.expected(node, field, "a number between -(2**53 - 1) and 2**53 - 1")
            return value
        self.fail(node, field, f"unsupported YAML tag {tag!r}; expected {what}")

    def string(self, node: yaml.Node, field: str, what: str = "a string") -> str:
        """A non-empty string scalar."""
        value = self.scalar(node, field, what)
        if not isinstance(value, str) or not value.strip():
            self.expected(node, field, what)
        return value

    def boolean(self, node: yaml.Node, field: str) -> bool:
        """A boolean scalar."""
        value = self.scalar(node, field, "true or false")
        if not isinstance(value, bool):
            self.expected(node, field, "true or false")
        return value

    def integer(self, node: yaml.Node, field: str, *, minimum: int = 0) -> int:
        """An integer scalar of at least ``minimum``."""
        what = f"an integer >= {minimum}"
        value = self.scalar(node, field, what)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.expected(node, field, what)
        return value

    def strings(self, node: yaml.Node, field: str, what: str = "a string") -> list[str]:
        """A string or a non-empty list of strings."""
        if isinstance(node, yaml.SequenceNode):
            items = self.sequence(node, field)
            if not items:
                self.expected(node, field, f"{what} or a non-empty list of them")
            return [self.string(item, f"{field}[{i}]", what) for i, item in enumerate(items)]
        return [self.string(node, field, f"{what} or a list of them")]

    def check_keys(
        self,
        entries: list[tuple[str, yaml.Node, yaml.Node]],
        field: str,
        allowed: tuple[str, ...],
    ) -> None:
        """Reject any key not in ``allowed``, naming the keys that are."""
        for key, key_node, _ in entries:
            if key not in allowed:
                self.fail(
                    key_node,
                    _join(field, key),
                    f"unknown key {key!r}; expected one of: {', '.join(allowed)}",
                )

    # -- plain values -------------------------------------------------------------------------

    def plain(self, node: yaml.Node, field: str = "") -> JSONValue:
        """The whole subtree as JSON-ready values (checked: no cycles, bounded size)."""
        budget = [MAX_NODES]
        return self._plain(node, field, budget, set())

    def _plain(self, node: yaml.Node, field: str, budget: list[int], active: set[int]) -> JSONValue:
        budget[0] -= 1
        if budget[0] < 0:
            self.fail(node, field, f"the document is too large (more than {MAX_NODES} nodes)")
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, field)
        if id(node) in active:
            self.fail(node, field, "recursive YAML alias")
        active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [
                    self._plain(item, f"{field}[{i}]", budget, active)
                    for i, item in enumerate(node.value)
                ]
            return {
                key: self._plain(value, _join(field, key), budget, active)
                for key, _, value in self.mapping(node, field)
            }
        finally:
            active.discard(id(node))


def _join(field: str, key: str) -> str:
    return f"{field}.{key}" if field else key


def join(field: str, key: str) -> str:
    """``rules[0]`` + ``if`` -> ``rules[0].if``."""
    return _join(field, key)
