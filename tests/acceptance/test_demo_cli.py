"""The README's promise: the demo's job through the CLI, and readable failures for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WRITGATE = str(Path(sys.executable).with_name("writgate"))


def _run(
    *args: str, home: Path, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WRITGATE_")}
    environment.update({"WRITGATE_HOME": str(home), **(env or {})})
    return subprocess.run(
        [WRITGATE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )


def test_demo_goes_from_writer_to_gate_decision(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    result = _run("demo", "--home", str(home), home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.splitlines()[0].startswith("prun_")
    assert "gate decision ALLOW" in out
    assert "satisfied   tests-pass" in out
    passport_file = Path(
        next(line.strip() for line in out.splitlines() if line.strip().endswith(".json"))
    )
    statement = json.loads(passport_file.read_text())
    assert statement["predicateType"] == "https://writgate.dev/change-passport/v1"
    writer = statement["predicate"]["writer"]
    assert writer["runId"].startswith("run_") and writer["tags"] == ["ci", "owner:platform"]
    prs = _run("forge", "prs", "--json", home=home)
    assert prs.returncode == 0, prs.stderr
    items = json.loads(prs.stdout)["items"]
    assert len(items) == 1 and items[0]["draft"] is True and items[0]["repository"] == "demo/calc"
    show = _run(
        "forge", "show", str(items[0]["number"]), "--repo", "demo/calc", "--json", home=home
    )
    detail = json.loads(show.stdout)
    statuses = {s["context"]: s["state"] for s in detail["statuses"]}
    assert statuses["writgate/merge-gate"] == "success"
    assert detail["headSha"] == statement["subject"][0]["digest"]["gitCommit"]
    runs = json.loads(_run("runs", "list", "--json", home=home).stdout)["items"]
    assert runs[0]["lifecycle"] == "succeeded"
    assert runs[0]["result"]["pullRequest"]["number"] == items[0]["number"]
    follow = _run("runs", "follow", runs[0]["id"], "--json", home=home)
    assert follow.returncode == 0, follow.stderr
    events = [json.loads(line) for line in follow.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "run.queued" and events[-1]["type"] == "run.succeeded"
    assert any(e["type"] == "agent.message" for e in events)
    show = _run("runs", "show", runs[0]["id"], home=home)
    assert "lifecycle    succeeded" in show.stdout and "pull request #1" in show.stdout
    listed = _run("runs", "list", "--tag", "ci", home=home)
    assert runs[0]["id"] in listed.stdout


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["run", "does/not/exist.yaml"], {}, "does/not/exist.yaml"),
        (["run", "{malformed}"], {}, "{malformed}"),
        (["db", "upgrade"], {"WRITGATE_DATABASE_URL": "mysql://nowhere/db"}, "unsupported"),
        (["db", "upgrade"], {"WRITGATE_DATABASE_URL": "::::"}, "not a database URL"),
        (
            ["runs", "list"],
            {"WRITGATE_DATABASE_URL": "postgresql://u:pw@127.0.0.1:1/x"},
            "cannot open the database",
        ),
        (["runs", "show", "run_nope"], {}, "run_nope"),
        (["nonsense-command"], {}, "invalid choice"),
    ],
)
def test_bad_input_is_one_readable_line_and_exit_2(
    tmp_path: Path, args: list[str], env: dict[str, str], needle: str
) -> None:
    result = _run(*args, home=tmp_path / "home", env=env, timeout=60)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.stderr and "pw@" not in result.stderr


def test_malformed_pipeline_names_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\nstages:\n  a: {uses: command, with: {argv: [echo, hi]}}\n"
        "  b: {uses: nope, needs: [a]}\n"
    )
    result = _run("run", str(bad), home=tmp_path / "home", timeout=60)
    assert result.returncode == 2
    assert f"{bad}:4:" in result.stderr and "nope" in result.stderr
