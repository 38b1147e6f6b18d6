"""``writgate gate check`` and ``writgate review run`` as subprocesses, and the composite action's
script run the way GitHub Actions runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.unit.judge_repos import make_repo

ROOT = Path(__file__).parent.parent.parent
WRITGATE = str(Path(sys.executable).parent / "writgate")
SECRET = "ghp_" + "Mn8Bv7Cx6Za5Sd4Fg3Hj2Kl1Qw0ErTyUiOpAs"
POLICY = """\
policy: writgate/v1
name: ci-guard
rules:
  - name: no-secrets
    if: {review.findings: {reviewer: secrets, count: "> 0"}}
    block: "A secret was found in the change."
  - name: clean-review
    require: {review.findings: {severity: ">= error", count: "== 0"}}
"""
APPROVAL_POLICY = POLICY + "  - name: one-approval\n    require: {approvals: {count: 1}}\n"
CLEAN = {
    "src/app.py": "def answer():\n    return 42\n",
    "tests/test_app.py": (
        "from src.app import answer\n\n\ndef test_answer():\n    assert answer() == 42\n"
    ),
}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("WRITGATE_", "GITHUB_"))
    }
    environment["WRITGATE_HOME"] = str(tmp_path / "home")
    return environment


def writgate(
    env: dict[str, str], *args: str, expect: int = 0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [WRITGATE, *args], env=env, capture_output=True, text=True, timeout=120, check=False,
        cwd=cwd,
    )  # fmt: skip
    assert result.returncode == expect, (args, result.stdout, result.stderr)
    return result


def files(tmp_path: Path, **named: str) -> dict[str, Path]:
    paths = {}
    for name, text in named.items():
        path = tmp_path / name
        path.write_text(text)
        paths[name] = path
    return paths


def change(tmp_path: Path, head: dict[str, str]) -> tuple[Path, str, str]:
    return make_repo(
        tmp_path / "r",
        {"src/app.py": "def answer():\n    return 41\n", "tests/test_app.py": "x = 1\n"},
        head,
    )


def test_gate_check_allow_with_json_output(env: dict[str, str], tmp_path: Path) -> None:
    repo, base, head = change(tmp_path, CLEAN)
    policy = files(tmp_path, **{"policy.yaml": POLICY})["policy.yaml"]
    result = writgate(
        env, "gate", "check", "--repo", str(repo), "--base", base, "--head", head,
        "--policy", str(policy), "--reviewers", "secrets,test-tampering", "--format", "json",
    )  # fmt: skip
    output = json.loads(result.stdout)
    assert set(output) == {"decision", "rules", "policyDigest", "passportId"}
    assert output["decision"] == "allow"
    assert output["rules"] == [
        {"name": "no-secrets", "state": "skipped", "reasons": ["0 findings from secrets, not > 0"]},
        {"name": "clean-review", "state": "satisfied", "reasons": output["rules"][1]["reasons"]},
    ]
    assert output["policyDigest"].startswith("sha256:") and output["passportId"].startswith(
        "sha256:"
    )


def test_gate_check_block_never_prints_the_secret(env: dict[str, str], tmp_path: Path) -> None:
    repo, base, head = change(tmp_path, {"src/app.py": f"TOKEN = '{SECRET}'\n"})
    policy = files(tmp_path, **{"policy.yaml": POLICY})["policy.yaml"]
    summary = tmp_path / "summary.md"
    env["GITHUB_STEP_SUMMARY"] = str(summary)
    result = writgate(
        env, "gate", "check", "--repo", str(repo), "--base", base, "--head", head,
        "--policy", str(policy), "--format", "json", expect=1,
    )  # fmt: skip
    output = json.loads(result.stdout)
    assert output["decision"] == "block"
    assert output["rules"][0]["state"] == "unsatisfied"
    assert "secrets/github-token at src/app.py:1" in output["rules"][0]["reasons"][0]
    markdown = summary.read_text()
    assert "Merge gate: **block**" in markdown and "no-secrets" in markdown
    for text in (result.stdout, result.stderr, markdown):
        assert SECRET not in text
    review = writgate(
        env, "review", "run", "--repo", str(repo), "--base", base, "--head", head,
        "--reviewers", "secrets", "--format", "sarif", "--fail-on", "error", expect=1,
    )  # fmt: skip
    assert SECRET not in review.stdout + review.stderr


def test_gate_check_pending_from_a_passport_file_and_a_pr_state(
    env: dict[str, str], tmp_path: Path
) -> None:
    repo, base, head = change(tmp_path, CLEAN)
    passport = tmp_path / "passport.json"
    writgate(env, "passport", "build", "--repo", str(repo), "--base", base, "--head", head,
             "--repository", "acme/web", "--out", str(passport))  # fmt: skip
    pr = {"number": 4, "title": "t", "draft": False, "author": "writgate-bot", "base": "main",
          "headSha": head, "labels": [], "reviews": [], "checks": {}}  # fmt: skip
    paths = files(tmp_path, **{"policy.yaml": APPROVAL_POLICY, "pr.json": json.dumps(pr)})
    args = ["gate", "check", "--passport", str(passport), "--policy", str(paths["policy.yaml"]),
            "--pr", str(paths["pr.json"])]  # fmt: skip
    pending = writgate(env, *args, "--format", "json", expect=3)
    assert json.loads(pending.stdout)["decision"] == "pending"
    assert json.loads(pending.stdout)["rules"][2] == {
        "name": "one-approval", "state": "pending", "reasons": ["0 of 1 approvals"],
    }  # fmt: skip
    pr["reviews"] = [{"user": "alice", "state": "approved", "commitSha": head}]
    paths["pr.json"].write_text(json.dumps(pr))
    allowed = writgate(env, *args, "--format", "markdown", expect=0)
    assert allowed.stdout.startswith("## ✅ Merge gate: **allow**")
    text = writgate(env, *args, expect=0).stdout
    assert text.splitlines()[0].startswith("decision: allow (policy ci-guard")
    # The same approval on another head: the passport does not match, pending again.
    pr["headSha"] = "e" * 40
    paths["pr.json"].write_text(json.dumps(pr))
    stale = json.loads(writgate(env, *args, "--format", "json", expect=3).stdout)
    assert stale["rules"][0]["name"] == "passport-matches-head"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--policy", "missing.yaml"], "missing.yaml"),
        (["--policy", "bad.yaml"], "bad.yaml:"),
        (["--policy", "policy.yaml", "--pr", "bad-pr.json"], "bad-pr.json:1:"),
        (["--policy", "policy.yaml", "--pr", "list-pr.json"], "must be a JSON object"),
        (["--policy", "policy.yaml", "--passport", "policy.yaml"], "not both"),
        (["--policy", "policy.yaml", "--head", "nope"], "not a commit"),
        (["--policy", "policy.yaml", "--reviewers", "nope"], "unknown reviewer 'nope'"),
        (["--policy", "policy.yaml", "--publish"], "--publish needs --repository"),
    ],
)
def test_gate_check_bad_input_exits_2_with_one_line(
    env: dict[str, str], tmp_path: Path, extra: list[str], message: str
) -> None:
    repo, base, head = change(tmp_path, CLEAN)
    files(
        tmp_path,
        **{
            "policy.yaml": POLICY,
            "bad.yaml": "policy: writgate/v1\nname: x\nrules:\n  - name: r\n    blok: nope\n",
            "bad-pr.json": "{not json",
            "list-pr.json": "[]",
        },
    )
    args = ["gate", "check", "--repo", str(repo), "--base", base]
    if "--head" not in extra:
        args += ["--head", head]
    result = writgate(env, *args, *extra, expect=2, cwd=tmp_path)
    assert result.stdout == ""
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_gate_check_usage_errors_exit_2(env: dict[str, str], tmp_path: Path) -> None:
    missing_policy = writgate(env, "gate", "check", "--repo", ".", expect=2)
    assert "--policy" in missing_policy.stderr
    policy = files(tmp_path, **{"policy.yaml": POLICY})["policy.yaml"]
    neither = writgate(env, "gate", "check", "--policy", str(policy), expect=2)
    assert "give --repo, --base and --head, --passport, or --pull-request" in neither.stderr


def test_review_run_formats(env: dict[str, str], tmp_path: Path) -> None:
    repo, base, head = change(
        tmp_path, {"src/app.py": "def answer():\n    print(1)\n    return 42\n"}
    )
    args = ["review", "run", "--repo", str(repo), "--base", base, "--head", head,
            "--reviewers", "debug-leftovers,missing-tests"]  # fmt: skip
    text = writgate(env, *args).stdout
    assert "src/app.py:2: info [debug-leftovers/debug-print] print() added" in text
    assert text.strip().endswith("1 warning(s), 1 info (2 reviewers)")
    as_json = json.loads(writgate(env, *args, "--format", "json").stdout)
    assert as_json["counts"] == {"error": 0, "warning": 1, "info": 1}
    sarif = json.loads(writgate(env, *args, "--format", "sarif").stdout)
    schema = json.loads((ROOT / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())
    jsonschema.Draft4Validator(schema).validate(sarif)
    rdjson = json.loads(writgate(env, *args, "--format", "rdjson").stdout)
    assert [d["code"]["value"] for d in rdjson["diagnostics"]] == ["missing-tests", "debug-print"]
    lines = writgate(env, *args, "--format", "rdjsonl").stdout.splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["severity"] == "INFO"
    writgate(env, *args, "--fail-on", "warning", expect=1)
    writgate(env, *args, "--fail-on", "error", expect=0)
    saved = writgate(env, *args, "--save", "--repository", "acme/web")
    assert saved.stderr.startswith("review run rvw_")
    config = files(tmp_path, **{"reviewers.yaml": "large-diff:\n  maxLines: -3\n"})
    bad = writgate(
        env, "review", "run", "--repo", str(repo), "--base", base, "--head", head,
        "--reviewers", "large-diff", "--config", str(config["reviewers.yaml"]), expect=2,
    )  # fmt: skip
    assert "reviewers.large-diff.maxLines: must be a non-negative integer" in bad.stderr


def _action_script() -> str:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    step = next(s for s in action["runs"]["steps"] if s.get("id") == "gate")
    return str(step["run"])


def _run_action(tmp_path: Path, repo: Path, env: dict[str, str], policy: str, **inputs: str) -> Any:
    runner = tmp_path / "runner"
    runner.mkdir(exist_ok=True)
    outputs, summary = runner / "output", runner / "summary.md"
    environment = {
        **env,
        "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
        "INPUT_POLICY": policy, "INPUT_BASE": inputs.get("base", ""),
        "INPUT_HEAD": inputs.get("head", ""), "INPUT_PASSPORT": "", "INPUT_REVIEWERS": "secrets",
        "INPUT_REVIEWER_CONFIG": "", "INPUT_FORMAT": "text", "INPUT_ALLOW_PENDING": "false",
        "PR_BASE_SHA": "", "PR_HEAD_SHA": "", "PR_JSON": "null", "REPOSITORY": "acme/web",
        "RUNNER_TEMP": str(runner), "GITHUB_OUTPUT": str(outputs),
        "GITHUB_STEP_SUMMARY": str(summary),
    }  # fmt: skip
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", _action_script()], cwd=repo, env=environment,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return result, outputs, summary


def test_composite_action_script(env: dict[str, str], tmp_path: Path) -> None:
    repo, base, head = change(tmp_path, CLEAN)
    (tmp_path / "policy.yaml").write_text(POLICY)
    result, outputs, summary = _run_action(
        tmp_path, repo, env, str(tmp_path / "policy.yaml"), base=base, head=head
    )
    assert result.returncode == 0, result.stderr
    assert "decision=allow" in outputs.read_text()
    assert "Merge gate: **allow**" in summary.read_text()
    assert "decision: allow" in result.stdout

    repo2, base2, head2 = change(tmp_path / "b", {"src/app.py": f"T = '{SECRET}'\n"})
    result, outputs, _summary = _run_action(
        tmp_path / "b", repo2, env, str(tmp_path / "policy.yaml"), base=base2, head=head2
    )
    assert result.returncode == 1
    assert "decision=block" in outputs.read_text()
    assert SECRET not in result.stdout + result.stderr


def test_gate_check_a_pull_request_on_the_local_forge(env: dict[str, str], tmp_path: Path) -> None:
    from tests.conftest import git

    source = tmp_path / "source"
    (source / "src").mkdir(parents=True)
    (source / "src" / "app.py").write_text("def answer():\n    return 41\n")
    created = writgate(env, "forge", "create-repo", "acme/web", "--from", str(source), "--json")
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", json.loads(created.stdout)["cloneUrl"], str(work))
    git(work, "checkout", "-qb", "fix")
    (work / "src" / "app.py").write_text("def answer():\n    return 42\n")
    git(work, "commit", "-qam", "fix")
    git(work, "push", "-q", "origin", "fix")
    writgate(env, "forge", "open", "--repo", "acme/web", "--head", "fix", "--title", "Fix")
    policy = files(tmp_path, **{"policy.yaml": APPROVAL_POLICY})["policy.yaml"]
    args = ["gate", "check", "--pull-request", "1", "--repository", "acme/web",
            "--policy", str(policy), "--reviewers", "secrets", "--format", "json"]  # fmt: skip
    pending = json.loads(writgate(env, *args, "--publish", expect=3).stdout)
    assert pending["decision"] == "pending" and pending["decisionId"].startswith("gd_")
    statuses = json.loads(writgate(env, "forge", "prs", "--json").stdout)["items"][0]["checks"]
    assert statuses["writgate/merge-gate"] == "pending"
    writgate(env, "forge", "approve", "1", "--repo", "acme/web", "--as", "alice")
    allowed = json.loads(writgate(env, *args, "--publish", expect=0).stdout)
    assert allowed["decision"] == "allow"
    statuses = json.loads(writgate(env, "forge", "prs", "--json").stdout)["items"][0]["checks"]
    assert statuses["writgate/merge-gate"] == "success"
    missing = writgate(env, "gate", "check", "--pull-request", "1", "--policy", str(policy),
                       expect=2)  # fmt: skip
    assert "--pull-request needs --repository" in missing.stderr
