"""Loading policies: positioned errors for every malformed construct, extends, digests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import policies
from policies import PolicyError, load_policy, parse_policy
from writgate.errors import InputError

HEADER = "policy: writgate/v1\nname: t\n"


def rules(body: str) -> str:
    """A policy whose ``rules:`` list is ``body`` (starting on line 4)."""
    return HEADER + "rules:\n" + body


# (id, text, line, column, field, message fragment)
ERRORS: list[tuple[str, str, int | None, int | None, str | None, str]] = [
    ("invalid-yaml", HEADER + "rules: [\n", 4, 1, None, "invalid YAML"),
    (
        "bad-indentation",
        HEADER + "rules:\n  - name: a\n   allow: true\n",
        5,
        4,
        None,
        "invalid YAML",
    ),
    ("empty", "", None, None, None, "the policy is empty"),
    ("only-comment", "# nothing\n", None, None, None, "the policy is empty"),
    ("top-level-list", "- a\n- b\n", 1, 1, None, "expected a policy (a mapping"),
    (
        "two-documents",
        HEADER + "rules: []\n---\nx: 1\n",
        4,
        1,
        None,
        "expected a single document in the stream; but found another document",
    ),
    ("missing-version", "name: t\nrules: []\n", 1, 1, "policy", "missing key 'policy'"),
    (
        "wrong-version",
        "policy: writgate/v2\nname: t\nrules: []\n",
        1,
        9,
        "policy",
        "expected the language version 'writgate/v1', found the string 'writgate/v2'",
    ),
    ("missing-name", "policy: writgate/v1\nrules: []\n", 1, 1, "name", "missing key 'name'"),
    (
        "name-not-string",
        "policy: writgate/v1\nname: [a]\nrules: []\n",
        2,
        7,
        "name",
        "found a list",
    ),
    ("missing-rules", HEADER, 1, 1, "rules", "missing key 'rules'"),
    (
        "unknown-top-level-key",
        HEADER + "rulez: []\n",
        3,
        1,
        "rulez",
        "unknown key 'rulez'; expected one of: policy, name, description",
    ),
    (
        "duplicate-key",
        HEADER + "name: u\nrules: []\n",
        3,
        1,
        "name",
        "duplicate key (first given on line 2)",
    ),
    (
        "rules-not-list",
        HEADER + "rules: {a: 1}\n",
        3,
        8,
        "rules",
        "expected a list of rules, found a mapping",
    ),
    ("rule-not-mapping", rules("  - just-a-name\n"), 4, 5, "rules[0]", "expected a rule"),
    ("rule-without-name", rules("  - allow: true\n"), 4, 5, "rules[0].name", "missing key 'name'"),
    (
        "rule-name-with-space",
        rules("  - name: no secrets\n    allow: true\n"),
        4,
        11,
        "rules[0].name",
        "expected a rule name of letters, digits",
    ),
    (
        "duplicate-rule-name",
        rules("  - {name: a, allow: true}\n  - {name: a, warn: w}\n"),
        5,
        5,
        "rules[1].name",
        "duplicate rule name 'a' (also rules[0])",
    ),
    (
        "rule-without-action",
        rules("  - name: a\n    if: {pr.draft: true}\n"),
        4,
        5,
        "rules[0]",
        "rule 'a' needs exactly one of block, require, warn, allow",
    ),
    (
        "rule-with-two-actions",
        rules("  - name: a\n    block: no\n    warn: careful\n"),
        6,
        5,
        "rules[0].warn",
        "has both 'block' and 'warn'",
    ),
    (
        "allow-false",
        rules("  - name: a\n    allow: false\n"),
        5,
        12,
        "rules[0].allow",
        "expected true (allow: true)",
    ),
    (
        "block-not-a-message",
        rules("  - name: a\n    block: {x: 1}\n"),
        5,
        12,
        "rules[0].block",
        "expected the block message (a string), found a mapping",
    ),
    (
        "warn-empty",
        rules("  - name: a\n    warn: ''\n"),
        5,
        11,
        "rules[0].warn",
        "expected the warn message",
    ),
    (
        "unknown-rule-key",
        rules("  - name: a\n    iff: {pr.draft: true}\n    allow: true\n"),
        5,
        5,
        "rules[0].iff",
        "unknown key 'iff'; expected one of: name, description, if, block, require, warn, allow",
    ),
    (
        "if-not-mapping",
        rules("  - name: a\n    if: pr.draft\n    allow: true\n"),
        5,
        9,
        "rules[0].if",
        "expected a predicate",
    ),
    (
        "if-empty",
        rules("  - name: a\n    if: {}\n    allow: true\n"),
        5,
        9,
        "rules[0].if",
        "expected a predicate",
    ),
    ("require-null", rules("  - name: a\n    require:\n"), 5, 13, "rules[0].require", "found null"),
    (
        "all-empty",
        rules("  - name: a\n    if: {all: []}\n    allow: true\n"),
        5,
        15,
        "rules[0].if.all",
        "non-empty list",
    ),
    (
        "any-not-list",
        rules("  - name: a\n    if: {any: {pr.draft: true}}\n    allow: true\n"),
        5,
        15,
        "rules[0].if.any",
        "expected a non-empty list of predicates for 'any', found a mapping",
    ),
    (
        "not-list",
        rules("  - name: a\n    if: {not: [{pr.draft: true}]}\n    allow: true\n"),
        5,
        15,
        "rules[0].if.not",
        "expected a predicate",
    ),
    (
        "nested-item-error",
        rules(
            "  - name: a\n    if:\n      all:\n        - pr.draft: true\n"
            "        - tags.some: [x]\n    allow: true\n"
        ),
        8,
        11,
        "rules[0].if.all[1].tags.some",
        "unknown attribute 'tags.some'; did you mean 'tags.none'?",
    ),
    (
        "empty-metadata-key",
        rules("  - name: a\n    if: {metadata.: x}\n    allow: true\n"),
        5,
        10,
        "rules[0].if.metadata.",
        "unknown attribute 'metadata.'",
    ),
    (
        "empty-check-context",
        rules("  - name: a\n    if: {checks.: success}\n    allow: true\n"),
        5,
        10,
        "rules[0].if.checks.",
        "unknown attribute 'checks.'",
    ),
    (
        "bad-comparison",
        rules("  - name: a\n    if: {diff.lines: '>> 5'}\n    allow: true\n"),
        5,
        22,
        "rules[0].if.diff.lines",
        'expected a comparison such as "> 500"',
    ),
    (
        "comparison-float",
        rules("  - name: a\n    if: {diff.lines: '> 5.5'}\n    allow: true\n"),
        5,
        22,
        "rules[0].if.diff.lines",
        "expected a comparison",
    ),
    (
        "comparison-bool",
        rules("  - name: a\n    if: {diff.files: true}\n    allow: true\n"),
        5,
        22,
        "rules[0].if.diff.files",
        "found the boolean true",
    ),
    (
        "bad-severity",
        rules(
            "  - name: a\n    if: {review.findings: {severity: '>= critical'}}\n    allow: true\n"
        ),
        5,
        38,
        "rules[0].if.review.findings.severity",
        "expected a severity (info, warning, error)",
    ),
    (
        "findings-unknown-key",
        rules("  - name: a\n    if: {review.findings: {reviewers: secrets}}\n    allow: true\n"),
        5,
        28,
        "rules[0].if.review.findings.reviewers",
        "unknown key 'reviewers'; expected one of: reviewer, rule, severity, count",
    ),
    (
        "approvals-without-count",
        rules("  - name: a\n    require: {approvals: {from: {users: [a]}}}\n"),
        5,
        26,
        "rules[0].require.approvals.count",
        "missing key 'count'",
    ),
    (
        "approvals-zero",
        rules("  - name: a\n    require: {approvals: 0}\n"),
        5,
        26,
        "rules[0].require.approvals",
        "expected an integer >= 1",
    ),
    (
        "approvals-from-unknown",
        rules("  - name: a\n    require: {approvals: {count: 1, from: {groups: [a]}}}\n"),
        5,
        44,
        "rules[0].require.approvals.from.groups",
        "unknown key 'groups'; expected one of: users, teams",
    ),
    (
        "approvals-from-empty",
        rules("  - name: a\n    require: {approvals: {count: 1, from: {}}}\n"),
        5,
        43,
        "rules[0].require.approvals.from",
        "expected users and/or teams, found an empty mapping",
    ),
    (
        "author-kind-value",
        rules("  - name: a\n    if: {author.kind: robot}\n    allow: true\n"),
        5,
        23,
        "rules[0].if.author.kind",
        "expected one of agent, human, external, found the string 'robot'",
    ),
    (
        "author-kind-regex",
        rules("  - name: a\n    if: {author.kind: {'~=': a}}\n    allow: true\n"),
        5,
        23,
        "rules[0].if.author.kind",
        "found a mapping",
    ),
    (
        "validation-value",
        rules("  - name: a\n    require: {validation: green}\n"),
        5,
        27,
        "rules[0].require.validation",
        "expected one of passed, failed, missing",
    ),
    (
        "network-value",
        rules("  - name: a\n    if: {safety.network: closed}\n    allow: true\n"),
        5,
        26,
        "rules[0].if.safety.network",
        "expected one of none, restricted, open",
    ),
    (
        "check-state",
        rules("  - name: a\n    require: {checks.ci: green}\n"),
        5,
        26,
        "rules[0].require.checks.ci",
        "expected one of success, failure, pending, missing",
    ),
    (
        "bad-regex",
        rules("  - name: a\n    if: {pr.title: {'~=': '(unclosed'}}\n    allow: true\n"),
        5,
        27,
        "rules[0].if.pr.title.~=",
        "invalid regular expression: missing ), unterminated subpattern",
    ),
    (
        "regex-extra-key",
        rules("  - name: a\n    if: {pr.title: {'=~': x}}\n    allow: true\n"),
        5,
        21,
        "rules[0].if.pr.title.=~",
        "unknown key '=~'; expected one of: ~=",
    ),
    (
        "regex-empty-mapping",
        rules("  - name: a\n    if: {pr.title: {}}\n    allow: true\n"),
        5,
        20,
        "rules[0].if.pr.title",
        'expected {"~=": regex}',
    ),
    (
        "bool-not-bool",
        rules("  - name: a\n    if: {pr.draft: 'yes please'}\n    allow: true\n"),
        5,
        20,
        "rules[0].if.pr.draft",
        "expected true or false",
    ),
    (
        "paths-empty-list",
        rules("  - name: a\n    if: {paths: []}\n    allow: true\n"),
        5,
        17,
        "rules[0].if.paths",
        "non-empty list",
    ),
    (
        "paths-mapping",
        rules("  - name: a\n    if: {paths: {a: b}}\n    allow: true\n"),
        5,
        17,
        "rules[0].if.paths",
        "expected a gitignore-style glob or a list of them",
    ),
    (
        "paths-comment",
        rules("  - name: a\n    if: {paths: ['# docs']}\n    allow: true\n"),
        5,
        18,
        "rules[0].if.paths",
        "not empty, not a comment",
    ),
    (
        "paths-bare-negation",
        rules("  - name: a\n    if: {paths: ['!']}\n    allow: true\n"),
        5,
        18,
        "rules[0].if.paths",
        "not empty, not a comment",
    ),
    (
        "tags-number",
        rules("  - name: a\n    if: {tags.any: [1]}\n    allow: true\n"),
        5,
        21,
        "rules[0].if.tags.any[0]",
        "expected a name",
    ),
    (
        "defaults-value",
        HEADER + "defaults: {whenNoRuleApplies: maybe}\nrules: []\n",
        3,
        31,
        "defaults.whenNoRuleApplies",
        "expected allow, block or pending",
    ),
    (
        "defaults-unknown",
        HEADER + "defaults: {otherwise: allow}\nrules: []\n",
        3,
        12,
        "defaults.otherwise",
        "unknown key 'otherwise'",
    ),
    (
        "teams-not-list",
        HEADER + "teams: {payments: alice}\nrules: []\n",
        3,
        19,
        "teams.payments",
        "expected a list of logins",
    ),
    (
        "merge-key-in-rule",
        HEADER + "rules:\n  - <<: {name: a}\n    allow: true\n",
        4,
        5,
        "rules[0]",
        "merge keys (<<) are not supported",
    ),
    (
        "custom-tag",
        rules("  - name: !secret a\n    allow: true\n"),
        4,
        11,
        "rules[0].name",
        "unsupported YAML tag '!secret'",
    ),
    (
        "recursive-alias",
        rules("  - &r {name: a, if: {not: *r}, allow: true}\n"),
        4,
        5,
        "rules[0].if.not",
        "recursive YAML alias",
    ),
    (
        "huge-integer",
        rules("  - name: a\n    if: {diff.lines: 99999999999999999999}\n    allow: true\n"),
        5,
        22,
        "rules[0].if.diff.lines",
        "a number between",
    ),
    (
        "infinity",
        rules("  - name: a\n    if: {metadata.x: .inf}\n    allow: true\n"),
        5,
        22,
        "rules[0].if.metadata.x",
        "expected a finite number",
    ),
    (
        "control-character",
        HEADER + "rules: []\n  \x01\n",
        4,
        3,
        None,
        "unacceptable character #x0001",
    ),
    (
        "description-not-string",
        HEADER + "description: 3\nrules: []\n",
        3,
        14,
        "description",
        "expected a string, found the number 3",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "column", "field", "fragment"),
    [pytest.param(*case[1:], id=case[0]) for case in ERRORS],
)
def test_positioned_errors(
    text: str, line: int | None, column: int | None, field: str | None, fragment: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source="p.yaml")
    error = caught.value
    assert fragment in error.message
    assert (error.file, error.line, error.column, error.field) == ("p.yaml", line, column, field)
    assert isinstance(error, InputError)
    assert str(error).startswith("p.yaml" + (f":{line}:{column}" if line else "") + ": ")


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 9):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    with pytest.raises(PolicyError, match="too large"):
        parse_policy("\n".join(lines) + "\n", source="bomb.yaml")


def test_deep_nesting_is_refused() -> None:
    nested = "{not: " * 40 + "{pr.draft: true}" + "}" * 40
    with pytest.raises(PolicyError, match="nested deeper than 32 levels"):
        parse_policy(rules(f"  - name: a\n    if: {nested}\n    allow: true\n"))
    very = "[" * 5000 + "]" * 5000
    with pytest.raises(PolicyError, match="nested too deeply"):
        parse_policy(HEADER + f"rules: {very}\n")


def test_valid_forms_are_accepted() -> None:
    policy = parse_policy(
        rules(
            textwrap.dedent(
                """\
            - name: everything
              description: uses every attribute once
              if:
                all:
                  - paths: "src/**"
                  - paths.only: ["src/**", "tests/**"]
                  - paths.none: ["infra/**"]
                  - paths.added: ["src/**"]
                  - paths.removed: ["old/**"]
                  - paths.renamed: ["lib/**"]
                  - paths.modified: ["src/**"]
                  - diff.files: 3
                  - diff.additions: "> 0"
                  - diff.deletions: "< 10"
                  - diff.lines: "!= 0"
                  - author.kind: [agent, external]
                  - author.login: {"~=": "bot$"}
                  - writer.model: [a, b]
                  - writer.agent: command
                  - tags.any: ci
                  - tags.all: [ci]
                  - tags.none: [wip]
                  - metadata.ticket: {"~=": "^PAY-"}
                  - metadata.attempt: 2
                  - intent: [bugfix]
                  - provenance.verified: true
                  - safety.network: none
                  - validation: [passed, missing]
                  - review.findings: {reviewer: [secrets], rule: aws, severity: error, count: 0}
                  - pr.draft: false
                  - pr.labels.any: [a]
                  - pr.labels.all: [a]
                  - pr.labels.none: [b]
                  - pr.title: {"~=": "fix"}
                  - pr.base: main
                  - checks.ci/tests: [success, missing]
                  - any:
                      - approvals: 1
                      - not: {approvals: {count: 2, from: {users: [a], teams: [b]}}}
              require: {review.findings: "== 0"}
            """
            )
        )
    )
    (rule,) = policy.rules
    assert (rule.name, rule.kind, rule.description) == (
        "everything",
        "require",
        "uses every attribute once",
    )
    assert policy.team_names == {"b"}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


BASE = """\
policy: writgate/v1
name: base
defaults: {whenNoRuleApplies: block}
teams: {payments: [alice], security: [sam]}
rules:
  - {name: no-secrets, if: {review.findings: {reviewer: secrets}}, block: secret}
  - {name: approval, require: {approvals: 1}}
  - {name: big, if: {diff.lines: "> 1000"}, warn: big}
