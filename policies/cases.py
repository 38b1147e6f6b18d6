"""Policy tests: a YAML file of cases, each a passport, a PR state and the expected outcome.

::

    teams: {payments: [alice, bob]}        # optional: what the forge would resolve teams to
    cases:
      - name: docs-only change is allowed
        passport: passports/docs.json      # a passport file (relative to this file) or an
                                           # inline statement (a mapping with predicate)
        pr: pr/approved.json               # optional: a PR state file or an inline mapping
        expect:
          decision: allow                  # allow | block | pending
          rules: {docs-only: satisfied}    # optional: rule name -> expected state

Reading the files named here is the only I/O. Passport files are read by the ``load_passport``
function given to :func:`load_cases` (the CLI passes the passport package's loader, which also
accepts DSSE envelopes); by default a file must hold the bare statement JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from writgate.errors import InputError

from ._yaml import Reader, compose, join
from .errors import PolicyError
from .evaluator import Decision, evaluate
from .model import Policy

__all__ = ["CaseResult", "PolicyCase", "load_cases", "run_cases"]

RULE_STATES = ("satisfied", "unsatisfied", "pending", "skipped", "error")
DECISIONS = ("allow", "block", "pending")

PassportLoader = Callable[[Path], Mapping[str, Any]]


@dataclass(frozen=True)
class PolicyCase:
    """One case: inputs and expectations, with where it was written."""

    name: str
    statement: Mapping[str, Any]
    pr: Mapping[str, Any] | None
    expected_decision: str
    expected_rules: Mapping[str, str] = field(default_factory=dict)
    line: int | None = None
    teams: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one case: passed when ``failures`` is empty."""

    case: PolicyCase
    decision: Decision
    failures: list[str]

    @property
    def passed(self) -> bool:
        """Whether every expectation held."""
        return not self.failures


def read_json_statement(path: Path) -> Mapping[str, Any]:
    """The default passport loader: a file holding the bare statement JSON."""
    try:
        document = json.loads(path.read_bytes())
    except OSError as exc:
        raise InputError(f"cannot read passport: {exc.strerror}", file=str(path)) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"not JSON: {exc}", file=str(path)) from exc
    if not isinstance(document, dict):
        raise InputError("expected a passport statement (a JSON object)", file=str(path))
    return document


