"""The statement shape (contract 1), passport ids, writer sections and passport files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from passport import (
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    InvalidPassportError,
    dump_passport,
    generate_signing_key,
    load_passport,
    normalize_writer,
    parse_diff,
    passport_id,
    sign_statement,
    writer_from_run,
)
from tests.unit.passport_samples import BASE, HEAD, sample_statement


def test_statement_has_the_contract_shape() -> None:
    statement = sample_statement(
        pull_request={
            "number": 3,
            "url": "http://f/3",
            "draft": True,
            "title": "Fix",
            "author": "bot",
            "labels": ["b", "a"],
        },
    )
    assert statement["_type"] == STATEMENT_TYPE == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == PREDICATE_TYPE == "https://writgate.dev/change-passport/v1"
    head_subject, diff_subject = statement["subject"]
    assert head_subject == {"name": f"git+acme/web@{HEAD}", "digest": {"gitCommit": HEAD}}
    assert diff_subject["name"] == "diff" and len(diff_subject["digest"]["sha256"]) == 64
    predicate = statement["predicate"]
    assert list(predicate) == [
        "change",
        "writer",
        "validation",
        "reviews",
        "provenanceVerified",
        "provenanceReason",
    ]
    change = predicate["change"]
    assert change["base"] == {"ref": "main", "sha": BASE}
    assert change["head"] == {"ref": "writgate/abc-fix", "sha": HEAD}
    assert change["pullRequest"]["labels"] == ["a", "b"]
    assert change["totals"] == {"files": 3, "additions": 6, "deletions": 3, "lines": 9}
    assert change["files"][0] == {
        "path": "src/module_0.py",
        "previousPath": None,
        "status": "modified",
        "additions": 1,
        "deletions": 0,
        "binary": False,
    }
    assert list(predicate["writer"]) == [
        "kind",
        "runId",
        "chain",
        "agent",
        "model",
        "promptSha256",
        "title",
        "tags",
        "metadata",
        "intent",
        "usage",
        "sandbox",
        "startedAt",
        "finishedAt",
    ]
    assert predicate["provenanceVerified"] is False
    assert predicate["provenanceReason"] == "no signed provenance block"


def test_passport_id_is_sha256_of_rfc8785_json_and_ignores_key_order() -> None:
    statement = sample_statement()
    shuffled = json.loads(json.dumps(statement, sort_keys=True))
    assert passport_id(statement) == passport_id(shuffled)
    assert passport_id(statement).startswith("sha256:") and len(passport_id(statement)) == 71
    changed = sample_statement(head_ref="other")
    assert passport_id(changed) != passport_id(statement)
    # A known vector: RFC 8785 orders keys by UTF-16 code units and writes 1.0 as 1.
    assert passport_id({"b": 1.0, "a": "é"}) == (
        "sha256:" + __import__("hashlib").sha256('{"a":"é","b":1}'.encode()).hexdigest()
    )
    with pytest.raises(InvalidPassportError, match="canonicalizable"):
        passport_id({"x": float("nan")})


def test_validation_and_reviews_are_normalized_and_checked() -> None:
    statement = sample_statement(
        validation=[{"name": "tests", "result": "WARNED", "counts": {"passed": 2}}],
        reviews=[{"reviewer": "secrets", "findings": [{"severity": "warning", "path": "a"}]}],
    )
    assert statement["predicate"]["validation"] == [
        {
            "name": "tests",
            "result": "WARNED",
            "counts": {"passed": 2, "failed": 0, "skipped": 0, "errors": 0},
            "command": None,
        }
    ]
    assert statement["predicate"]["reviews"][0]["counts"] == {"error": 0, "warning": 1, "info": 0}
    with pytest.raises(InvalidPassportError, match=r"validation\[0\].result"):
        sample_statement(validation=[{"name": "t", "result": "OK"}])
    with pytest.raises(InvalidPassportError, match=r"validation\[0\].counts.failed"):
        sample_statement(validation=[{"result": "FAILED", "counts": {"failed": "2"}}])
    with pytest.raises(InvalidPassportError, match=r"reviews\[0\].findings\[0\].severity"):
        sample_statement(reviews=[{"reviewer": "r", "findings": [{"severity": "fatal"}]}])


def test_writer_sections() -> None:
    assert normalize_writer(None)["kind"] == "human"
    assert normalize_writer({"runId": "run_1"})["kind"] == "agent"
    with pytest.raises(InvalidPassportError, match=r"writer\.kind"):
        normalize_writer({"kind": "robot"})
    with pytest.raises(InvalidPassportError, match=r"writer\.tags"):
        normalize_writer({"kind": "human", "tags": "ci"})
    with pytest.raises(InvalidPassportError, match=r"writer\.metadata: must be a flat object"):
        normalize_writer({"kind": "human", "metadata": {"a": {"b": 1}}})
    run = {
        "id": "run_2",
        "title": "Fix",
        "tags": ["ci"],
        "metadata": {"ticket": "PAY-1"},
        "prompt": "secret prompt text",
        "modelId": "m",
        "agent": {"driver": "command"},
        "intent": {"label": "bugfix", "ruleset": "intent/v1", "matched": ["fix"]},
        "usage": {
            "turns": 1,
            "credits": 0.5,
            "inputTokens": 10,
            "outputTokens": 5,
            "reported": True,
        },
        "safety": {"network": {"mode": "none"}},
        "chain": ["run_1"],
        "startedAt": "2026-11-28T20:00:00Z",
        "finishedAt": None,
    }
    writer = writer_from_run(run)
    assert writer["kind"] == "agent" and writer["runId"] == "run_2"
    assert writer["chain"] == ["run_1"]
    assert writer["promptSha256"] == __import__("hashlib").sha256(b"secret prompt text").hexdigest()
    assert "secret prompt text" not in json.dumps(writer)
    assert writer["usage"] == {"turns": 1, "credits": 0.5, "inputTokens": 10, "outputTokens": 5}
    assert writer["sandbox"] == {"provider": "local", "network": "none"}


def test_load_passport_reads_bare_and_signed_files(tmp_path: Path) -> None:
    statement = sample_statement()
    bare = tmp_path / "bare.json"
    bare.write_bytes(dump_passport(statement))
    loaded = load_passport(bare)
    assert loaded.statement == statement and loaded.envelope is None and not loaded.signed
    envelope = sign_statement(statement, generate_signing_key())
    signed = tmp_path / "signed.json"
    signed.write_bytes(dump_passport(statement, envelope))
    loaded = load_passport(str(signed))
    assert loaded.statement == statement and loaded.envelope == envelope and loaded.signed
    assert load_passport(signed.read_bytes()).statement == statement


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"_type": ', r"bad.json:1:11: is not valid JSON"),
        (b"\xff\xfe", "bad.json: is not UTF-8"),
        (b"[]", "bad.json: statement: must be a JSON object"),
        (b'{"_type": "x"}', "bad.json: _type: must be 'https://in-toto.io/Statement/v1'"),
        (b'{"payloadType": "text/plain", "payload": "", "signatures": []}', "payloadType"),
        (
            b'{"payloadType": "application/vnd.in-toto+json", "payload": "%%", "signatures": []}',
            "payload: is not valid base64",
        ),
        (
            b'{"payloadType": "application/vnd.in-toto+json", "payload": "e30=", "signatures": []}',
            r"bad.json \(payload\): _type",
        ),
    ],
)
def test_malformed_passport_files_name_file_and_field(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(InvalidPassportError, match=message):
        load_passport(path)


def test_missing_passport_file() -> None:
    with pytest.raises(InvalidPassportError, match=r"nope\.json: cannot read"):
        load_passport("nope.json")


def test_parse_diff_understands_copies_and_quoted_paths() -> None:
    patch = (
        b"diff --git a/src.txt b/dst dir/copy.txt\n"
        b"similarity index 90%\n"
        b"copy from src.txt\n"
        b"copy to dst dir/copy.txt\n"
        b"index " + b"1" * 40 + b".." + b"2" * 40 + b" 100644\n"
        b"--- a/src.txt\n"
        b"+++ b/dst dir/copy.txt\t\n"
        b"@@ -1,2 +1,2 @@\n"
        b" same\n"
        b"-old\n"
        b"+new\n"
        b'diff --git "a/caf\\303\\251 \\"q\\".txt" "b/caf\\303\\251 \\"q\\".txt"\n'
        b"old mode 100644\n"
        b"new mode 100755\n"
    )
    files = parse_diff(patch)
    assert [(f.path, f.previous_path, f.status, f.additions, f.deletions) for f in files] == [
        ("dst dir/copy.txt", "src.txt", "copied", 1, 1),
        ('café "q".txt', None, "changed", 0, 0),
    ]


def test_parse_diff_refuses_garbage() -> None:
    with pytest.raises(InvalidPassportError, match="does not start with"):
        parse_diff(b"hello\n")
    with pytest.raises(InvalidPassportError, match="cannot parse the diff"):
        parse_diff(b"diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n x\n")
    assert parse_diff(b"") == []