"""


def test_extends_merges_rules_teams_and_defaults(tmp_path: Path) -> None:
    write(tmp_path / "shared" / "base.yaml", BASE)
    child = write(
        tmp_path / "child.yaml",
        """\
        policy: writgate/v1
        name: child
        extends: shared/base.yaml
        teams: {payments: [alice, bob]}
        rules:
          - {name: approval, require: {approvals: 2}}
          - {name: docs, if: {paths.only: ["docs/**"]}, allow: true}
        """,
    )
    policy = load_policy(child)
    assert policy.name == "child"
    assert [r.name for r in policy.rules] == ["no-secrets", "approval", "big", "docs"]
    assert policy.rule("approval").source == {"name": "approval", "require": {"approvals": 2}}
    assert policy.teams == {"payments": ("alice", "bob"), "security": ("sam",)}
    assert policy.when_no_rule_applies == "block"
    assert policy.source == str(child)


def test_extends_digest_equals_the_flat_policy(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", BASE)
    child = write(
        tmp_path / "child.yaml",
        "policy: writgate/v1\nname: base\nextends: base.yaml\n",
    )
    flat = parse_policy(BASE)
    merged = load_policy(child)
    assert merged.digest == flat.digest
    assert merged.to_json() == flat.to_json()


def test_digest_ignores_formatting_but_not_content() -> None:
    block = parse_policy(
        "# a comment\npolicy: writgate/v1\nname: t\nrules:\n  - name: a\n"
        "    if:\n      diff.lines: '> 5'\n    allow: true\n"
    )
    flow = parse_policy(
        '{"policy": "writgate/v1", "name": "t", "rules": '
        '[{"allow": true, "if": {"diff.lines": "> 5"}, "name": "a"}]}'
    )
    assert block.digest == flow.digest
    changed = parse_policy(
        "policy: writgate/v1\nname: t\nrules:\n"
        "  - {name: a, if: {diff.lines: '> 6'}, allow: true}\n"
    )
    assert changed.digest != block.digest
    explicit_default = parse_policy(
        "policy: writgate/v1\nname: t\ndefaults: {whenNoRuleApplies: pending}\nrules:\n"
        "  - {name: a, if: {diff.lines: '> 5'}, allow: true}\n"
    )
    assert explicit_default.digest == block.digest  # the default is part of the document


def test_extends_list_and_library(tmp_path: Path) -> None:
    write(
        tmp_path / "extra.yaml",
        "policy: writgate/v1\nname: extra\nrules:\n  - {name: extra, warn: x}\n",
    )
    child = write(
        tmp_path / "child.yaml",
        "policy: writgate/v1\nname: c\nextends: [library:default, extra.yaml]\nrules: []\n",
    )
    policy = load_policy(child)
    default = load_policy("library:default")
    assert [r.name for r in policy.rules] == [*(r.name for r in default.rules), "extra"]


def test_extends_cycle_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "policy: writgate/v1\nname: a\nextends: b.yaml\nrules: []\n")
    write(tmp_path / "b.yaml", "policy: writgate/v1\nname: b\nextends: [a.yaml]\nrules: []\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "a.yaml")
    error = caught.value
    assert error.file == str(tmp_path / "b.yaml")
    assert (error.line, error.column, error.field) == (3, 11, "extends")
    assert "extends cycle:" in error.message and "a.yaml -> " in error.message


def test_extends_self_is_a_cycle(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "policy: writgate/v1\nname: a\nextends: a.yaml\n")
    with pytest.raises(PolicyError, match="extends cycle"):
        load_policy(tmp_path / "a.yaml")


def test_extends_missing_file_points_at_the_extends(tmp_path: Path) -> None:
    child = write(tmp_path / "child.yaml", "policy: writgate/v1\nname: c\nextends: nope.yaml\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(child)
    assert (caught.value.file, caught.value.line, caught.value.column) == (str(child), 3, 10)
    assert "policy file not found" in caught.value.message


def test_errors_in_a_base_name_the_base_file(tmp_path: Path) -> None:
    base = write(tmp_path / "base.yaml", "policy: writgate/v1\nname: b\nrules:\n  - {name: x}\n")
    child = write(tmp_path / "child.yaml", "policy: writgate/v1\nname: c\nextends: base.yaml\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(child)
    assert (caught.value.file, caught.value.line) == (str(base), 4)


def test_extends_unknown_library_policy(tmp_path: Path) -> None:
    child = write(tmp_path / "c.yaml", "policy: writgate/v1\nname: c\nextends: library:nope\n")
    with pytest.raises(PolicyError, match="no library policy 'nope'; the library has: ci-autofix"):
        load_policy(child)


def test_parse_policy_resolves_extends_against_base_dir(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", BASE)
    policy = parse_policy(
        "policy: writgate/v1\nname: c\nextends: base.yaml\n", source="inline", base_dir=tmp_path
    )
    assert len(policy.rules) == 3


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="policy file not found"):
        load_policy(tmp_path / "missing.yaml")
    with pytest.raises(PolicyError, match="found a directory"):
        load_policy(tmp_path)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"policy: \xff\xfe\n")
    with pytest.raises(PolicyError, match=r"not UTF-8 text \(byte 8\)"):
        load_policy(binary)
    with pytest.raises(PolicyError, match="no library policy"):
        load_policy("library:../etc/passwd")


def test_library_policies_load() -> None:
    names = sorted(p.stem for p in policies.LIBRARY_DIR.glob("*.yaml"))
    assert names == ["ci-autofix", "default", "strict-agent"]
    for name in names:
        policy = load_policy(f"library:{name}")
        assert policy.name == name
        assert policies.library_path(name).read_text().startswith(f"# {name} — ")
