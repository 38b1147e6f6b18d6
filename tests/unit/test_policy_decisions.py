"""The decision algorithm of DESIGN.md §9, rule states, reasons, and the Decision JSON."""

from __future__ import annotations

from typing import Any

import pytest

import policies
from policies.explain import explain, summarize
from tests.unit.policy_inputs import HEAD, OLD_HEAD, base_pr, file, finding, policy_of, statement

SECRET_REVIEW = {
    "reviews": [
        {
            "reviewer": "secrets",
            "findings": [finding("secrets", "aws-access-key", "error", "config/prod.env")],
        }
    ]
}
DOCS = {"change.files": [file("docs/guide.md"), file("README.md")]}

NO_SECRETS = {
    "name": "no-secrets",
    "if": {"review.findings": {"reviewer": "secrets"}},
    "block": "secret",
}
DOCS_ONLY = {"name": "docs-only", "if": {"paths.only": ["docs/**", "*.md"]}, "allow": True}
NEEDS_APPROVAL = {"name": "needs-approval", "require": {"approvals": 1}}
VALIDATED = {"name": "validated", "require": {"validation": "passed"}}
BIG = {"name": "big", "if": {"diff.lines": "> 5"}, "warn": "big change"}
CI_GREEN = {"name": "ci-green", "require": {"checks.ci/tests": "success"}}


def pr_with(**changes: Any) -> dict[str, Any]:
    return {**base_pr(), **changes}


# (id, rules, passport changes, pr, expected decision, expected rule states)
DECISIONS: list[tuple[str, list[dict[str, Any]], dict[str, Any], Any, str, dict[str, str]]] = [
    (
        "block-wins-over-allow",
        [NO_SECRETS, DOCS_ONLY],
        {**DOCS, **SECRET_REVIEW},
        base_pr(),
        "block",
        {"no-secrets": "unsatisfied", "docs-only": "satisfied"},
    ),
    (
        "allow-rule-applies",
        [NO_SECRETS, DOCS_ONLY],
        DOCS,
        base_pr(),
        "allow",
        {"no-secrets": "skipped", "docs-only": "satisfied"},
    ),
    (
        "unsatisfied-require-blocks",
        [VALIDATED, DOCS_ONLY],
        {**DOCS, "validation": [{"name": "tests", "result": "FAILED"}]},
        base_pr(),
        "block",
        {"validated": "unsatisfied"},
    ),
    (
        "pending-require-waits",
        [NEEDS_APPROVAL, VALIDATED],
        {},
        base_pr(),
        "pending",
        {"needs-approval": "pending", "validated": "satisfied"},
    ),
    (
        "unsatisfied-beats-pending",
        [NEEDS_APPROVAL, VALIDATED],
        {"validation": [{"name": "tests", "result": "FAILED"}]},
        base_pr(),
        "block",
        {"needs-approval": "pending", "validated": "unsatisfied"},
    ),
    (
        "require-satisfied-allows",
        [NEEDS_APPROVAL],
        {},
        pr_with(reviews=[{"user": "alice", "state": "approved", "commitSha": HEAD}]),
        "allow",
        {"needs-approval": "satisfied"},
    ),
    (
        "stale-approval-waits",
        [NEEDS_APPROVAL],
        {},
        pr_with(reviews=[{"user": "alice", "state": "approved", "commitSha": OLD_HEAD}]),
        "pending",
        {"needs-approval": "pending"},
    ),
    (
        "require-error-blocks",
        [{"name": "draft", "require": {"pr.draft": False}}],
        {},
        None,
        "block",
        {"draft": "error"},
    ),
    (
        "block-if-error-blocks",
        [{"name": "b", "if": {"provenance.verified": False}, "block": "x"}],
        {"provenanceVerified": None},
        base_pr(),
        "block",
        {"b": "error"},
    ),
    (
        "block-if-pending-waits",
        [{"name": "b", "if": {"checks.deploy": "failure"}, "block": "x"}],
        {},
        base_pr(),
        "pending",
        {"b": "pending"},
    ),
    (
        "block-without-if-always-blocks",
        [{"name": "freeze", "block": "code freeze"}, DOCS_ONLY],
        DOCS,
        base_pr(),
        "block",
        {"freeze": "unsatisfied"},
    ),
    (
        "skipped-require-does-not-allow",
        [{"name": "r", "if": {"tags.any": ["x"]}, "require": {"validation": "passed"}}],
        {},
        base_pr(),
        "pending",
        {"r": "skipped"},
    ),
    (
        "allow-error-is-not-allow",
        [{"name": "a", "if": {"pr.draft": False}, "allow": True}],
        {},
        None,
        "pending",
        {"a": "error"},
    ),
    ("warn-does-not-decide", [BIG], {}, base_pr(), "pending", {"big": "unsatisfied"}),
    (
        "warn-with-allow",
        [BIG, DOCS_ONLY],
        DOCS,
        base_pr(),
        "allow",
        {"big": "unsatisfied", "docs-only": "satisfied"},
    ),
    (
        "warn-error-does-not-block",
        [{"name": "w", "if": {"pr.draft": True}, "warn": "draft"}],
        {},
        None,
        "pending",
        {"w": "error"},
    ),
    (
        "pending-if-of-require",
        [{"name": "r", "if": {"checks.deploy": "success"}, "require": {"validation": "passed"}}],
        {},
        base_pr(),
        "pending",
        {"r": "pending"},
    ),
    (
        "check-failure-blocks",
        [CI_GREEN],
        {},
        pr_with(checks={"ci/tests": "failure"}),
        "block",
        {"ci-green": "unsatisfied"},
    ),
    (
        "check-outstanding-waits",
        [CI_GREEN],
        {},
        pr_with(checks={}),
        "pending",
        {"ci-green": "pending"},
    ),
    (
        "no-pr-state-waits-for-approvals",
        [NEEDS_APPROVAL],
        {},
        None,
        "pending",
        {"needs-approval": "pending"},
    ),
]


