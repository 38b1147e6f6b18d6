"""The attribute keys of the policy language (DESIGN.md §9): how each is written in YAML.

:func:`parse_condition` turns one attribute key of a predicate (``paths.only``, ``diff.lines``,
``approvals``, ``metadata.ticket``, ``checks.ci/tests`` …) and its YAML node into a condition,
raising a positioned :class:`~policies.PolicyError` that says what was expected.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from typing import Any

import pathspec
import yaml

from ._yaml import Reader, join
from .conditions import (
    STATUS_GROUPS,
    ApprovalsCondition,
    BoolCondition,
    CheckCondition,
    Condition,
    FindingsCondition,
    PathCondition,
    SetCondition,
    TextCondition,
    TotalCondition,
    ValidationCondition,
)
from .facts import Facts
from .matchers import Comparison, parse_comparison, parse_severity, parse_text

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_PREFIXES",
    "AUTHOR_KINDS",
    "CHECK_STATES",
    "NETWORK_MODES",
    "VALIDATION_STATES",
    "parse_condition",
]

AUTHOR_KINDS = ("agent", "human", "external")
NETWORK_MODES = ("none", "restricted", "open")
VALIDATION_STATES = ("passed", "failed", "missing")
CHECK_STATES = ("success", "failure", "pending", "missing")


def parse_paths(reader: Reader, attribute: str, node: yaml.Node, field: str) -> PathCondition:
    """``paths…: <glob or list of globs>`` (gitignore syntax, checked now, not at evaluation)."""
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
    if suffix in STATUS_GROUPS:
        return PathCondition(attribute, "any", STATUS_GROUPS[suffix], tuple(patterns), spec)
    return PathCondition(attribute, suffix or "any", None, tuple(patterns), spec)


def parse_findings(reader: Reader, attribute: str, node: yaml.Node, field: str) -> Condition:
    """``review.findings: {reviewer?, rule?, severity?, count?}`` or a bare count."""
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


def parse_approvals(reader: Reader, attribute: str, node: yaml.Node, field: str) -> Condition:
    """``approvals: {count, from?: {users?, teams?}}`` or a bare count."""
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
