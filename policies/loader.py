"""Load policy YAML into a :class:`~policies.model.Policy`, with positioned errors.

A policy file::

    policy: writgate/v1            # required, the language version
    name: payments-guard           # required
    description: …                 # optional
    extends: base.yaml             # optional; a path relative to this file, ``library:<name>``,
                                   # or a list of them (merged in order)
    defaults: {whenNoRuleApplies: pending}   # allow | block | pending
    teams: {payments: [alice, bob]}
    rules: [...]

``extends`` merges: the base rules come first; a rule with the name of a base rule replaces it in
place; teams merge by name; ``defaults`` are inherited unless set. Cycles are errors.
The digest is ``sha256:`` + hex of the RFC 8785 canonical JSON of the merged document.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785
import yaml

from ._yaml import JSONValue, Reader, compose, join
from .attributes import parse_condition
from .errors import PolicyError
from .model import AllOf, AnyOf, Attribute, DecisionValue, NotOf, Policy, Predicate, Rule

__all__ = ["LANGUAGE_VERSION", "LIBRARY_DIR", "library_path", "load_policy", "parse_policy"]

LANGUAGE_VERSION = "writgate/v1"
LIBRARY_DIR = Path(__file__).parent / "library"
LIBRARY_PREFIX = "library:"

TOP_LEVEL_KEYS = ("policy", "name", "description", "extends", "defaults", "teams", "rules")
RULE_KEYS = ("name", "description", "if", "block", "require", "warn", "allow")
ACTIONS = ("block", "require", "warn", "allow")
DECISIONS = ("allow", "block", "pending")
RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$")
MAX_DEPTH = 32
MAX_POLICY_BYTES = 1_000_000


def library_path(name: str) -> Path:
    """The file of a built-in library policy: ``library_path("default")``."""
    candidate = LIBRARY_DIR / f"{name}.yaml"
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name) or not candidate.is_file():
        names = ", ".join(sorted(p.stem for p in LIBRARY_DIR.glob("*.yaml")))
        raise PolicyError(f"no library policy {name!r}; the library has: {names}")
    return candidate


def load_policy(path: str | Path) -> Policy:
    """Load and merge the policy file at ``path`` (or ``"library:<name>"``)."""
    if isinstance(path, str) and path.startswith(LIBRARY_PREFIX):
        path = library_path(path[len(LIBRARY_PREFIX) :])
    return _finish(_load_file(Path(path), ()))


def parse_policy(text: str, *, source: str = "<string>", base_dir: Path | None = None) -> Policy:
    """Parse policy YAML ``text``; ``extends`` paths resolve against ``base_dir`` (default: cwd)."""
    document = _parse(text, source, base_dir or Path.cwd(), ())
    return _finish(document)


# -- documents -------------------------------------------------------------------------------


@dataclass
class _Document:
    """One file's contribution, already merged with what it extends."""

    source: str
    name: str | None = None
    description: str | None = None
    when_no_rule_applies: DecisionValue | None = None
    teams: dict[str, tuple[str, ...]] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)


def _read_text(path: Path, source: str, origin: tuple[Reader, yaml.Node] | None) -> str:
    def fail(message: str) -> PolicyError:
        if origin is not None:
            reader, node = origin
            mark = node.start_mark
            return PolicyError(
                message,
                file=reader.source,
                line=mark.line + 1,
                column=mark.column + 1,
                field="extends",
            )
        return PolicyError(message, file=source)

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise fail(f"policy file not found: {path}") from None
    except IsADirectoryError:
        raise fail(f"expected a policy file, found a directory: {path}") from None
    except OSError as exc:
        raise fail(f"cannot read policy file {path}: {exc.strerror}") from exc
    if len(data) > MAX_POLICY_BYTES:
        raise fail(f"policy file too large ({len(data)} bytes; at most {MAX_POLICY_BYTES})")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"not UTF-8 text (byte {exc.start})", file=source) from exc


def _load_file(
    path: Path, stack: tuple[Path, ...], origin: tuple[Reader, yaml.Node] | None = None
) -> _Document:
    resolved = path.resolve()
    source = str(path)
    if resolved in stack:
        chain = " -> ".join(str(p) for p in (*stack, resolved))
        assert origin is not None
        reader, node = origin
        reader.fail(node, "extends", f"extends cycle: {chain}")
    text = _read_text(path, source, origin)
    return _parse(text, source, resolved.parent, (*stack, resolved))


