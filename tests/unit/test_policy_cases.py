"""Policy test cases (loading, positioned errors, running) and simulation over passports."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

import policies
from policies import PolicyError, SimulationInput, load_cases, run_cases, simulate
from tests.unit.policy_inputs import HEAD, base_pr, file, policy_of, statement

EXAMPLES = Path(__file__).parents[2] / "examples" / "policies"


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_example_cases_pass() -> None:
    policy = policies.load_policy(EXAMPLES / "payments-guard.yaml")
    cases = load_cases(EXAMPLES / "payments-guard.cases.yaml")
    results = run_cases(policy, cases)
    assert len(results) == 7
    assert [r.failures for r in results] == [[]] * 7
    assert cases[0].line == 3 and cases[0].pr is None
    assert cases[3].pr is not None and len(cases[3].pr["reviews"]) == 2


def test_failures_say_what_differed(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps(statement()))
    cases_file = write(
        tmp_path / "cases.yaml",
        """\
        teams: {payments: [alice]}
        cases:
          - name: wrong decision and states
            passport: p.json
            expect:
              decision: allow
              rules: {needs-approval: satisfied, missing-rule: skipped, docs: skipped}
        """,
    )
    policy = policy_of(
        [
            {"name": "needs-approval", "require": {"approvals": 1}},
            {"name": "docs", "if": {"paths.only": ["docs/**"]}, "allow": True},
        ]
    )
    (result,) = run_cases(policy, load_cases(cases_file))
    assert not result.passed
    assert result.failures == [
        "decision: expected allow, got pending (needs-approval: pending)",
        "rule needs-approval: expected satisfied, got pending (approvals: no PR state yet)",
        "rule 'missing-rule': the policy has no such rule",
    ]
    assert result.case.teams == {"payments": ["alice"]}


def test_cases_teams_resolve_approvals(tmp_path: Path) -> None:
    (tmp_path / "pr.json").write_text(
        json.dumps(
            {**base_pr(), "reviews": [{"user": "sam", "state": "approved", "commitSha": HEAD}]}
        )
    )
    (tmp_path / "p.json").write_text(json.dumps(statement()))
    cases_file = write(
        tmp_path / "cases.yaml",
        """\
        teams: {security: [sam]}
        cases:
          - {name: security approved, passport: p.json, pr: pr.json, expect: {decision: allow}}
        """,
    )
    rule = {"name": "sec", "require": {"approvals": {"count": 1, "from": {"teams": ["security"]}}}}
    (result,) = run_cases(policy_of([rule]), load_cases(cases_file))
    assert result.passed, result.failures


CASE_ERRORS: list[tuple[str, str, int | None, int | None, str | None, str]] = [
    ("empty", "", None, None, None, "the cases file is empty"),
    ("no-cases", "teams: {}\n", 1, 1, "cases", "missing key 'cases'"),
    ("cases-empty", "cases: []\n", 1, 8, "cases", "expected a non-empty list of cases"),
    ("unknown-top", "cases: []\npolicy: x\n", 2, 1, "policy", "unknown key 'policy'"),
    (
        "case-missing-expect",
        "cases:\n  - {name: a, passport: p.json}\n",
        2,
        5,
        "cases[0].expect",
        "missing key 'expect'",
    ),
    (
        "unknown-case-key",
        "cases:\n  - {name: a, passport: p.json, expected: {decision: allow}}\n",
        2,
        33,
        "cases[0].expected",
        "unknown key 'expected'; expected one of: name, passport, pr, expect",
    ),
    (
        "bad-decision",
        "cases:\n  - {name: a, passport: p.json, expect: {decision: merge}}\n",
        2,
        52,
        "cases[0].expect.decision",
        "expected allow, block or pending, found the string 'merge'",
    ),
    (
        "bad-rule-state",
        "cases:\n  - {name: a, passport: p.json, expect: {decision: allow, rules: {x: ok}}}\n",
        2,
        70,
        "cases[0].expect.rules.x",
        "expected satisfied, unsatisfied, pending, skipped, error",
    ),
    (
        "missing-passport-file",
        "cases:\n  - {name: a, passport: nope.json, expect: {decision: allow}}\n",
        2,
        25,
        "cases[0].passport",
        "cannot read passport",
    ),
    (
        "passport-not-json",
        "cases:\n  - {name: a, passport: cases.yaml, expect: {decision: allow}}\n",
        2,
        25,
        "cases[0].passport",
        "not JSON",
    ),
    (
        "inline-passport-without-predicate",
        "cases:\n  - {name: a, passport: {writer: {}}, expect: {decision: allow}}\n",
        2,
        25,
        "cases[0].passport",
        "expected a passport file path or an inline statement",
    ),
    (
        "duplicate-case",
        "cases:\n  - {name: a, passport: p.json, expect: {decision: allow}}\n"
        "  - {name: a, passport: p.json, expect: {decision: allow}}\n",
        3,
        5,
        "cases[1].name",
        "duplicate case name 'a'",
    ),
    ("invalid-yaml", "cases: [\n", 2, 1, None, "invalid YAML"),
]


@pytest.mark.parametrize(
    ("text", "line", "column", "field", "fragment"),
    [pytest.param(*case[1:], id=case[0]) for case in CASE_ERRORS],
)
def test_case_file_errors_are_positioned(
    tmp_path: Path,
    text: str,
    line: int | None,
    column: int | None,
    field: str | None,
    fragment: str,
) -> None:
    (tmp_path / "p.json").write_text(json.dumps(statement()))
    cases_file = tmp_path / "cases.yaml"
    cases_file.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_cases(cases_file)
    error = caught.value
    assert fragment in error.message
    assert (error.file, error.line, error.column, error.field) == (
        str(cases_file),
        line,
        column,
        field,
    )


def test_custom_passport_loader_is_used(tmp_path: Path) -> None:
    seen: list[Path] = []

    def loader(path: Path) -> dict[str, Any]:
        seen.append(path)
        return statement()

    cases_file = write(
        tmp_path / "cases.yaml",
        "cases:\n  - {name: a, passport: signed.dsse.json, expect: {decision: pending}}\n",
    )
    (case,) = load_cases(cases_file, load_passport=loader)
    assert seen == [tmp_path / "signed.dsse.json"]
    assert case.statement == statement()


def test_missing_cases_file() -> None:
    with pytest.raises(PolicyError, match="cannot read cases file"):
        load_cases("/nonexistent/cases.yaml")


# -- simulation ----------------------------------------------------------------------------------


def _inputs() -> list[SimulationInput]:
    docs = statement({"change.files": [file("docs/a.md")], "writer.kind": "human"})
    big = statement({"change.totals": {"files": 7, "additions": 900, "deletions": 0, "lines": 900}})
    return [
        SimulationInput("sha256:" + "1" * 64, docs, label="acme/web@111"),
        SimulationInput("sha256:" + "2" * 64, big, label="acme/web@222"),
        SimulationInput("sha256:" + "3" * 64, statement(), label="acme/web@333"),
    ]


OLD = [{"name": "docs", "if": {"paths.only": ["docs/**"]}, "allow": True}]
NEW = [*OLD, {"name": "too-big", "if": {"diff.lines": "> 500"}, "block": "split it"}]


def test_simulation_against_a_baseline_reports_changes_and_why() -> None:
    simulation = simulate(policy_of(NEW), _inputs(), baseline=policy_of(OLD))
    assert [p.changed for p in simulation.passports] == [False, True, False]
    changed = simulation.changed[0]
    assert (changed.baseline.decision, changed.decision.decision) == ("pending", "block")  # type: ignore[union-attr]
    (change,) = changed.rule_changes
    assert (change.name, change.before, change.after) == ("too-big", None, "unsatisfied")
    assert change.reasons == ["diff.lines is 900 (> 500)"]
    assert simulation.transitions() == {"pending -> block": 1}
    text = policies.render_simulation(simulation)
    assert text.splitlines() == [
        "222222222222 acme/web@222: pending -> block — blocked by too-big",
        "    too-big: (new rule) -> unsatisfied (diff.lines is 900 (> 500))",
        "3 passports: 1 decision would change (1 pending -> block); "
        "now 1 allow, 1 block, 1 pending",
    ]
    document = simulation.to_json()
    assert document["summary"] == {
        "passports": 3,
        "decisions": {"allow": 1, "block": 1, "pending": 1},
        "changed": 1,
        "transitions": {"pending -> block": 1},
    }
    assert document["passports"][1]["ruleChanges"][0]["after"] == "unsatisfied"


def test_simulation_reports_removed_rules() -> None:
    simulation = simulate(policy_of(OLD), _inputs(), baseline=policy_of(NEW))
    (changed,) = simulation.changed
    assert [(c.name, c.before, c.after) for c in changed.rule_changes] == [
        ("too-big", "unsatisfied", None)
    ]
    assert "too-big: unsatisfied -> (removed)" in policies.render_simulation(simulation)


def test_simulation_without_baseline_lists_every_decision() -> None:
    simulation = simulate(policy_of(NEW), _inputs())
    assert simulation.changed == []
    lines = policies.render_simulation(simulation).splitlines()
    assert lines == [
        "111111111111 acme/web@111: allow — allowed by docs",
        "222222222222 acme/web@222: block — blocked by too-big",
        "333333333333 acme/web@333: pending — pending: no rule applies (the policy's default)",
        "3 passports decided: 1 allow, 1 block, 1 pending",
    ]


def test_pr_state_file_errors_are_positioned(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps(statement()))
    (tmp_path / "pr.json").write_text("[" * 3000)
    (tmp_path / "list.json").write_text("[1, 2]")
    for target, fragment in (
        ("pr.json", "not a JSON or YAML document"),
        ("list.json", "expected a PR state"),
    ):
        cases_file = write(
            tmp_path / "cases.yaml",
            f"cases:\n  - {{name: a, passport: p.json, pr: {target}, "
            "expect: {decision: allow}}\n",
        )
        with pytest.raises(PolicyError) as caught:
            load_cases(cases_file)
        error = caught.value
        assert (error.line, error.column, error.field) == (2, 37, "cases[0].pr")
        assert fragment in caught.value.message
