"""Exports against their schemas (SARIF 2.1.0, reviewdog rdjson), and secrets never leaking into
findings, exports, stored events, tool output or logs."""

from __future__ import annotations

import copy
import json
import logging
import sys
from pathlib import Path

import anyio
import jsonschema
import pytest
from sqlalchemy import select

from judge import ReviewResult, ReviewStore, review_change, to_rdjson, to_rdjsonl, to_sarif
from tests.unit.judge_repos import make_repo
from writgate.app.database import Database
from writgate.ledger import ledger_events

DATA = Path(__file__).parent.parent / "data"
SARIF_SCHEMA = json.loads((DATA / "sarif-schema-2.1.0.json").read_text())
RDJSON_SCHEMA = json.loads((DATA / "rdjson.schema.json").read_text())
AWS = "AKIA" + "ZXCVBNMASDFGHJKL"
GITHUB = "ghp_" + "Qq1Ww2Ee3Rr4Tt5Yy6Uu7Ii8Oo9Pp0AaSsDdFf"
PASSWORD = "Pq8#Lm3@Zr6!Tx1$Wv9"
PLANTED = (AWS, GITHUB, PASSWORD)
ECHO_TOOL = (
    "import json,sys\n"
    "lines=open('src/settings.py').read().splitlines()\n"
    "print(json.dumps({'diagnostics':[{'message':'suspicious: '+l,"
    "'location':{'path':'src/settings.py','range':{'start':{'line':i}}},"
    "'severity':'WARNING','code':{'value':'echo'}} for i,l in enumerate(lines,1)]}))\n"
)


def _review(root: Path) -> ReviewResult:
    repo, base, head = make_repo(
        root,
        {
            "src/settings.py": "DEBUG = False\n",
            "tests/test_settings.py": "def test_debug():\n    assert DEBUG is False\n",
        },
        {
            "src/settings.py": (
                "DEBUG = False\n"
                f"AWS_ACCESS_KEY_ID = '{AWS}'\n"
                f"headers = {{'Authorization': 'token {GITHUB}'}}\n"
                f"db_password = '{PASSWORD}'\n"
                "print(DEBUG)\n"
            ),
            "tests/test_settings.py": "def test_debug():\n    assert DEBUG\n",
            "assets/blob.bin": b"\x00\x01\x02",  # type: ignore[dict-item]
            ".github/workflows/ci.yml": "jobs: {}\n",
        },
    )
    config = {
        "large-diff": {"maxLines": 3},
        "echo": {"uses": "command", "argv": [sys.executable, "-c", ECHO_TOOL]},
    }
    names = ["secrets", "debug-leftovers", "test-tampering", "large-diff", "binary-files",
             "sensitive-paths", "echo"]  # fmt: skip
    return anyio.run(lambda: review_change(repo, base, head, reviewers=names, config=config))


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> ReviewResult:
    return _review(tmp_path_factory.mktemp("export"))


def test_review_covers_every_kind_of_location(result: ReviewResult) -> None:
    rules = {f.rule for f in result.findings}
    expected = {
        "aws-access-key", "github-token", "high-entropy-assignment", "debug-print",
        "assertion-weakened", "large-diff", "binary-file", "sensitive-path", "echo",
    }  # fmt: skip
    assert expected <= rules
    assert any(f.path is None for f in result.findings)  # change-level (large diff)
    assert any(f.path and f.start_line is None for f in result.findings)  # file-level


def test_sarif_validates_against_the_sarif_2_1_0_schema(result: ReviewResult) -> None:
    sarif = to_sarif(result.findings, reviewers=[o.name for o in result.reviewers],
                     base=result.base, head=result.head)  # fmt: skip
    jsonschema.Draft4Validator.check_schema(SARIF_SCHEMA)
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(sarif)
    (run,) = sarif["runs"]
    assert len(run["results"]) == len(result.findings)
    levels = {r["level"] for r in run["results"]}
    assert levels == {"error", "warning", "note"}
    rule_ids = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    for sarif_result, finding in zip(run["results"], result.findings, strict=True):
        assert rule_ids[sarif_result["ruleIndex"]] == sarif_result["ruleId"]
        assert sarif_result["partialFingerprints"]["writgateFingerprint/v1"] == finding.fingerprint
    broken = copy.deepcopy(sarif)
    broken["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(SARIF_SCHEMA).validate(broken)


def test_rdjson_and_rdjsonl_validate_against_reviewdogs_format(result: ReviewResult) -> None:
    rdjson = to_rdjson(result.findings)
    validator = jsonschema.Draft7Validator(RDJSON_SCHEMA)
    validator.validate(rdjson)
    assert len(rdjson["diagnostics"]) == len(result.findings)
    diagnostic_schema = {**RDJSON_SCHEMA, "$ref": "#/definitions/Diagnostic"}
    for line in to_rdjsonl(result.findings):
        jsonschema.Draft7Validator(diagnostic_schema).validate(json.loads(json.dumps(line)))
    located = next(d for d in rdjson["diagnostics"] if d["code"]["value"] == "debug-print")
    assert located["location"] == {
        "path": "src/settings.py",
        "range": {"start": {"line": 5}, "end": {"line": 5}},
    }
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"diagnostics": [{"message": "no location"}]})


def test_planted_secrets_appear_in_no_finding_export_or_tool_output(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = _review(tmp_path)  # reviewed while the logs are captured
    echoed = [f for f in result.findings if f.rule == "echo"]
    # The tool echoes each added line; the values it echoed are redacted from its messages.
    assert len(echoed) == 4
    assert sum("<redacted>" in f.message for f in echoed) == 3
    texts = {
        "findings": json.dumps([f.to_json() for f in result.findings]),
        "review json": json.dumps(result.to_json()),
        "passport reviews": json.dumps(result.to_passport_reviews()),
        "rdjson": json.dumps(to_rdjson(result.findings)),
        "rdjsonl": json.dumps(to_rdjsonl(result.findings)),
        "sarif": json.dumps(to_sarif(result.findings)),
        "logs": caplog.text,
    }
    for where, text in texts.items():
        for secret in PLANTED:
            assert secret not in text, f"a planted secret leaked into the {where}"


@pytest.mark.anyio
async def test_planted_secrets_appear_in_no_stored_row_or_event(
    result: ReviewResult, database: Database
) -> None:
    run = await ReviewStore(engine=database.engine, ledger=database.ledger).save(
        "default", result, repository="acme/web"
    )
    stored = await ReviewStore(engine=database.engine).get("default", run.id)
    async with database.engine.connect() as conn:
        events = [row.data for row in (await conn.execute(select(ledger_events))).all()]
    text = json.dumps(stored.to_json()) + json.dumps(events)
    assert events and stored.findings
    for secret in PLANTED:
        assert secret not in text