@pytest.mark.parametrize(
    ("rules", "changes", "pr", "expected", "states"),
    [pytest.param(*case[1:], id=case[0]) for case in DECISIONS],
)
def test_decision(
    rules: list[dict[str, Any]],
    changes: dict[str, Any],
    pr: Any,
    expected: str,
    states: dict[str, str],
) -> None:
    decision = policies.evaluate(policy_of(rules), statement(changes), pr)
    assert decision.decision == expected, decision.to_json()
    assert {name: decision.rule(name).state for name in states} == states


@pytest.mark.parametrize("default", ["allow", "block", "pending"])
def test_when_no_rule_applies(default: str) -> None:
    policy = policy_of([NO_SECRETS, DOCS_ONLY], defaults={"whenNoRuleApplies": default})
    decision = policies.evaluate(policy, statement(), base_pr())
    assert decision.decision == default
    assert decision.deciding_rules == []
    assert summarize(decision) == f"{default}: no rule applies (the policy's default)"


def test_default_block_waits_for_a_pending_allow_rule() -> None:
    rule = {"name": "green-docs", "if": {"checks.deploy": "success"}, "allow": True}
    policy = policy_of([rule], defaults={"whenNoRuleApplies": "block"})
    assert policies.evaluate(policy, statement(), base_pr()).decision == "pending"
    done = pr_with(checks={"deploy": "success"})
    assert policies.evaluate(policy, statement(), done).decision == "allow"
    failed = pr_with(checks={"deploy": "failure"})
    assert policies.evaluate(policy, statement(), failed).decision == "block"


def test_default_is_pending_without_defaults() -> None:
    assert policy_of([]).when_no_rule_applies == "pending"
    assert policies.evaluate(policy_of([]), statement()).decision == "pending"


def test_reasons_name_files_findings_tags_and_approvers() -> None:
    policy = policy_of(
        [
            NO_SECRETS,
            {"name": "ci", "if": {"tags.any": ["ci", "nightly"]}, "warn": "ci"},
            {"name": "payments", "if": {"paths": ["services/payments/**"]}, "warn": "payments"},
            {
                "name": "two",
                "require": {"approvals": {"count": 2, "from": {"teams": ["payments"]}}},
            },
        ],
        teams={"payments": ["alice", "bob", "writgate-bot"]},
    )
    pr = pr_with(
        reviews=[
            {"user": "alice", "state": "approved", "commitSha": HEAD},
            {"user": "bob", "state": "approved", "commitSha": OLD_HEAD},
            {"user": "writgate-bot", "state": "approved", "commitSha": HEAD},
            {"user": "mallory", "state": "approved", "commitSha": HEAD},
        ]
    )
    decision = policies.evaluate(policy, statement(SECRET_REVIEW), pr)
    assert decision.rule("no-secrets").reasons == [
        "1 finding from secrets (> 0): secrets/aws-access-key at config/prod.env:3"
    ]
    assert decision.rule("ci").reasons == ["tags include ci"]
    assert decision.rule("payments").reasons == [
        "changed files matching services/payments/**: services/payments/api.py"
    ]
    two = decision.rule("two")
    assert two.state == "pending"
    assert two.reasons == [
        "1 of 2 approvals from teams payments: alice",
        "not counted: bob (stale: approved an older head), writgate-bot (the PR author), "
        "mallory (not in teams payments)",
    ]


def test_many_matches_are_sampled() -> None:
    files = [file(f"docs/page{i}.md") for i in range(12)]
    policy = policy_of([{"name": "docs", "if": {"paths": ["docs/**"]}, "allow": True}])
    decision = policies.evaluate(policy, statement({"change.files": files}))
    (reason,) = decision.rule("docs").reasons
    assert reason.endswith("docs/page4.md (+7 more)")