def load_cases(
    path: str | Path, *, load_passport: PassportLoader = read_json_statement
) -> list[PolicyCase]:
    """Read a cases file; every error names file, line and column."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise PolicyError(f"cannot read cases file: {exc.strerror}", file=source) from exc
    except UnicodeDecodeError as exc:
        raise PolicyError(f"not UTF-8 text (byte {exc.start})", file=source) from exc
    try:
        return _parse_cases(text, source, path.parent, load_passport)
    except RecursionError as exc:
        raise PolicyError("the cases file is nested too deeply", file=source) from exc


def _parse_cases(
    text: str, source: str, base_dir: Path, load_passport: PassportLoader
) -> list[PolicyCase]:
    reader = Reader(source)
    root = compose(text, source)
    if root is None:
        raise PolicyError("the cases file is empty; expected a mapping with cases", file=source)
    reader.plain(root)
    entries = reader.mapping(root, "", "a mapping with cases (and optional teams)")
    reader.check_keys(entries, "", ("cases", "teams"))
    nodes = {key: value for key, _, value in entries}
    teams: dict[str, list[str]] = {}
    if "teams" in nodes:
        for team, _, members in reader.mapping(nodes["teams"], "teams", "team name -> logins"):
            member_nodes = reader.sequence(members, join("teams", team), "a list of logins")
            teams[team] = [
                reader.string(m, f"teams.{team}[{i}]", "a login")
                for i, m in enumerate(member_nodes)
            ]
    if "cases" not in nodes:
        reader.fail(root, "cases", "missing key 'cases' (a list of cases)")
    items = reader.sequence(nodes["cases"], "cases", "a list of cases")
    if not items:
        reader.expected(nodes["cases"], "cases", "a non-empty list of cases")
    cases = []
    names: set[str] = set()
    for index, item in enumerate(items):
        case = _case(reader, item, f"cases[{index}]", base_dir, load_passport, teams)
        if case.name in names:
            reader.fail(item, f"cases[{index}].name", f"duplicate case name {case.name!r}")
        names.add(case.name)
        cases.append(case)
    return cases


def _case(
    reader: Reader,
    node: yaml.Node,
    field_name: str,
    base_dir: Path,
    load_passport: PassportLoader,
    teams: Mapping[str, Sequence[str]],
) -> PolicyCase:
    entries = reader.mapping(node, field_name, "a case (name, passport, pr?, expect)")
    reader.check_keys(entries, field_name, ("name", "passport", "pr", "expect"))
    nodes = {key: value for key, _, value in entries}
    for required in ("name", "passport", "expect"):
        if required not in nodes:
            reader.fail(node, join(field_name, required), f"missing key {required!r}")
    name = reader.string(nodes["name"], join(field_name, "name"), "the case's name")
    statement = _document(
        reader, nodes["passport"], join(field_name, "passport"), base_dir, load_passport, True
    )
    pr = None
    if "pr" in nodes and not _is_null(nodes["pr"]):
        pr = _document(reader, nodes["pr"], join(field_name, "pr"), base_dir, _read_pr, False)
    expect_field = join(field_name, "expect")
    expect = reader.mapping(nodes["expect"], expect_field, "a mapping {decision, rules?}")
    reader.check_keys(expect, expect_field, ("decision", "rules"))
    expect_nodes = {key: value for key, _, value in expect}
    if "decision" not in expect_nodes:
        reader.fail(nodes["expect"], join(expect_field, "decision"), "missing key 'decision'")
    decision_field = join(expect_field, "decision")
    decision = reader.scalar(expect_nodes["decision"], decision_field, "allow, block or pending")
    if decision not in DECISIONS:
        reader.expected(expect_nodes["decision"], decision_field, "allow, block or pending")
    rules: dict[str, str] = {}
    if "rules" in expect_nodes:
        rules_field = join(expect_field, "rules")
        for rule, _, state_node in reader.mapping(
            expect_nodes["rules"], rules_field, "a mapping of rule name -> state"
        ):
            state = reader.scalar(state_node, join(rules_field, rule), ", ".join(RULE_STATES))
            if state not in RULE_STATES:
                reader.expected(state_node, join(rules_field, rule), ", ".join(RULE_STATES))
            rules[rule] = state
    return PolicyCase(
        name=name,
        statement=statement,
        pr=pr,
        expected_decision=decision,
        expected_rules=rules,
        line=node.start_mark.line + 1,
        teams=teams,
    )


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _read_pr(path: Path) -> Mapping[str, Any]:
    """A PR state file: JSON (or YAML) holding one object."""
    try:
        document = yaml.safe_load(path.read_bytes())
    except OSError as exc:
        raise InputError(f"cannot read PR state: {exc.strerror}", file=str(path)) from exc
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        raise InputError("not a JSON or YAML document", file=str(path)) from exc
    if not isinstance(document, dict):
        raise InputError("expected a PR state (an object)", file=str(path))
    return document


def _document(
    reader: Reader,
    node: yaml.Node,
    field_name: str,
    base_dir: Path,
    load: PassportLoader,
    is_passport: bool,
) -> Mapping[str, Any]:
    what = (
        "a passport file path or an inline statement (a mapping with predicate)"
        if is_passport
        else "a PR state file path or an inline PR state mapping"
    )
    if isinstance(node, yaml.MappingNode):
        value = reader.plain(node, field_name)
        if is_passport and not isinstance(value.get("predicate"), dict):
            reader.expected(node, field_name, what)
        return dict(value)
    target = reader.string(node, field_name, what)
    try:
        return load(base_dir / target)
    except InputError as exc:
        reader.fail(node, field_name, str(exc))


def run_cases(policy: Policy, cases: Sequence[PolicyCase]) -> list[CaseResult]:
    """Evaluate every case and compare with its expectations."""
    results = []
    known = {rule.name for rule in policy.rules}
    for case in cases:
        decision = evaluate(policy, case.statement, case.pr, team_resolver=case.teams or None)
        failures = []
        if decision.decision != case.expected_decision:
            why = "; ".join(f"{r.name}: {r.state}" for r in decision.deciding_rules)
            failures.append(
                f"decision: expected {case.expected_decision}, got {decision.decision}"
                + (f" ({why})" if why else " (no rule applies)")
            )
        for name, expected in case.expected_rules.items():
            if name not in known:
                failures.append(f"rule {name!r}: the policy has no such rule")
                continue
            result = decision.rule(name)
            if result.state != expected:
                reasons = "; ".join(result.reasons)
                failures.append(f"rule {name}: expected {expected}, got {result.state} ({reasons})")
        results.append(CaseResult(case, decision, failures))
    return results
