"""Table-driven semantics of every attribute and combinator of the policy language.

Each case is a predicate, changes to the baseline passport / PR state, and the state of a rule
``require: <predicate>``: satisfied (true), unsatisfied (false), pending or error.
"""

from __future__ import annotations

from typing import Any

import pytest

import policies
from tests.unit.policy_inputs import (
    DELETE,
    HEAD,
    OLD_HEAD,
    base_pr,
    changed,
    file,
    finding,
    policy_of,
    statement,
)

PR = "pr"  # use the base PR state
NO_PR = None

DOCS_ONLY = [file("docs/guide.md"), file("README.md")]
PY_FILES = [file("services/payments/api.py"), file("lib/util.py")]
SECRET = finding("secrets", "aws-access-key", "error", "config/prod.env")
WARNING = finding("sensitive-paths", "ci-config", "warning", ".github/workflows/ci.yml")


def approve(user: str, sha: str = HEAD, state: str = "approved") -> dict[str, Any]:
    return {"user": user, "state": state, "commitSha": sha}


# (id, predicate, passport changes, PR state (PR = base, None = no PR, dict = PR changes), state)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], Any, str]] = [
    # -- paths: any changed file matches ------------------------------------------------------
    ("paths-glob-match", {"paths": ["services/payments/**"]}, {}, PR, "satisfied"),
    ("paths-glob-no-match", {"paths": ["services/billing/**"]}, {}, PR, "unsatisfied"),
    ("paths-single-string", {"paths": "*.md"}, {}, PR, "satisfied"),
    ("paths-basename-any-depth", {"paths": ["guide.md"]}, {}, PR, "satisfied"),
    ("paths-directory-pattern", {"paths": ["docs/"]}, {}, PR, "satisfied"),
    ("paths-double-star-middle", {"paths": ["services/**/api.py"]}, {}, PR, "satisfied"),
    (
        "paths-double-star-zero-dirs",
        {"paths": ["services/**/api.py"]},
        {"change.files": [file("services/api.py")]},
        PR,
        "satisfied",
    ),
    ("paths-star-does-not-cross-slash", {"paths": ["services/*.py"]}, {}, PR, "unsatisfied"),
    ("paths-anchored-root-match", {"paths": ["/README.md"]}, {}, PR, "satisfied"),
    (
        "paths-anchored-root-no-match",
        {"paths": ["/README.md"]},
        {"change.files": [file("docs/README.md")]},
        PR,
        "unsatisfied",
    ),
    (
        "paths-negation-excludes",
        {"paths": ["**/*.py", "!services/**"]},
        {"change.files": [file("services/payments/api.py")]},
        PR,
        "unsatisfied",
    ),
    (
        "paths-negation-keeps-others",
        {"paths": ["**/*.py", "!services/**"]},
        {"change.files": PY_FILES},
        PR,
        "satisfied",
    ),
    (
        "paths-star-matches-dotfiles",
        {"paths": ["*"]},
        {"change.files": [file(".env")]},
        PR,
        "satisfied",
    ),
    ("paths-dot-directory", {"paths": [".*"]}, {}, PR, "satisfied"),
    ("paths-previous-path-of-rename", {"paths": ["lib/old_name.py"]}, {}, PR, "satisfied"),
    ("paths-no-files", {"paths": ["**"]}, {"change.files": []}, PR, "unsatisfied"),
    # -- paths.only / paths.none --------------------------------------------------------------
    (
        "paths-only-docs",
        {"paths.only": ["docs/**", "*.md"]},
        {"change.files": DOCS_ONLY},
        PR,
        "satisfied",
    ),
    ("paths-only-mixed", {"paths.only": ["docs/**", "*.md"]}, {}, PR, "unsatisfied"),
    (
        "paths-only-empty-change",
        {"paths.only": ["docs/**"]},
        {"change.files": []},
        PR,
        "unsatisfied",
    ),
    (
        "paths-only-rename-out-of-area",
        {"paths.only": ["lib/new_name.py"]},
        {"change.files": [file("lib/new_name.py", "renamed", previous="src/old.py")]},
        PR,
        "unsatisfied",
    ),
    ("paths-none-holds", {"paths.none": ["infra/**", "*.tf"]}, {}, PR, "satisfied"),
    ("paths-none-directory-hit", {"paths.none": [".github/"]}, {}, PR, "unsatisfied"),
    # -- paths by status ----------------------------------------------------------------------
    ("paths-added", {"paths.added": [".github/**"]}, {}, PR, "satisfied"),
    ("paths-added-not-modified", {"paths.added": ["services/**"]}, {}, PR, "unsatisfied"),
    ("paths-removed", {"paths.removed": ["tests/**"]}, {}, PR, "satisfied"),
    ("paths-renamed-previous", {"paths.renamed": ["lib/old_name.py"]}, {}, PR, "satisfied"),
    ("paths-modified-excludes-removed", {"paths.modified": ["tests/**"]}, {}, PR, "unsatisfied"),
    (
        "paths-added-includes-copied",
        {"paths.added": ["lib/copy.py"]},
        {"change.files": [file("lib/copy.py", "copied", previous="lib/orig.py")]},
        PR,
        "satisfied",
    ),
    ("paths-files-missing", {"paths": ["**"]}, {"change.files": DELETE}, PR, "error"),
    # -- diff totals --------------------------------------------------------------------------
    ("diff-lines-greater-false", {"diff.lines": "> 500"}, {}, PR, "unsatisfied"),
    ("diff-lines-at-most", {"diff.lines": "<= 12"}, {}, PR, "satisfied"),
    ("diff-additions-equal", {"diff.additions": "== 10"}, {}, PR, "satisfied"),
    ("diff-deletions-bare-integer", {"diff.deletions": 2}, {}, PR, "satisfied"),
    ("diff-files-not-equal", {"diff.files": "!= 7"}, {}, PR, "unsatisfied"),
    ("diff-files-less", {"diff.files": "< 8"}, {}, PR, "satisfied"),
    ("diff-totals-missing", {"diff.lines": "> 0"}, {"change.totals": DELETE}, PR, "error"),
    # -- author -------------------------------------------------------------------------------
    ("author-kind", {"author.kind": "agent"}, {}, PR, "satisfied"),
    ("author-kind-list-miss", {"author.kind": ["human", "external"]}, {}, PR, "unsatisfied"),
    ("author-kind-missing", {"author.kind": "agent"}, {"writer.kind": DELETE}, PR, "error"),
    ("author-login-from-pr", {"author.login": "writgate-bot"}, {}, PR, "satisfied"),
    ("author-login-case-insensitive", {"author.login": "WritGate-Bot"}, {}, PR, "satisfied"),
    (
        "author-login-from-passport",
        {"author.login": "octocat"},
        {"change.pullRequest": {"number": 1, "author": "octocat", "draft": True}},
        NO_PR,
        "satisfied",
    ),
    ("author-login-unknown", {"author.login": "octocat"}, {}, NO_PR, "error"),
    ("author-login-regex", {"author.login": {"~=": "-bot$"}}, {}, PR, "satisfied"),
    # -- writer -------------------------------------------------------------------------------
    ("writer-model", {"writer.model": "claude-sonnet-4"}, {}, PR, "satisfied"),
    ("writer-model-regex-miss", {"writer.model": {"~=": "^gpt-"}}, {}, PR, "unsatisfied"),
    (
        "writer-model-null",
        {"writer.model": "claude-sonnet-4"},
        {"writer.model": None},
        PR,
        "unsatisfied",
    ),
    ("writer-agent-list", {"writer.agent": ["claude-code", "command"]}, {}, PR, "satisfied"),
    ("writer-missing", {"writer.agent": "command"}, {"writer": DELETE}, PR, "error"),
    # -- tags ---------------------------------------------------------------------------------
    ("tags-any", {"tags.any": ["docs", "ci"]}, {}, PR, "satisfied"),
    ("tags-all", {"tags.all": ["ci", "owner:platform"]}, {}, PR, "satisfied"),
    ("tags-all-missing-one", {"tags.all": ["ci", "urgent"]}, {}, PR, "unsatisfied"),
    ("tags-none", {"tags.none": ["urgent"]}, {}, PR, "satisfied"),
    ("tags-none-present", {"tags.none": ["ci"]}, {}, PR, "unsatisfied"),
    ("tags-null", {"tags.any": ["ci"]}, {"writer.tags": None}, PR, "unsatisfied"),
    # -- metadata -----------------------------------------------------------------------------
    ("metadata-value", {"metadata.ticket": "PAY-742"}, {}, PR, "satisfied"),
    ("metadata-regex", {"metadata.ticket": {"~=": "^PAY-\\d+$"}}, {}, PR, "satisfied"),
    ("metadata-unset-key", {"metadata.customer": "acme"}, {}, PR, "unsatisfied"),
    ("metadata-number", {"metadata.attempt": 2}, {}, PR, "satisfied"),
    ("metadata-number-vs-text", {"metadata.retry": 3}, {}, PR, "satisfied"),
    ("metadata-list-of-values", {"metadata.ticket": ["OPS-1", "PAY-742"]}, {}, PR, "satisfied"),
    (
        "metadata-text-as-written",
        {"metadata.code": "0042"},
        {"writer.metadata": {"code": "0042"}},
        PR,
        "satisfied",
    ),
    (
        "metadata-yes-is-text",
        {"metadata.flag": "yes"},
        {"writer.metadata": {"flag": "yes"}},
        PR,
        "satisfied",
    ),
    (
        "metadata-bool-fact",
        {"metadata.flag": True},
        {"writer.metadata": {"flag": True}},
        PR,
        "satisfied",
    ),
    (
        "metadata-list-valued-fact",
        {"metadata.owners": "payments"},
        {"writer.metadata": {"owners": ["web", "payments"]}},
        PR,
        "satisfied",
    ),
    (
        "metadata-list-valued-fact-miss",
        {"metadata.owners": {"~=": "^pay"}},
        {"writer.metadata": {"owners": ["web"]}},
        PR,
        "unsatisfied",
    ),
    (
        "metadata-object-value",
        {"metadata.owners": "web"},
        {"writer.metadata": {"owners": {"team": "web"}}},
        PR,
        "error",
    ),
    (
        "findings-not-a-list",
        {"review.findings": "> 0"},
        {"reviews": [{"reviewer": "x", "findings": 5}]},
        PR,
        "error",
    ),
    # -- intent, provenance, safety -----------------------------------------------------------
    ("intent-label", {"intent": "bugfix"}, {}, PR, "satisfied"),
    ("intent-list-miss", {"intent": ["feature", "refactor"]}, {}, PR, "unsatisfied"),
    ("intent-null", {"intent": "bugfix"}, {"writer.intent": None}, PR, "unsatisfied"),
    ("provenance-verified-false", {"provenance.verified": True}, {}, PR, "unsatisfied"),
    ("provenance-unverified", {"provenance.verified": False}, {}, PR, "satisfied"),
    (
        "provenance-missing",
        {"provenance.verified": True},
        {"provenanceVerified": DELETE},
        PR,
        "error",
    ),
    ("safety-network-none", {"safety.network": "none"}, {}, PR, "satisfied"),
    ("safety-network-list-miss", {"safety.network": ["restricted", "open"]}, {}, PR, "unsatisfied"),
    ("safety-no-sandbox", {"safety.network": "none"}, {"writer.sandbox": None}, PR, "unsatisfied"),
    # -- validation ---------------------------------------------------------------------------
    ("validation-passed-with-warned", {"validation": "passed"}, {}, PR, "satisfied"),
    (
        "validation-failed-not-passed",
        {"validation": "passed"},
        {"validation": [{"name": "tests", "result": "FAILED"}]},
        PR,
        "unsatisfied",
    ),
    (
        "validation-failed",
        {"validation": "failed"},
        {
            "validation": [
                {"name": "tests", "result": "PASSED"},
                {"name": "e2e", "result": "FAILED"},
            ]
        },
        PR,
        "satisfied",
    ),
    ("validation-missing", {"validation": "missing"}, {"validation": []}, PR, "satisfied"),
    (
        "validation-passed-when-missing",
        {"validation": "passed"},
        {"validation": []},
        PR,
        "unsatisfied",
    ),
    ("validation-key-missing", {"validation": "passed"}, {"validation": DELETE}, PR, "error"),
    # -- review findings ----------------------------------------------------------------------
    (
        "findings-secret",
        {"review.findings": {"reviewer": "secrets"}},
        {"reviews": [{"reviewer": "secrets", "findings": [SECRET]}]},
        PR,
        "satisfied",
    ),
    ("findings-secret-none", {"review.findings": {"reviewer": "secrets"}}, {}, PR, "unsatisfied"),
    (
        "findings-severity-info-ignored",
        {"review.findings": {"severity": ">= warning", "count": "== 0"}},
        {},
        PR,
        "satisfied",
    ),
    (
        "findings-severity-warning-counts",
        {"review.findings": {"severity": ">= warning", "count": "== 0"}},
        {"reviews": [{"reviewer": "sensitive-paths", "findings": [WARNING]}]},
        PR,
        "unsatisfied",
    ),
    (
        "findings-rule-exact-count",
        {"review.findings": {"rule": "aws-access-key", "count": 1}},
        {"reviews": [{"reviewer": "secrets", "findings": [SECRET]}]},
        PR,
        "satisfied",
    ),
    (
        "findings-severity-below",
        {"review.findings": {"severity": "< error"}},
        {"reviews": [{"reviewer": "secrets", "findings": [SECRET]}]},
        PR,
        "unsatisfied",
    ),
    (
        "findings-shorthand-count-across-reviews",
        {"review.findings": "== 2"},
        {
            "reviews": [
                {"reviewer": "secrets", "findings": [SECRET]},
                {"reviewer": "sensitive-paths", "findings": [WARNING]},
            ]
        },
        PR,
        "satisfied",
    ),
    (
        "findings-reviewer-from-enclosing-review",
        {"review.findings": {"reviewer": "ruff"}},
        {"reviews": [{"reviewer": "ruff", "findings": [{"rule": "F401", "severity": "warning"}]}]},
        PR,
        "satisfied",
    ),
    ("findings-reviews-missing", {"review.findings": "> 0"}, {"reviews": DELETE}, PR, "error"),
    # -- pull request -------------------------------------------------------------------------
    ("pr-draft-false", {"pr.draft": False}, {}, PR, "satisfied"),
    (
        "pr-draft-from-passport",
        {"pr.draft": True},
        {"change.pullRequest": {"number": 1, "draft": True, "author": "bot"}},
        NO_PR,
        "satisfied",
    ),
    ("pr-draft-unknown", {"pr.draft": False}, {}, NO_PR, "error"),
    ("pr-labels-any", {"pr.labels.any": ["bugfix"]}, {}, PR, "satisfied"),
    (
        "pr-labels-all-case-insensitive",
        {"pr.labels.all": ["BUGFIX", "needs-review"]},
        {},
        PR,
        "satisfied",
    ),
    ("pr-labels-none", {"pr.labels.none": ["do-not-merge"]}, {}, PR, "satisfied"),
    ("pr-labels-none-present", {"pr.labels.none": ["bugfix"]}, {}, PR, "unsatisfied"),
    ("pr-title-regex", {"pr.title": {"~=": "(?i)FLAKY"}}, {}, PR, "satisfied"),
    ("pr-title-regex-miss", {"pr.title": {"~=": "^WIP"}}, {}, PR, "unsatisfied"),
    ("pr-base", {"pr.base": "main"}, {}, PR, "satisfied"),
    ("pr-base-from-passport", {"pr.base": ["main", "release"]}, {}, NO_PR, "satisfied"),
    # -- checks -------------------------------------------------------------------------------
    ("check-success", {"checks.ci/tests": "success"}, {}, PR, "satisfied"),
    ("check-failed", {"checks.lint": "success"}, {}, PR, "unsatisfied"),
    ("check-still-pending", {"checks.deploy": "success"}, {}, PR, "pending"),
    ("check-not-reported-yet", {"checks.e2e": "success"}, {}, PR, "pending"),
    ("check-missing-expected", {"checks.e2e": "missing"}, {}, PR, "satisfied"),
    ("check-pending-cannot-be-missing", {"checks.deploy": "missing"}, {}, PR, "unsatisfied"),
    ("check-failure-expected", {"checks.lint": "failure"}, {}, PR, "satisfied"),
    ("check-without-pr-state", {"checks.ci/tests": "success"}, {}, NO_PR, "pending"),
    (
        "check-error-is-failure",
        {"checks.ci/tests": "failure"},
        {},
        {"checks": {"ci/tests": "error"}},
        "satisfied",
    ),
    # -- approvals ----------------------------------------------------------------------------
    ("approvals-one", {"approvals": 1}, {}, {"reviews": [approve("alice")]}, "satisfied"),
    (
        "approvals-stale",
        {"approvals": 1},
        {},
        {"reviews": [approve("alice", OLD_HEAD)]},
        "pending",
    ),
    (
        "approvals-author-never-counts",
        {"approvals": 1},
        {},
        {"reviews": [approve("writgate-bot"), approve("WRITGATE-BOT")]},
        "pending",
    ),
    (
        "approvals-latest-review-wins",
        {"approvals": 1},
        {},
        {"reviews": [approve("alice"), approve("alice", state="changes_requested")]},
        "pending",
    ),
    (
        "approvals-comment-keeps-approval",
        {"approvals": 1},
        {},
        {"reviews": [approve("alice"), approve("alice", state="commented")]},
        "satisfied",
    ),
    (
        "approvals-one-user-counts-once",
        {"approvals": 2},
        {},
        {"reviews": [approve("alice"), approve("alice")]},
        "pending",
    ),
    (
        "approvals-team-needs-two",
        {"approvals": {"count": 2, "from": {"teams": ["payments"]}}},
        {},
        {"reviews": [approve("alice"), approve("carol")]},
        "pending",
    ),
    (
        "approvals-team-two",
        {"approvals": {"count": 2, "from": {"teams": ["payments"]}}},
        {},
        {"reviews": [approve("alice"), approve("Bob")]},
        "satisfied",
    ),
    (
        "approvals-from-users",
        {"approvals": {"count": 1, "from": {"users": ["carol"]}}},
        {},
        {"reviews": [approve("carol")]},
        "satisfied",
    ),
    (
        "approvals-users-or-teams",
        {"approvals": {"count": 2, "from": {"users": ["carol"], "teams": ["payments"]}}},
        {},
        {"reviews": [approve("carol"), approve("bob")]},
        "satisfied",
    ),
    ("approvals-no-pr-state", {"approvals": 1}, {}, NO_PR, "pending"),
    (
        "approvals-github-spelling",
        {"approvals": 1},
        {},
        {"reviews": [{"user": "alice", "state": "APPROVED", "commitSha": HEAD}]},
        "satisfied",
    ),
    (
        "check-github-spelling",
        {"checks.ci/tests": "success"},
        {},
        {"checks": {"ci/tests": "SUCCESS"}},
        "satisfied",
    ),
    (
        "approvals-unknown-team",
        {"approvals": {"count": 1, "from": {"teams": ["ghosts"]}}},
        {},
        {"reviews": [approve("alice")]},
        "error",
    ),
    (
        "approvals-without-commit-sha-are-stale",
        {"approvals": 1},
        {},
        {"reviews": [{"user": "alice", "state": "approved"}]},
        "pending",
    ),
    ("approvals-no-head-sha", {"approvals": 1}, {}, {"headSha": DELETE}, "error"),
    # -- combinators --------------------------------------------------------------------------
    (
        "all-true-false",
        {"all": [{"author.kind": "agent"}, {"tags.any": ["x"]}]},
        {},
        PR,
        "unsatisfied",
    ),
    (
        "all-true-true",
        {"all": [{"author.kind": "agent"}, {"tags.any": ["ci"]}]},
        {},
        PR,
        "satisfied",
    ),
    (
        "any-false-true",
        {"any": [{"tags.any": ["x"]}, {"author.kind": "agent"}]},
        {},
        PR,
        "satisfied",
    ),
    (
        "any-false-false",
        {"any": [{"tags.any": ["x"]}, {"intent": "feature"}]},
        {},
        PR,
        "unsatisfied",
    ),
    ("not-false", {"not": {"tags.any": ["x"]}}, {}, PR, "satisfied"),
    ("not-true", {"not": {"tags.any": ["ci"]}}, {}, PR, "unsatisfied"),
    ("not-pending-stays-pending", {"not": {"checks.deploy": "success"}}, {}, PR, "pending"),
    ("not-error-stays-error", {"not": {"pr.draft": True}}, {}, NO_PR, "error"),
    (
        "all-false-beats-pending",
        {"all": [{"checks.deploy": "success"}, {"tags.any": ["x"]}]},
        {},
        PR,
        "unsatisfied",
    ),
    (
        "all-pending-and-true",
        {"all": [{"checks.deploy": "success"}, {"tags.any": ["ci"]}]},
        {},
        PR,
        "pending",
    ),
    (
        "all-error-beats-pending",
        {"all": [{"checks.deploy": "success"}, {"pr.draft": False}]},
        {},
        NO_PR,
        "error",
    ),
    (
        "any-pending-or-false",
        {"any": [{"checks.deploy": "success"}, {"tags.any": ["x"]}]},
        {},
        PR,
        "pending",
    ),
    (
        "any-true-beats-error",
        {"any": [{"pr.draft": False}, {"tags.any": ["ci"]}]},
        {},
        NO_PR,
        "satisfied",
    ),
    ("any-error-or-false", {"any": [{"pr.draft": False}, {"tags.any": ["x"]}]}, {}, NO_PR, "error"),
    ("mapping-keys-are-all", {"author.kind": "agent", "tags.any": ["x"]}, {}, PR, "unsatisfied"),
    (
        "nested-any-in-all",
        {
            "all": [
                {"any": [{"intent": "feature"}, {"intent": "bugfix"}]},
                {"not": {"paths": ["infra/**"]}},
            ]
        },
        {},
        PR,
        "satisfied",
    ),
]


def _pr_for(spec: Any) -> dict[str, Any] | None:
    if spec is None:
        return None
    if spec == PR:
        return base_pr()
    return changed(base_pr(), spec)


@pytest.mark.parametrize(
    ("predicate", "changes", "pr", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_predicate(
    predicate: dict[str, Any], changes: dict[str, Any], pr: Any, expected: str
) -> None:
    policy = policy_of(
        [{"name": "t", "require": predicate}],
        teams={"payments": ["alice", "bob"]},
    )
    result = policies.evaluate(policy, statement(changes), _pr_for(pr)).rule("t")
    assert result.state == expected, result.reasons
    assert result.reasons, "every state comes with reasons"


def test_there_are_at_least_sixty_cases() -> None:
    assert len(CASES) >= 60
    assert len({case[0] for case in CASES}) == len(CASES)