def test_team_resolver_callable_and_mapping() -> None:
    rule = {"name": "sec", "require": {"approvals": {"count": 1, "from": {"teams": ["security"]}}}}
    policy = policy_of([rule])
    pr = pr_with(reviews=[{"user": "Sam", "state": "approved", "commitSha": HEAD}])
    asked: list[str] = []

    def resolver(team: str) -> list[str] | None:
        asked.append(team)
        return ["sam"] if team == "security" else None

    assert policies.evaluate(policy, statement(), pr, team_resolver=resolver).decision == "allow"
    assert asked == ["security"]
    mapped = policies.evaluate(policy, statement(), pr, team_resolver={"security": ["eve"]})
    assert mapped.decision == "pending"
    unknown = policies.evaluate(policy, statement(), pr)
    assert unknown.decision == "block"
    assert "team 'security' is not in the policy's teams" in unknown.rule("sec").reasons[0]
    assert policy.team_names == {"security"}


def test_policy_teams_take_precedence_over_the_resolver() -> None:
    rule = {"name": "sec", "require": {"approvals": {"count": 1, "from": {"teams": ["security"]}}}}
    policy = policy_of([rule], teams={"security": ["alice"]})
    pr = pr_with(reviews=[{"user": "sam", "state": "approved", "commitSha": HEAD}])
    decision = policies.evaluate(policy, statement(), pr, team_resolver=lambda team: ["sam"])
    assert decision.decision == "pending"


def test_decision_json_and_digest() -> None:
    policy = policy_of([NO_SECRETS, DOCS_ONLY])
    decision = policies.evaluate(policy, statement(DOCS), base_pr())
    document = decision.to_json()
    assert document == {
        "decision": "allow",
        "rules": [
            {
                "name": "no-secrets",
                "kind": "block",
                "state": "skipped",
                "reasons": ["0 findings from secrets, not > 0"],
                "message": "secret",
            },
            {
                "name": "docs-only",
                "kind": "allow",
                "state": "satisfied",
                "reasons": ["all 2 changed files match docs/**, *.md"],
                "message": None,
            },
        ],
        "policyName": "test",
        "policyDigest": policy.digest,
    }
    assert policy.digest.startswith("sha256:") and len(policy.digest) == 71


def test_require_message_is_the_description() -> None:
    rule = {**NEEDS_APPROVAL, "description": "One approval, please."}
    decision = policies.evaluate(policy_of([rule]), statement(), base_pr())
    assert decision.rule("needs-approval").message == "One approval, please."


def test_bad_inputs_raise_policy_error() -> None:
    policy = policy_of([DOCS_ONLY])
    with pytest.raises(policies.PolicyError, match="statement must be a JSON object"):
        policies.evaluate(policy, ["not", "a", "statement"])  # type: ignore[arg-type]
    with pytest.raises(policies.PolicyError, match="PR state must be a JSON object"):
        policies.evaluate(policy, statement(), "nope")  # type: ignore[arg-type]


def test_empty_statement_errors_every_rule_that_reads_it() -> None:
    policy = policies.load_policy("library:default")
    decision = policies.evaluate(policy, {})
    assert decision.decision == "block"
    assert {r.state for r in decision.rules} == {"error"}
    assert all("the passport has no predicate" in r.reasons[0] for r in decision.rules)


def test_explain_lists_rules_with_reasons() -> None:
    policy = policy_of([NO_SECRETS, DOCS_ONLY])
    decision = policies.evaluate(policy, statement({**DOCS, **SECRET_REVIEW}))
    text = explain(decision)
    assert text.splitlines()[0] == "decision: block (blocked by no-secrets)"
    assert "[NO] no-secrets (block): unsatisfied" in text
    assert "      secret" in text
    assert "[ok] docs-only (allow): satisfied" in text
    assert "docs-only" not in explain(
        policies.evaluate(policy, statement(SECRET_REVIEW)), skipped=False
    )


def test_summary_is_bounded() -> None:
    rules = [{"name": f"rule-{i:03d}-with-a-long-name", "block": "x"} for i in range(20)]
    decision = policies.evaluate(policy_of(rules), statement())
    line = summarize(decision)
    assert len(line) == 140 and line.endswith("…") and line.startswith("blocked by rule-000")


def test_text_values_compare_as_written() -> None:
    policy = policies.parse_policy(
        "policy: writgate/v1\nname: t\nrules:\n"
        "  - {name: code, if: {metadata.code: 0042}, allow: true}\n"
        "  - {name: flag, if: {metadata.flag: yes}, allow: true}\n"
        "  - {name: ratio, if: {metadata.ratio: 1.50}, allow: true}\n"
    )
    facts = {"writer.metadata": {"code": "0042", "flag": "yes", "ratio": "1.50"}}
    decision = policies.evaluate(policy, statement(facts))
    assert [r.state for r in decision.rules] == ["satisfied"] * 3
