"""``writgate run|validate|resume|pipeline …`` as a user runs them: the installed CLI, a
subprocess, on the embedded default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WRITGATE = str(Path(sys.executable).parent / "writgate")

GOOD = """\
name: hello
inputs:
  who: {default: world}
stages:
  greet: {uses: command, with: {argv: [echo, "hello {{ inputs.who }}"]}}
  shout:
    uses: command
    needs: [greet]
    with: {argv: [sh, -c, "echo {{ stages.greet.outputs.stdout | trim | upper }}"]}
"""
FAILING = """\
name: failing
stages:
  broken: {uses: command, with: {argv: [sh, -c, "echo oops >&2; exit 4"]}}
  report: {uses: command, needs: [broken], if: "failure()", with: {argv: [echo, reported]}}
"""
BAD = """\
name: bad
stages:
  a:
    uses: command
    with: {argv: [echo, hi]}
    timeout: 30x
  b: {uses: comand, needs: [a]}
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    for name, text in (("good.yaml", GOOD), ("failing.yaml", FAILING), ("bad.yaml", BAD)):
        (tmp_path / name).write_text(text)
    return tmp_path


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WRITGATE_")}
    env["WRITGATE_HOME"] = str(home / ".writgate")
    return subprocess.run(
        [WRITGATE, *args], capture_output=True, text=True, cwd=home, env=env, timeout=120
    )


def test_run_prints_the_run_id_first_and_exits_by_outcome(home: Path) -> None:
    result = run(home, "run", "good.yaml", "--input", "who=you")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    run_id = lines[0]
    assert run_id.startswith("prun_") and len(run_id) == 31
    assert any("shout" in line and "succeeded" in line for line in lines[1:])
    assert lines[-1].endswith("pipeline succeeded")
    status = run(home, "pipeline", "status", run_id, "--json")
    assert status.returncode == 0
    body = json.loads(status.stdout)
    assert body["status"] == "succeeded"
    assert body["stages"][1]["outputs"] == {"exitCode": 0, "stdout": "HELLO YOU\n"}

    failed = run(home, "run", "failing.yaml")
    assert failed.returncode == 1
    assert "broken" in failed.stdout and "sh exited with code 4: oops" in failed.stdout
    assert failed.stdout.splitlines()[-1].endswith("pipeline failed (failed stage(s): broken)")


def test_validate_names_file_line_column_and_stage(home: Path) -> None:
    ok = run(home, "validate", "good.yaml")
    assert ok.returncode == 0 and "ok (hello, 2 stages)" in ok.stdout
    bad = run(home, "validate", "bad.yaml")
    assert bad.returncode == 2
    errors = bad.stderr.splitlines()
    assert errors[0] == (
        "writgate: error: bad.yaml:6:14: stage 'a': stages.a.timeout: bad duration '30x': "
        "use a number of seconds or a string like 250ms, 10s, 30m, 1h30m"
    )
    as_json = json.loads(run(home, "validate", "bad.yaml", "--json").stdout)
    assert as_json["valid"] is False and as_json["problems"][0]["line"] == 6
    # `run` refuses it the same way, before creating anything
    refused = run(home, "run", "bad.yaml")
    assert refused.returncode == 2 and refused.stdout == ""
    assert "Traceback" not in refused.stderr and len(refused.stderr.splitlines()) == 1


def test_bad_inputs_and_unknown_runs_are_one_line_errors(home: Path) -> None:
    unknown = run(home, "run", "good.yaml", "--input", "nobody=1")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (
        "writgate: error: inputs.nobody: unknown input 'nobody' (pipeline 'hello' declares: who)"
    )
    malformed = run(home, "run", "good.yaml", "--input", "novalue")
    assert malformed.returncode == 2 and "use NAME=VALUE" in malformed.stderr
    missing = run(home, "pipeline", "status", "prun_00000000000000000000000000")
    assert missing.returncode == 2 and "no pipeline run" in missing.stderr
    assert "Traceback" not in missing.stderr + unknown.stderr + malformed.stderr


def test_detach_then_resume(home: Path) -> None:
    started = run(home, "run", "good.yaml", "--detach")
    assert started.returncode == 0
    run_id = started.stdout.strip()
    assert run_id.startswith("prun_") and "writgate worker" in started.stderr
    pending = json.loads(run(home, "pipeline", "status", run_id, "--json").stdout)
    assert pending["status"] == "running"
    assert [s["status"] for s in pending["stages"]] == ["queued", "pending"]
    resumed = run(home, "resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines()[0] == run_id
    assert "succeeded" in resumed.stdout
    again = run(home, "resume", run_id)
    assert again.returncode == 0 and "already finished: succeeded" in again.stdout
    listed = run(home, "pipeline", "list", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)["items"]] == [run_id]


def test_schema_is_json_schema(home: Path) -> None:
    result = run(home, "pipeline", "schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert "stages" in schema["properties"]
