"""The built-in library policies do what their headers say."""

from __future__ import annotations

from typing import Any

import pytest

import policies
from tests.unit.policy_inputs import HEAD, OLD_HEAD, base_pr, file, finding, statement

DEFAULT = policies.load_policy("library:default")
STRICT = policies.load_policy("library:strict-agent")
CI = policies.load_policy("library:ci-autofix")

SMALL_FIX = {
    "change.files": [
        file("src/payments/charge.py", "modified", 6, 2),
        file("tests/test_charge.py"),
    ],
    "change.totals": {"files": 2, "additions": 7, "deletions": 2, "lines": 9},
}
HUMAN = {"writer.kind": "human", "writer.model": None, "writer.agent": None, "writer.sandbox": None}
SECRET = {
    "reviews": [{"reviewer": "secrets", "findings": [finding("secrets", "aws-key", "error")]}]
}
TAMPERING = {
    "reviews": [
        {
            "reviewer": "test-tampering",
            "findings": [finding("test-tampering", "assertion-removed", "warning", "tests/t.py")],
        }
    ]
}
WARNING = {
    "reviews": [
        {
            "reviewer": "debug-leftovers",
            "findings": [finding("debug-leftovers", "print", "warning")],
        }
    ]
}
FAILED = {"validation": [{"name": "tests", "result": "FAILED"}]}
VERIFIED = {"provenanceVerified": True}


def approvals(*users: str, sha: str = HEAD) -> dict[str, Any]:
    return {
        **base_pr(),
        "reviews": [{"user": u, "state": "approved", "commitSha": sha} for u in users],
    }


