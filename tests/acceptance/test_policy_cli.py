"""``writgate policy test|simulate|schema`` as a user runs them: the installed CLI, a subprocess."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from passport import PAYLOAD_TYPE, PassportStore
from passport.tables import passports
from tests.unit.policy_inputs import file, statement
from writgate.app.database import open_database
from writgate.settings import Settings

ROOT = Path(__file__).parents[2]
WRITGATE = str(Path(sys.executable).parent / "writgate")
EXAMPLES = ROOT / "examples" / "policies"


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WRITGATE, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_policy_test_passes_the_example_cases() -> None:
    result = run(
        "policy",
        "test",
        str(EXAMPLES / "payments-guard.yaml"),
        "--cases",
        str(EXAMPLES / "payments-guard.cases.yaml"),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("policy payments-guard (sha256:")
    assert sum(line.startswith("PASS ") for line in lines) == 7
    assert lines[-1] == "7 passed, 0 failed"


def test_policy_test_reports_failures_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "agent.json").write_text(json.dumps(statement()))
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        "cases:\n"
        "  - name: agent change is allowed\n"
        "    passport: agent.json\n"
        "    expect: {decision: allow, rules: {agent-needs-approval: satisfied}}\n"
        "  - name: agent change waits\n"
        "    passport: agent.json\n"
        "    expect: {decision: pending}\n"
    )
    result = run("policy", "test", "library:default", "--cases", str(cases), "-v")
    assert result.returncode == 1
    out = result.stdout
    assert f"FAIL agent change is allowed [{cases}:2]" in out
    assert "     decision: expected allow, got pending (agent-needs-approval: pending)" in out
    assert (
        "     rule agent-needs-approval: expected satisfied, got pending "
        "(author.kind is 'agent'; approvals: no PR state yet)" in out
    )
    assert f"PASS agent change waits [{cases}:5]" in out
    assert "       no-secrets (block): skipped — 0 findings from secrets, not > 0" in out
    assert out.splitlines()[-1] == "1 passed, 1 failed"

    as_json = run("policy", "test", "library:default", "--cases", str(cases), "--json")
    assert as_json.returncode == 1
    document = json.loads(as_json.stdout)
    assert (document["passed"], document["failed"]) == (1, 1)
    assert document["cases"][0]["decision"]["decision"] == "pending"


def test_policy_test_reads_signed_passports(tmp_path: Path) -> None:
    payload = base64.b64encode(json.dumps(statement()).encode()).decode()
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": payload,
        "signatures": [{"keyid": "k", "sig": "AA=="}],
    }
    (tmp_path / "signed.json").write_text(json.dumps(envelope))
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        "cases:\n  - {name: signed, passport: signed.json, expect: {decision: pending}}\n"
    )
    result = run("policy", "test", "library:default", "--cases", str(cases))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("policy_text", "cases_text", "expected"),
    [
        (
            "policy: writgate/v1\nname: x\nrules:\n"
            "  - {name: a, if: {diff.lines: '>> 1'}, allow: true}\n",
            "cases:\n  - {name: a, passport: {predicate: {}}, expect: {decision: allow}}\n",
            "writgate: error: {policy}:4:32: rules[0].if.diff.lines: expected a comparison",
        ),
        (
            "policy: writgate/v1\nname: x\nrules: []\n",
            "cases:\n  - {name: a, passport: missing.json, expect: {decision: allow}}\n",
            "writgate: error: {cases}:2:25: cases[0].passport: ",
        ),
        (
            "policy: writgate/v1\nname: x\nrules: []\n",
            "cases:\n  - {name: a, passport: {predicate: {}}, expect: {decision: maybe}}\n",
            "writgate: error: {cases}:2:61: cases[0].expect.decision: expected allow, block",
        ),
    ],
    ids=["bad-policy", "missing-passport", "bad-expectation"],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, policy_text: str, cases_text: str, expected: str
) -> None:
    policy, cases = tmp_path / "policy.yaml", tmp_path / "cases.yaml"
    policy.write_text(policy_text)
    cases.write_text(cases_text)
    result = run("policy", "test", str(policy), "--cases", str(cases))
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(expected.format(policy=policy, cases=cases))


def test_usage_errors_exit_2() -> None:
    result = run("policy", "test", "library:default")
    assert result.returncode == 2
    assert "--cases" in result.stderr
    missing = run("policy", "test", "library:nope", "--cases", "x.yaml")
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "writgate: error: no library policy 'nope'; "
        "the library has: ci-autofix, default, strict-agent"
    )


def test_policy_schema_prints_the_json_schema() -> None:
    result = run("policy", "schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "approvals" in schema["$defs"]["predicate"]["properties"]


# -- simulate over a real SQLite database ------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _env(home: Path) -> dict[str, str]:
    return {
        "WRITGATE_HOME": str(home),
        "WRITGATE_DATABASE_URL": f"sqlite+aiosqlite:///{home / 'writgate.db'}",
        "WRITGATE_ORG": "acme",
    }


DOCS = {"change.files": [file("docs/a.md")], "writer.kind": "human", "change.head.sha": "1" * 40}
BIG = {
    "change.totals": {"files": 7, "additions": 900, "deletions": 0, "lines": 900},
    "change.head.sha": "2" * 40,
}
OLD = {"change.head.sha": "3" * 40}


@pytest.fixture
async def stored(home: Path) -> dict[str, str]:
    """Three passports of org acme (one 60 days old) and one of another org, in a real store."""
    settings = Settings(home=home, database_url=_env(home)["WRITGATE_DATABASE_URL"], org="acme")
    database = await open_database(settings)
    try:
        store = PassportStore(engine=database.engine)
        saved = {
            "docs": await store.save("acme", statement(DOCS)),
            "big": await store.save("acme", statement(BIG)),
            "old": await store.save("acme", statement(OLD)),
        }
        await store.save("other", statement({"change.head.sha": "4" * 40}))
        async with database.engine.begin() as conn:
            await conn.execute(
                update(passports)
                .where(passports.c.id == saved["old"].id)
                .values(created_at=datetime.now(UTC) - timedelta(days=60))
            )
    finally:
        await database.dispose()
    return {name: item.passport_id for name, item in saved.items()}


OLD_POLICY = (
    "policy: writgate/v1\nname: old\nrules:\n"
    "  - {name: docs, if: {paths.only: ['docs/**']}, allow: true}\n"
)
NEW_POLICY = OLD_POLICY.replace("name: old", "name: new") + (
    "  - {name: too-big, if: {diff.lines: '> 500'}, block: split it}\n"
)


@pytest.mark.anyio
async def test_policy_simulate_against_a_baseline(
    tmp_path: Path, home: Path, stored: dict[str, str]
) -> None:
    (tmp_path / "old.yaml").write_text(OLD_POLICY)
    (tmp_path / "new.yaml").write_text(NEW_POLICY)
    result = run(
        "policy", "simulate", "new.yaml", "--baseline", "old.yaml", env=_env(home), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    big = stored["big"].removeprefix("sha256:")[:12]
    assert result.stdout.splitlines() == [
        f"{big} acme/web@{'2' * 12}: pending -> block — blocked by too-big",
        "    too-big: (new rule) -> unsatisfied (diff.lines is 900 (> 500))",
        "2 passports: 1 decision would change (1 pending -> block); "
        "now 1 allow, 1 block, 0 pending",
    ]

    wider = run(
        "policy",
        "simulate",
        "new.yaml",
        "--baseline",
        "old.yaml",
        "--since",
        "90d",
        "--json",
        env=_env(home),
        cwd=tmp_path,
    )
    assert wider.returncode == 0, wider.stderr
    document = json.loads(wider.stdout)
    assert document["summary"]["passports"] == 3
    assert {p["passportId"] for p in document["passports"]} == set(stored.values())
    assert document["policy"]["name"] == "new" and document["baseline"]["name"] == "old"


@pytest.mark.anyio
async def test_policy_simulate_without_baseline_lists_new_decisions(
    tmp_path: Path, home: Path, stored: dict[str, str]
) -> None:
    (tmp_path / "new.yaml").write_text(NEW_POLICY)
    result = run(
        "policy", "simulate", "new.yaml", "--since", "2000-01-01", env=_env(home), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    assert lines[-1] == "3 passports decided: 1 allow, 1 block, 1 pending"
    assert any(line.endswith("allow — allowed by docs") for line in lines)


def test_policy_simulate_bad_input(tmp_path: Path, home: Path) -> None:
    bad_since = run("policy", "simulate", "library:default", "--since", "soon", env=_env(home))
    assert bad_since.returncode == 2
    assert bad_since.stderr.strip() == (
        "writgate: error: --since: "
        "expected an age such as 30d, 12h or 2w, or a date such as 2026-11-01"
    )
    empty = run("policy", "simulate", "library:default", env=_env(home))
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout.startswith("no passports created since ")
