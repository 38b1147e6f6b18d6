# ruff: noqa: E501  (literal file contents read best on one line)
"""Every built-in reviewer on real git repositories, with positive and negative cases."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest

import judge
from judge import ReviewConfigError, create_reviewer, resolve_reviewers, review_change
from judge.reviewers.external import parse_diagnostics
from tests.unit.judge_repos import change_of, make_repo, review, rules

GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
AWS_KEY = "AKIA" + "QWERTYUIOPASDFGH"
STRIPE_KEY = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
SLACK_TOKEN = "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
GENERIC = "Zx9#qL2$wE7!rT4&yU1*"


# -- secrets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        (f'TOKEN = "{GITHUB_TOKEN}"', "github-token"),
        (f"aws_access_key_id = {AWS_KEY}", "aws-access-key"),
        (f'stripe.api_key = "{STRIPE_KEY}"', "stripe-key"),
        (f"SLACK = '{SLACK_TOKEN}'", "slack-token"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "private-key"),
        (f'db_password = "{GENERIC}"', "high-entropy-assignment"),
        (
            "github = 'github_pat_" + "11ABCDEFG0123456789abc_" + "x" * 30 + "Y" * 29 + "'",
            "github-token",
        ),
    ],
)
def test_secrets_are_found_on_added_lines_without_their_value(
    tmp_path: Path, line: str, rule: str
) -> None:
    findings = review(tmp_path, "secrets", {"app.py": "x = 1\n"}, {"app.py": f"x = 1\n{line}\n"})
    assert rules(findings) == [rule]
    (finding,) = findings
    assert (finding.path, finding.start_line) == ("app.py", 2)
    secret = line.split("=", 1)[-1].strip().strip("'\"") if "=" in line else line
    text = json.dumps(finding.to_json())
    assert secret not in text
    assert "redacted" in finding.message


def test_secrets_ignores_removed_lines_placeholders_and_allowlisted_lines(tmp_path: Path) -> None:
    findings = review(
        tmp_path,
        "secrets",
        {"app.py": f'OLD = "{GITHUB_TOKEN}"\n'},
        {
            "app.py": 'password = "changeme-please"\n'
            'api_key = "${API_KEY}"\n'
            'token = "aaaaaaaaaaaaaaaaaaaa"\n'
            f'FIXTURE = "{AWS_KEY}"  # pragma: allowlist secret\n'
        },
    )
    assert findings == []


def test_secrets_rejects_unknown_options() -> None:
    with pytest.raises(ReviewConfigError) as raised:
        create_reviewer("secrets", {"entropyy": True})
    assert raised.value.field == "reviewers.secrets.entropyy"


# -- sensitive paths -----------------------------------------------------------------------


def test_sensitive_paths_default_and_configured_globs(tmp_path: Path) -> None:
    findings = review(
        tmp_path / "a",
        "sensitive-paths",
        {},
        {
            ".github/workflows/ci.yml": "on: push\n",
            "deploy/.env.production": "A=1\n",
            "src/a.py": "x = 1\n",
        },
    )
    assert sorted(f.path or "" for f in findings) == [
        ".github/workflows/ci.yml",
        "deploy/.env.production",
    ]
    configured = review(
        tmp_path / "b",
        "sensitive-paths",
        {},
        {"services/payments/api.py": "x = 1\n", ".github/workflows/ci.yml": "on: push\n"},
        {"paths": ["services/payments/**"], "severity": "error"},
    )
    assert [(f.path, f.severity) for f in configured] == [("services/payments/api.py", "error")]


def test_sensitive_paths_negative(tmp_path: Path) -> None:
    assert (
        review(tmp_path, "sensitive-paths", {}, {"src/app.py": "x = 1\n", "docs/a.md": "hi\n"})
        == []
    )


# -- missing tests -------------------------------------------------------------------------


def test_missing_tests_when_source_changes_alone(tmp_path: Path) -> None:
    findings = review(
        tmp_path,
        "missing-tests",
        {"src/calc.py": "x = 1\n"},
        {"src/calc.py": "x = 2\ny = 3\n", "docs/guide.md": "a\n"},
    )
    assert [(f.rule, f.path) for f in findings] == [("missing-tests", "src/calc.py")]
    assert "2 lines added" in findings[0].message


def test_missing_tests_negative_when_a_test_changes_or_only_docs(tmp_path: Path) -> None:
    with_tests = review(
        tmp_path / "a",
        "missing-tests",
        {"src/calc.py": "x = 1\n"},
        {"src/calc.py": "x = 2\n", "tests/test_calc.py": "def test_x():\n    assert 1\n"},
    )
    docs_only = review(
        tmp_path / "b", "missing-tests", {}, {"docs/guide.md": "hello\n", "README.md": "new\n"}
    )
    assert with_tests == [] and docs_only == []


# -- large diff ----------------------------------------------------------------------------


def test_large_diff_over_and_under_budget(tmp_path: Path) -> None:
    big = "".join(f"line {i}\n" for i in range(30))
    over = review(
        tmp_path / "a", "large-diff", {}, {"a.txt": big}, {"maxLines": 20, "maxFileLines": 25}
    )
    assert rules(over) == ["large-diff", "large-file-diff"]
    assert "30 changed lines" in over[0].message
    under = review(
        tmp_path / "b", "large-diff", {}, {"a.txt": big}, {"maxLines": 30, "maxFileLines": 30}
    )
    assert under == []


def test_large_diff_rejects_a_negative_budget() -> None:
    with pytest.raises(ReviewConfigError, match="non-negative integer"):
        create_reviewer("large-diff", {"maxLines": -1})


# -- dependencies --------------------------------------------------------------------------

PACKAGE = '{"name": "web", "version": "1.0.0", "dependencies": {"left-pad": "^1.0.0"}}\n'


def test_manifest_dependency_change_without_lockfile_is_drift(tmp_path: Path) -> None:
    findings = review(
        tmp_path,
        "dependencies",
        {"package.json": PACKAGE, "package-lock.json": "{}\n"},
        {"package.json": PACKAGE.replace('"^1.0.0"}', '"^1.0.0", "lodash": "4.17.21"}')},
    )
    assert rules(findings) == ["lockfile-drift", "manifest-changed"]
    drift = next(f for f in findings if f.rule == "lockfile-drift")
    assert drift.severity == "warning" and "package-lock.json" in drift.message


def test_lockfile_change_without_manifest_is_drift(tmp_path: Path) -> None:
    findings = review(
        tmp_path,
        "dependencies",
        {"pyproject.toml": "[project]\nname='a'\n", "uv.lock": "v1\n"},
        {"uv.lock": "v2\n"},
    )
    assert rules(findings) == ["lockfile-changed", "lockfile-drift"]


def test_dependencies_negative(tmp_path: Path) -> None:
    both = review(
        tmp_path / "a",
        "dependencies",
        {"package.json": PACKAGE, "package-lock.json": "{}\n"},
        {"package.json": PACKAGE.replace("^1.0.0", "^1.1.0"), "package-lock.json": '{"v": 2}\n'},
    )
    assert rules(both) == ["lockfile-changed", "manifest-changed"]
    version_bump_only = review(
        tmp_path / "b",
        "dependencies",
        {"package.json": PACKAGE, "package-lock.json": "{}\n"},
        {"package.json": PACKAGE.replace('"1.0.0"', '"1.0.1"')},
    )
    assert version_bump_only == []
    pyproject_tool_setting = review(
        tmp_path / "c",
        "dependencies",
        {"pyproject.toml": "[project]\nname = 'a'\ndependencies = ['httpx']\n", "uv.lock": "v1\n"},
        {
            "pyproject.toml": "[project]\nname = 'a'\ndependencies = ['httpx']\n\n[tool.ruff]\nline-length = 100\n"
        },
    )
    assert pyproject_tool_setting == []


# -- debug leftovers -----------------------------------------------------------------------


def test_debug_leftovers_positive(tmp_path: Path) -> None:
    findings = review(
        tmp_path,
        "debug-leftovers",
        {"app.py": "def f():\n    return 1\n", "web/app.js": "export const a = 1;\n"},
        {
            "app.py": "def f():\n    breakpoint()\n    import pdb; pdb.set_trace()\n    print('here')\n    return 1\n",
            "web/app.js": "export const a = 1;\nconsole.log(a);\ndebugger;\n",
        },
    )
    assert [
        (f.path, f.rule, f.start_line)
        for f in sorted(findings, key=lambda f: (f.path or "", f.start_line or 0))
    ] == [
        ("app.py", "breakpoint", 2),
        ("app.py", "breakpoint", 3),
        ("app.py", "debug-print", 4),
        ("web/app.js", "debug-print", 2),
        ("web/app.js", "breakpoint", 3),
    ]


def test_debug_leftovers_negative(tmp_path: Path) -> None:
    findings = review(
        tmp_path,
        "debug-leftovers",
        {"app.py": "print('kept')\n"},
        {
            "app.py": "print('kept')\n# print('commented')\nlogger.info('x')\n",
            "tests/test_app.py": "def test_x():\n    print('debug in tests is fine')\n",
            "README.md": "Call print() to show it\n",
        },
    )
    assert findings == []


# -- binary and generated ------------------------------------------------------------------


def test_binary_and_generated_files(tmp_path: Path) -> None:
    findings = review(
        tmp_path,
        "binary-files",
        {},
        {
            "assets/logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00binary",
            "web/vendor.min.js": "var a=1;\n",
            "api/schema_pb2.py": "# Generated by the protocol buffer compiler.  DO NOT EDIT!\nx = 1\n",
            "src/app.py": "x = 1\n",
        },
    )
    assert sorted((f.path, f.rule) for f in findings) == [
        ("api/schema_pb2.py", "generated-file"),
        ("assets/logo.png", "binary-file"),
        ("web/vendor.min.js", "generated-file"),
    ]


def test_generated_marker_in_an_ordinary_name(tmp_path: Path) -> None:
    findings = review(
        tmp_path,
        "binary-files",
        {},
        {"src/models.py": "# Code generated by sqlc. DO NOT EDIT.\nx = 1\n", "src/b.py": "y = 2\n"},
    )
    assert [(f.path, f.rule) for f in findings] == [("src/models.py", "generated-file")]


# -- ruff ----------------------------------------------------------------------------------


def test_ruff_reports_only_added_lines(tmp_path: Path) -> None:
    base = "import os\n\n\ndef f():\n    return os.sep\n"
    head = "import os\nimport sys\n\n\ndef f():\n    unused = 1\n    return os.sep\n"
    findings = review(
        tmp_path, "ruff", {"app.py": "import json\n", "lib.py": base}, {"lib.py": head}
    )
    assert sorted((f.rule, f.start_line) for f in findings) == [("F401", 2), ("F841", 6)]
    assert all(f.path == "lib.py" and f.reviewer == "ruff" for f in findings)


def test_ruff_uses_the_repository_configuration_at_head(tmp_path: Path) -> None:
    head = "import os\nimport sys\n"
    findings = review(
        tmp_path,
        "ruff",
        {"pyproject.toml": "[tool.ruff.lint]\nselect = ['E']\n"},
        {"lib.py": head},
    )
    assert findings == []  # F401 is not selected by the repository


def test_ruff_negative_on_clean_code_and_non_python(tmp_path: Path) -> None:
    findings = review(
        tmp_path,
        "ruff",
        {},
        {"lib.py": "def f() -> int:\n    return 1\n", "notes.txt": "import os\n"},
    )
    assert findings == []


def test_ruff_missing_executable_fails_the_reviewer_closed(tmp_path: Path) -> None:
    repo, base, head = make_repo(tmp_path, {}, {"lib.py": "import os\n"})
    result = anyio.run(
        lambda: review_change(
            repo,
            base,
            head,
            reviewers=["ruff"],
            config={"ruff": {"executable": str(tmp_path / "nope")}},
        )
    )
    assert [(f.rule, f.severity) for f in result.findings] == [("reviewer-failed", "error")]
    assert result.reviewers[0].status == "failed"
    assert "cannot run" in (result.reviewers[0].error or "")


# -- command (rdjson, rdjsonl, SARIF) ------------------------------------------------------

TOOL = Path(__file__).with_name("judge_fake_tool.py")


@pytest.mark.parametrize("fmt", ["rdjson", "rdjsonl", "sarif"])
def test_command_reviewer_filters_tool_output_to_added_lines(tmp_path: Path, fmt: str) -> None:
    findings = review(
        tmp_path,
        "lint",
        {"src/a.py": "one\ntwo\n"},
        {"src/a.py": "one\ntwo\nthree\n", "src/b.py": "new\n"},
        {"uses": "command", "argv": [sys.executable, str(TOOL), fmt, "{files}"], "format": "auto"},
    )
    assert sorted((f.path, f.start_line, f.rule) for f in findings) == [
        ("src/a.py", 3, "no-three"),
        ("src/b.py", 1, "no-new"),
    ]
    assert {f.reviewer for f in findings} == {"lint"}
    assert {f.severity for f in findings} == {"error", "info"}


def test_command_reviewer_file_filter_keeps_context_lines(tmp_path: Path) -> None:
    findings = review(
        tmp_path,
        "command",
        {"src/a.py": "one\ntwo\n"},
        {"src/a.py": "one\ntwo\nthree\n"},
        {"argv": [sys.executable, str(TOOL), "rdjson", "{files}"], "filter": "file"},
    )
    assert sorted(f.start_line or 0 for f in findings) == [1, 3]


def test_command_reviewer_bad_output_and_bad_config(tmp_path: Path) -> None:
    repo, base, head = make_repo(tmp_path, {}, {"a.py": "x\n"})
    result = anyio.run(
        lambda: review_change(
            repo,
            base,
            head,
            reviewers=["command"],
            config={
                "command": {
                    "argv": [sys.executable, "-c", "print('not json {')"],
                    "format": "rdjson",
                }
            },
        )
    )
    assert result.findings[0].rule == "reviewer-failed"
    assert "rdjson output is not JSON" in result.findings[0].message
    with pytest.raises(ReviewConfigError) as raised:
        create_reviewer("command", {"argv": "echo hi"})
    assert raised.value.field == "reviewers.command.argv"


def test_parse_sarif_uses_rule_default_levels(tmp_path: Path) -> None:
    sarif = {
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "t",
                        "rules": [{"id": "R1", "defaultConfiguration": {"level": "error"}}],
                    }
                },
                "results": [
                    {
                        "ruleId": "R1",
                        "message": {"text": "m"},
                        "locations": [
                            {
                                "physicalLocation": {
                                    "artifactLocation": {"uri": "a.py"},
                                    "region": {"startLine": 4},
                                }
                            }
                        ],
                    }
                ],
            }
        ],
    }
    (diagnostic,) = parse_diagnostics(json.dumps(sarif), "auto", root=tmp_path)
    assert (diagnostic.path, diagnostic.line, diagnostic.rule, diagnostic.severity) == (
        "a.py",
        4,
        "R1",
        "error",
    )


# -- agent ---------------------------------------------------------------------------------

AGENT = Path(__file__).with_name("judge_fake_agent.py")


def test_agent_reviewer_renders_the_prompt_and_parses_findings(tmp_path: Path) -> None:
    prompt_log = tmp_path / "prompt.txt"
    findings = review(
        tmp_path,
        "agent",
        {"src/a.py": "def f():\n    return 1\n"},
        {"src/a.py": "def f():\n    return 1 / 0\n"},
        {
            "argv": [sys.executable, str(AGENT), str(prompt_log)],
            "prompt": "Review {{ files | map(attribute='path') | join(',') }} at {{ head[:7] }}\n{{ diff }}",
        },
    )
    assert [(f.reviewer, f.rule, f.severity, f.path, f.start_line) for f in findings] == [
        ("agent", "division-by-zero", "error", "src/a.py", 2)
    ]
    prompt = prompt_log.read_text()
    assert prompt.startswith("Review src/a.py at ")
    assert "+    return 1 / 0" in prompt


def test_agent_reviewer_bad_template_and_bad_answer(tmp_path: Path) -> None:
    with pytest.raises(ReviewConfigError) as raised:
        create_reviewer("agent", {"argv": ["true"], "prompt": "{% for x in %}"})
    assert raised.value.field == "reviewers.agent.prompt"
    repo, base, head = make_repo(tmp_path, {}, {"a.py": "x = 1\n"})
    result = anyio.run(
        lambda: review_change(
            repo,
            base,
            head,
            reviewers=["agent"],
            config={"agent": {"argv": [sys.executable, "-c", "print('I think it is fine')"]}},
        )
    )
    assert result.findings[0].rule == "reviewer-failed"
    assert "not JSON" in result.findings[0].message


class _StaticDriver:
    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.prompts: list[str] = []

    async def complete(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.answer


def test_agent_reviewer_with_a_pluggable_driver_drops_findings_outside_the_change(
    tmp_path: Path,
) -> None:
    change = change_of(tmp_path, {}, {"a.py": "x = 1\n"})
    answer = "Here you go:\n```json\n" + json.dumps(
        {"findings": [
            {"rule": "naming", "severity": "info", "path": "a.py", "line": 1, "message": "name x better"},
            {"rule": "elsewhere", "severity": "error", "path": "other.py", "line": 3, "message": "not in this change"},
        ]}
    ) + "\n```\n"  # fmt: skip
    driver = _StaticDriver(answer)
    reviewer = judge.reviewers.AgentReviewer({}, driver=driver)
    findings = anyio.run(reviewer.review, change)
    assert [(f.rule, f.path) for f in findings] == [("naming", "a.py")]
    assert "a.py (added)" in driver.prompts[0]


# -- registry and the whole review ---------------------------------------------------------


def test_default_reviewers_are_every_builtin_that_needs_no_configuration() -> None:
    names = [r.name for r in resolve_reviewers()]
    assert names == list(judge.DEFAULT_REVIEWERS)
    assert set(judge.BUILTIN_REVIEWERS) - set(names) == {"command", "agent"}


def test_unknown_reviewer_is_an_input_error() -> None:
    with pytest.raises(ReviewConfigError, match="unknown reviewer 'secret'"):
        resolve_reviewers(["secret"])


def test_repository_config_is_read_at_base_not_head(tmp_path: Path) -> None:
    repo, base, head = make_repo(
        tmp_path,
        {".writgate.yml": "reviewers: [secrets, debug-leftovers]\n"},
        {
            ".writgate.yml": "reviewers: [large-diff]\n",
            "app.py": f"print('x')\nKEY = '{AWS_KEY}'\n",
        },
    )
    result = anyio.run(review_change, repo, base, head)
    assert [o.name for o in result.reviewers] == ["secrets", "debug-leftovers"]
    assert rules(result.findings) == ["aws-access-key", "debug-print"]


def test_review_result_passport_reviews_shape(tmp_path: Path) -> None:
    repo, base, head = make_repo(tmp_path, {}, {"app.py": "print('x')\n"})
    result = anyio.run(
        lambda: review_change(repo, base, head, reviewers=["debug-leftovers", "secrets"])
    )
    reviews = result.to_passport_reviews()
    assert [r["reviewer"] for r in reviews] == ["debug-leftovers", "secrets"]
    assert reviews[0]["counts"] == {"error": 0, "warning": 0, "info": 1}
    assert reviews[1] == {
        "reviewer": "secrets",
        "counts": {"error": 0, "warning": 0, "info": 0},
        "findings": [],
    }
    assert set(reviews[0]["findings"][0]) == {
        "reviewer", "rule", "severity", "path", "startLine", "endLine", "message", "suggestion", "fingerprint"
    }  # fmt: skip


def test_bad_revision_is_a_clear_error(tmp_path: Path) -> None:
    repo, base, _head = make_repo(tmp_path, {}, {"a": "b\n"})
    with pytest.raises(judge.JudgeError, match="head: revision 'nope' is not a commit"):
        anyio.run(review_change, repo, base, "nope")
    with pytest.raises(judge.JudgeError, match="is not a git repository"):
        anyio.run(review_change, tmp_path, "HEAD~1", "HEAD")


def test_renames_and_binary_counts_match_git_numstat(tmp_path: Path) -> None:
    body = "".join(f"line {i}\n" for i in range(20))
    change = change_of(
        tmp_path,
        {"old/name.py": body, "img.bin": b"\x00\x01"},
        {"new/name.py": body + "extra\n", "img.bin": b"\x00\x02"},
        renames=[("old/name.py", "new/name.py")],
    )
    files = {f.path: f.to_json() for f in change}
    assert files["new/name.py"] == {
        "path": "new/name.py", "previousPath": "old/name.py", "status": "renamed",
        "additions": 1, "deletions": 0, "binary": False,
    }  # fmt: skip
    assert files["img.bin"]["binary"] is True and files["img.bin"]["additions"] == 0
    assert change.file("new/name.py").added_lines == {21: "extra"}  # type: ignore[union-attr]


def test_ruff_not_installed_is_skipped_unless_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("judge.reviewers.external.find_ruff", lambda: None)
    repo, base, head = make_repo(tmp_path, {}, {"lib.py": "import os\n"})
    optional = anyio.run(lambda: review_change(repo, base, head, reviewers=["ruff"]))
    assert [(f.rule, f.severity) for f in optional.findings] == [("reviewer-skipped", "info")]
    assert optional.reviewers[0].status == "skipped" and optional.failed == []
    required = anyio.run(
        lambda: review_change(
            repo, base, head, reviewers=["ruff"], config={"ruff": {"required": True}}
        )
    )
    assert [(f.rule, f.severity) for f in required.findings] == [("reviewer-failed", "error")]
    assert "ruff is not installed" in required.findings[0].message


def test_agent_prompt_never_carries_a_secret(tmp_path: Path) -> None:
    change = change_of(tmp_path, {}, {"a.py": f"KEY = '{GITHUB_TOKEN}'\nx = 1\n"})
    driver = _StaticDriver('{"findings": []}')
    anyio.run(judge.reviewers.AgentReviewer({}, driver=driver).review, change)
    assert GITHUB_TOKEN not in driver.prompts[0]
    assert "KEY = '<redacted>'" in driver.prompts[0]


def test_command_reviewer_skips_symlinks_leaving_the_tree(tmp_path: Path) -> None:
    from tests.conftest import git

    repo, base, _head = make_repo(tmp_path, {}, {"a.py": "x\n"})
    (repo / "escape").symlink_to("/etc/hostname")
    (repo / "inside").symlink_to("a.py")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "links")
    tool = (
        "import json, os\n"
        'state = f\'escape={os.path.lexists("escape")} inside={os.path.islink("inside")}\'\n'
        "print(json.dumps({'diagnostics': [{'message': state, 'location': {'path': 'a.py'}}]}))\n"
    )
    config = {"ls": {"uses": "command", "argv": [sys.executable, "-c", tool], "filter": "nofilter"}}
    result = anyio.run(lambda: review_change(repo, base, "HEAD", reviewers=["ls"], config=config))
    assert result.failed == [], result.reviewers
    assert [f.message for f in result.findings] == ["escape=False inside=True"]