# (id, policy, passport changes, pr, team resolver, decision, rule states)
SCENARIOS: list[
    tuple[str, policies.Policy, dict[str, Any], Any, Any, str, dict[str, str]]
] = [
    ("default-human-clean", DEFAULT, HUMAN, base_pr(), None, "allow",
     {"human-change": "satisfied"}),
    ("default-agent-waits", DEFAULT, SMALL_FIX, None, None, "pending",
     {"agent-needs-approval": "pending"}),
    ("default-agent-approved", DEFAULT, SMALL_FIX, approvals("alice"), None, "allow",
     {"agent-needs-approval": "satisfied"}),
    ("default-agent-stale-approval", DEFAULT, SMALL_FIX, approvals("alice", sha=OLD_HEAD), None,
     "pending", {"agent-needs-approval": "pending"}),
    ("default-author-self-approval", DEFAULT, SMALL_FIX, approvals("writgate-bot"), None,
     "pending", {"agent-needs-approval": "pending"}),
    ("default-secret", DEFAULT, {**HUMAN, **SECRET}, base_pr(), None, "block",
     {"no-secrets": "unsatisfied", "no-error-findings": "unsatisfied"}),
    ("default-tampering", DEFAULT, {**SMALL_FIX, **TAMPERING}, approvals("alice"), None, "block",
     {"no-test-tampering": "unsatisfied"}),
    ("default-failed-validation", DEFAULT, {**HUMAN, **FAILED}, base_pr(), None, "block",
     {"validation-failed": "unsatisfied"}),
    ("default-big-change-warns", DEFAULT,
     {**HUMAN, "change.totals": {"files": 1, "additions": 1500, "deletions": 0, "lines": 1500}},
     base_pr(), None, "allow", {"big-change": "unsatisfied"}),
    ("strict-two-approvals", STRICT, SMALL_FIX, approvals("alice", "bob"), None, "allow",
     {"agent-needs-approval": "satisfied", "agent-clean-and-validated": "satisfied"}),
    ("strict-one-approval-waits", STRICT, SMALL_FIX, approvals("alice"), None, "pending",
     {"agent-needs-approval": "pending"}),
    ("strict-ci-workflow", STRICT, {}, approvals("alice", "bob"), None, "block",
     {"agent-protected-paths": "unsatisfied"}),
    ("strict-deletes-tests", STRICT,
     {"change.files": [file("src/a.py"), file("tests/test_a.py", "removed")]},
     approvals("alice", "bob"), None, "block", {"agent-deletes-tests": "unsatisfied"}),
    ("strict-too-big", STRICT,
     {**SMALL_FIX, "change.totals": {"files": 2, "additions": 550, "deletions": 0, "lines": 550}},
     approvals("alice", "bob"), None, "block", {"agent-change-too-big": "unsatisfied"}),
    ("strict-validation-missing", STRICT, {**SMALL_FIX, "validation": []},
     approvals("alice", "bob"), None, "block", {"agent-clean-and-validated": "unsatisfied"}),
    ("strict-warning-finding", STRICT, {**SMALL_FIX, **WARNING}, approvals("alice", "bob"), None,
     "block", {"agent-clean-and-validated": "unsatisfied"}),
    ("strict-open-network", STRICT,
     {**SMALL_FIX, "writer.sandbox": {"provider": "local", "network": "open"}},
     approvals("alice", "bob"), None, "block", {"agent-clean-and-validated": "unsatisfied"}),
    ("strict-dependencies-security-approved", STRICT,
     {"change.files": [file("pyproject.toml")]}, approvals("alice", "sam"),
     {"security": ["sam"]}, "allow", {"agent-dependencies-need-security": "satisfied"}),
    ("strict-dependencies-waiting-for-security", STRICT,
     {"change.files": [file("pyproject.toml")]}, approvals("alice", "bob"),
     {"security": ["sam"]}, "pending", {"agent-dependencies-need-security": "pending"}),
    ("strict-dependencies-unknown-team", STRICT,
     {"change.files": [file("pyproject.toml")]}, approvals("alice", "bob"), None, "block",
     {"agent-dependencies-need-security": "error"}),
    ("strict-human", STRICT, HUMAN, base_pr(), None, "allow",
     {"agent-clean-and-validated": "skipped", "agent-protected-paths": "skipped"}),
    ("ci-small-verified-fix", CI, {**SMALL_FIX, **VERIFIED}, None, None, "allow",
     {"small-verified-ci-fix": "satisfied", "other-agent-change-needs-approval": "skipped"}),
    ("ci-small-fix-failed-validation", CI, {**SMALL_FIX, **VERIFIED, **FAILED}, None, None,
     "block", {"small-verified-ci-fix": "unsatisfied", "validation-failed": "unsatisfied"}),
    ("ci-small-fix-with-warning", CI, {**SMALL_FIX, **VERIFIED, **WARNING}, None, None, "block",
     {"small-verified-ci-fix": "unsatisfied"}),
    ("ci-unverified-fix-waits", CI, SMALL_FIX, None, None, "pending",
     {"small-verified-ci-fix": "skipped", "other-agent-change-needs-approval": "pending"}),
    ("ci-unverified-fix-approved", CI, SMALL_FIX, approvals("alice"), None, "allow",
     {"other-agent-change-needs-approval": "satisfied"}),
    ("ci-fix-touching-workflows-waits", CI, VERIFIED, None, None, "pending",
     {"small-verified-ci-fix": "skipped", "other-agent-change-needs-approval": "pending"}),
    ("ci-not-tagged-waits", CI, {**SMALL_FIX, **VERIFIED, "writer.tags": []}, None, None,
     "pending", {"other-agent-change-needs-approval": "pending"}),
    ("ci-fix-only-tests-warns", CI,
     {**VERIFIED, "change.files": [file("tests/test_charge.py")],
      "change.totals": {"files": 1, "additions": 1, "deletions": 0, "lines": 1}},
     None, None, "allow",
     {"ci-fix-only-tests": "unsatisfied", "small-verified-ci-fix": "satisfied"}),
    ("ci-secret", CI, {**SMALL_FIX, **VERIFIED, **SECRET}, None, None, "block",
     {"no-secrets": "unsatisfied"}),
    ("ci-human", CI, HUMAN, None, None, "allow", {"human-change": "satisfied"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "changes", "pr", "teams", "expected", "states"),
    [pytest.param(*case[1:], id=case[0]) for case in SCENARIOS],
)
def test_library_scenario(
    policy: policies.Policy,
    changes: dict[str, Any],
    pr: Any,
    teams: Any,
    expected: str,
    states: dict[str, str],
) -> None:
    decision = policies.evaluate(policy, statement(changes), pr, team_resolver=teams)
    assert decision.decision == expected, decision.to_json()
    assert {name: decision.rule(name).state for name in states} == states


def test_strict_agent_extends_default() -> None:
    default_rules = [r.name for r in DEFAULT.rules]
    assert [r.name for r in STRICT.rules][: len(default_rules)] == default_rules
    assert STRICT.rule("agent-needs-approval").source["require"] == {"approvals": 2}
    assert STRICT.rule("no-secrets") == DEFAULT.rule("no-secrets")


def test_library_digests_are_distinct_and_stable() -> None:
    digests = {p.digest for p in (DEFAULT, STRICT, CI)}
    assert len(digests) == 3
    assert policies.load_policy("library:default").digest == DEFAULT.digest