def _parse(text: str, source: str, base_dir: Path, stack: tuple[Path, ...]) -> _Document:
    try:
        return _parse_document(text, source, base_dir, stack)
    except RecursionError as exc:
        raise PolicyError("the policy is nested too deeply", file=source) from exc


def _parse_document(text: str, source: str, base_dir: Path, stack: tuple[Path, ...]) -> _Document:
    reader = Reader(source)
    root = compose(text, source)
    if root is None:
        raise PolicyError(
            "the policy is empty; expected a mapping with policy, name and rules", file=source
        )
    entries = reader.mapping(root, "", "a policy (a mapping with policy, name and rules)")
    reader.plain(root)  # rejects recursive aliases and alias bombs before anything else
    reader.check_keys(entries, "", TOP_LEVEL_KEYS)
    nodes = {key: value for key, _, value in entries}

    if "policy" not in nodes:
        reader.fail(root, "policy", f"missing key 'policy' (expected policy: {LANGUAGE_VERSION})")
    version = reader.scalar(nodes["policy"], "policy", LANGUAGE_VERSION)
    if version != LANGUAGE_VERSION:
        reader.expected(nodes["policy"], "policy", f"the language version {LANGUAGE_VERSION!r}")

    document = _Document(source=source)
    if "extends" in nodes:
        for base in _extends(reader, nodes["extends"], base_dir, stack):
            _merge(document, base)
    elif "rules" not in nodes:
        reader.fail(root, "rules", "missing key 'rules' (a list of rules)")

    if "name" not in nodes:
        reader.fail(root, "name", "missing key 'name' (the policy's name)")
    document.name = reader.string(nodes["name"], "name", "the policy's name (a string)")
    if "description" in nodes:
        document.description = reader.string(nodes["description"], "description")
    if "defaults" in nodes:
        document.when_no_rule_applies = _defaults(reader, nodes["defaults"])
    if "teams" in nodes:
        document.teams.update(_teams(reader, nodes["teams"]))
    if "rules" in nodes:
        own = _rules(reader, nodes["rules"])
        _merge(document, _Document(source=source, rules=own))
    return document


def _extends(
    reader: Reader, node: yaml.Node, base_dir: Path, stack: tuple[Path, ...]
) -> list[_Document]:
    items = reader.sequence(node, "extends") if isinstance(node, yaml.SequenceNode) else [node]
    bases = []
    for index, item in enumerate(items):
        field_name = f"extends[{index}]" if isinstance(node, yaml.SequenceNode) else "extends"
        target = reader.string(
            item, field_name, "a policy file path (relative to this file) or library:<name>"
        )
        if target.startswith(LIBRARY_PREFIX):
            try:
                path = library_path(target[len(LIBRARY_PREFIX) :])
            except PolicyError as exc:
                reader.fail(item, field_name, exc.message)
        else:
            path = base_dir / target
        bases.append(_load_file(path, stack, (reader, item)))
    return bases


def _merge(into: _Document, base: _Document) -> None:
    """Merge ``base`` into ``into``: rules replace same-named ones in place, else append."""
    if base.when_no_rule_applies is not None:
        into.when_no_rule_applies = base.when_no_rule_applies
    into.teams.update(base.teams)
    positions = {rule.name: index for index, rule in enumerate(into.rules)}
    for rule in base.rules:
        if rule.name in positions:
            into.rules[positions[rule.name]] = rule
        else:
            positions[rule.name] = len(into.rules)
            into.rules.append(rule)


def _defaults(reader: Reader, node: yaml.Node) -> DecisionValue:
    entries = reader.mapping(node, "defaults", "a mapping {whenNoRuleApplies: allow|block|pending}")
    reader.check_keys(entries, "defaults", ("whenNoRuleApplies",))
    value: DecisionValue = "pending"
    for _, _, value_node in entries:
        text = reader.scalar(value_node, "defaults.whenNoRuleApplies", "allow, block or pending")
        if text not in DECISIONS:
            reader.expected(value_node, "defaults.whenNoRuleApplies", "allow, block or pending")
        value = text
    return value


def _teams(reader: Reader, node: yaml.Node) -> dict[str, tuple[str, ...]]:
    teams = {}
    for name, _, members in reader.mapping(node, "teams", "a mapping of team name to logins"):
        field_name = join("teams", name)
        logins = reader.sequence(members, field_name, "a list of logins")
        teams[name] = tuple(
            reader.string(login, f"{field_name}[{i}]", "a login") for i, login in enumerate(logins)
        )
    return teams


def _rules(reader: Reader, node: yaml.Node) -> list[Rule]:
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(reader.sequence(node, "rules", "a list of rules")):
        rule = _rule(reader, item, f"rules[{index}]")
        if rule.name in seen:
            reader.fail(
                item,
                f"rules[{index}].name",
                f"duplicate rule name {rule.name!r} (also rules[{seen[rule.name]}])",
            )
        seen[rule.name] = index
        rules.append(rule)
    return rules


def _rule(reader: Reader, node: yaml.Node, field_name: str) -> Rule:
    entries = reader.mapping(
        node, field_name, "a rule (a mapping with name and one of block, require, warn, allow)"
    )
    reader.check_keys(entries, field_name, RULE_KEYS)
    nodes = {key: value for key, _, value in entries}
    key_nodes = {key: key_node for key, key_node, _ in entries}
    if "name" not in nodes:
        reader.fail(node, join(field_name, "name"), "missing key 'name' (the rule's name)")
    name = reader.string(nodes["name"], join(field_name, "name"), "a rule name")
    if not RULE_NAME.match(name):
        reader.expected(
            nodes["name"],
            join(field_name, "name"),
            "a rule name of letters, digits and _ . : / - (at most 100, no spaces)",
        )
    actions = [key for key in nodes if key in ACTIONS]
    if not actions:
        reader.fail(
            node, field_name, f"rule {name!r} needs exactly one of block, require, warn, allow"
        )
    if len(actions) > 1:
        reader.fail(
            key_nodes[actions[1]],
            join(field_name, actions[1]),
            f"rule {name!r} has both {actions[0]!r} and {actions[1]!r}; "
            "expected exactly one of block, require, warn, allow",
        )
    kind = actions[0]
    action_node = nodes[kind]
    action_field = join(field_name, kind)
    description = None
    if "description" in nodes:
        description = reader.string(nodes["description"], join(field_name, "description"))
    condition = None
    if "if" in nodes:
        condition = _predicate(reader, nodes["if"], join(field_name, "if"), 0)
    requirement = message = None
    if kind == "require":
        requirement = _predicate(reader, action_node, action_field, 0)
    elif kind == "allow":
        if reader.scalar(action_node, action_field, "true") is not True:
            reader.expected(action_node, action_field, "true (allow: true)")
    else:
        message = reader.string(action_node, action_field, f"the {kind} message (a string)")
    return Rule(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        description=description,
        condition=condition,
        requirement=requirement,
        message=message,
        source=reader.plain(node, field_name),
    )


_PREDICATE = "a predicate (a mapping of attributes, all, any or not)"


def _predicate(reader: Reader, node: yaml.Node, field_name: str, depth: int) -> Predicate:
    if depth > MAX_DEPTH:
        reader.fail(node, field_name, f"predicates nested deeper than {MAX_DEPTH} levels")
    entries = reader.mapping(node, field_name, _PREDICATE)
    if not entries:
        reader.expected(node, field_name, _PREDICATE)
    parts: list[Predicate] = []
    for key, key_node, value in entries:
        sub = join(field_name, key)
        if key in ("all", "any"):
            items = reader.sequence(value, sub, f"a non-empty list of predicates for {key!r}")
            if not items:
                reader.expected(value, sub, f"a non-empty list of predicates for {key!r}")
            children = tuple(
                _predicate(reader, item, f"{sub}[{i}]", depth + 1) for i, item in enumerate(items)
            )
            parts.append(AllOf(children) if key == "all" else AnyOf(children))
        elif key == "not":
            parts.append(NotOf(_predicate(reader, value, sub, depth + 1)))
        else:
            parts.append(Attribute(parse_condition(reader, key, key_node, value, sub)))
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


# -- the finished policy ---------------------------------------------------------------------


def _finish(document: _Document) -> Policy:
    assert document.name is not None
    when = document.when_no_rule_applies or "pending"
    merged: dict[str, JSONValue] = {"policy": LANGUAGE_VERSION, "name": document.name}
    if document.description is not None:
        merged["description"] = document.description
    merged["defaults"] = {"whenNoRuleApplies": when}
    merged["teams"] = {name: list(members) for name, members in sorted(document.teams.items())}
    merged["rules"] = [dict(rule.source) for rule in document.rules]
    return Policy(
        name=document.name,
        rules=tuple(document.rules),
        when_no_rule_applies=when,
        teams=dict(document.teams),
        description=document.description,
        source=document.source,
        document=merged,
        digest=digest_of(merged),
    )


def digest_of(document: Any) -> str:
    """``sha256:`` + hex of the RFC 8785 canonical JSON of ``document``."""
    return "sha256:" + hashlib.sha256(rfc8785.dumps(document)).hexdigest()
