"""Bad input everywhere, in files: hostile pipeline YAML, policy YAML, passport JSON and diffs.

The CLI runs in this process (``writgate.app.cli.main``, exactly what the ``writgate`` script
calls), so an exception a user would see as a traceback fails the test where it happens, and
hundreds of files take seconds instead of hundreds of interpreter starts. The documented outcome
of bad input is exit code 2 and ``writgate: error: FILE[:LINE:COLUMN]: …`` on stderr.
"""

from __future__ import annotations

import io
import json
import re
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from judge.change import Change, _parse_hunks, _split_files
from judge.errors import JudgeError
from passport import InvalidPassportError, generate_signing_key, parse_diff, sign_envelope
from passport.files import PAYLOAD_TYPE
from tests.unit.passport_samples import sample_statement
from writgate.app.cli import main
from writgate.app.dashboard.forge import parse_diff_lines

from .hostile import (
    YAML_DOCUMENTS,
    alias_bomb,
    bounded,
    damaged,
    deep,
    dumps,
    fuzz,
    json_values,
    mutations,
    odd_text,
)

PIPELINE = """\
name: ci-repair
inputs:
  repository: {required: true}
  check: {default: tests}
concurrency: {group: "ci-repair-{{ inputs.repository }}", cancelInProgress: true}
stages:
  write:
    uses: writer
    with:
      repository: "{{ inputs.repository }}"
      prompt: "The {{ inputs.check }} check fails on main. Fix it."
      tags: [ci, "owner:platform"]
    timeout: 30m
    retries: {max: 1, backoff: 10s}
  review: {uses: review, needs: [write], with: {reviewers: [secrets]}}
  notify: {uses: command, needs: [review], if: "{{ always() }}", with: {argv: [echo, done]}}
"""
POLICY = """\
policy: writgate/v1
name: payments-guard
defaults: {whenNoRuleApplies: pending}
teams: {payments: [alice, bob]}
rules:
  - name: no-secrets
    block: "secrets found"
    if: {review.findings: {reviewer: secrets, severity: ">= warning"}}
  - name: small
    require: {diff.lines: "<= 500"}
  - name: agent-approved
    if: {author.kind: agent, paths: ["src/**"]}
    require: {approvals: {count: 1, from: {teams: [payments]}}}
"""
CASES = """\
cases:
  - {name: small change, passport: passport.json, expect: {decision: pending}}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-files")


def cli(*args: str | Path) -> tuple[int, str, str]:
    """``writgate ARGS`` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), bounded(f"writgate {args[0]}"):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit:  # argparse
            code = int(exit.code or 0)
    return code, out.getvalue(), err.getvalue()


def refused(code: int, err: str, path: Path, *, one_line: bool = True) -> list[str]:
    """Assert the documented refusal of a bad file: exit 2, readable lines naming the file."""
    assert code == 2, (code, err)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines, "no message"
    if one_line:
        assert len(lines) == 1, err
    for line in lines:
        assert line.startswith("writgate: error: "), line
        assert str(path) in line, line
        if re.search(r"\b(not valid|invalid) YAML\b", line) and not re.search(
            r"nested too deeply|not valid text", line
        ):
            # A YAML syntax error points at its line and column.
            assert re.search(re.escape(str(path)) + r"(?: \(payload\))?:\d+:\d+: ", line), line
    return lines


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        content = content.encode("utf-8", "surrogateescape")
    path.write_bytes(content)
    return path


yaml_text = st.one_of(st.text(max_size=120), st.binary(max_size=120))


def yaml_inputs(valid: str) -> st.SearchStrategy[str | bytes]:
    return st.one_of(damaged(valid), st.sampled_from(YAML_DOCUMENTS), yaml_text)


# -- pipeline YAML: writgate validate FILE -------------------------------------------------------


@fuzz(50)
@given(yaml_inputs(PIPELINE))
@example(alias_bomb())
@example("name: x\nstages:\n  " + alias_bomb(key="s").replace("\n", "\n  "))
@example("a: &a [*a]\n")
@example(
    "name: x\nstages:\n  a: {uses: command, with: {argv: [" + deep(3000, "{a: ", "}", "1") + "]}}\n"
)
@example("name: a\x00b\nstages: {}\n")
@example("? [a]\n: 1\n")
@example(b"\xff\xfename: x\n")
def test_pipeline_yaml(folder: Path, text: str | bytes) -> None:
    path = write(folder / "pipeline.yaml", text)
    code, out, err = cli("validate", path)
    if code == 0:
        assert out.startswith(f"{path}: ok"), out
        return
    refused(code, err, path, one_line=False)  # one line per problem, each positioned


# -- policy YAML: writgate policy test POLICY --cases CASES --------------------------------------


@fuzz(50)
@given(yaml_inputs(POLICY), st.one_of(st.just(CASES), yaml_inputs(CASES)))
@example(alias_bomb(), CASES)
@example(POLICY, alias_bomb())
@example("a: &a [*a]\n", CASES)
@example(POLICY, "cases: " + deep(3000, "{a: ", "}", "1"))
def test_policy_yaml(folder: Path, policy: str | bytes, cases: str | bytes) -> None:
    write(folder / "passport.json", json.dumps(sample_statement()))
    policy_path = write(folder / "policy.yaml", policy)
    cases_path = write(folder / "cases.yaml", cases)
    code, _out, err = cli("policy", "test", policy_path, "--cases", cases_path)
    if code in (0, 1):  # the cases ran: passed, or some failed
        assert "Traceback" not in err
        return
    assert code == 2, err
    # The message names whichever file was wrong.
    assert str(policy_path) in err or str(cases_path) in err, err
    refused(code, err, policy_path if str(policy_path) in err else cases_path)


# -- passport JSON: writgate passport show|verify ------------------------------------------------


SIGNER = generate_signing_key()


def _signed(payload: bytes) -> dict[str, Any]:
    return sign_envelope(payload, PAYLOAD_TYPE, SIGNER)


passport_documents = st.one_of(
    mutations(sample_statement(), json_values()).map(dumps),
    # Properly signed envelopes around statements that are structured but wrong.
    mutations(sample_statement(), json_values()).map(lambda s: dumps(_signed(dumps(s)))),
    mutations(_signed(dumps(sample_statement())), json_values()).map(dumps),
    json_values(st.sampled_from(["_type", "subject", "predicate", "payload", "payloadType"])).map(
        dumps
    ),
    st.binary(max_size=100),
)


@fuzz(50)
@given(passport_documents)
@example(b"[" * 100_000 + b"]" * 100_000)
@example(b'{"_type": ' + b"9" * 5000 + b"}")
@example(dumps(_signed(b"[" * 100_000 + b"]" * 100_000)))
@example(dumps(_signed(b'{"_type": ' + b"9" * 5000 + b"}")))
@example(
    dumps({**sample_statement(), "predicate": {**sample_statement()["predicate"], "reviews": [7]}})
)
@example(
    dumps(
        {
            **sample_statement(),
            "predicate": {
                **sample_statement()["predicate"],
                "reviews": [{"reviewer": "r", "findings": [{}], "counts": {"error": "many"}}],
            },
        }
    )
)
@example(dumps({"payloadType": PAYLOAD_TYPE, "payload": "%%%", "signatures": []}))
@example(dumps({**sample_statement(), "nan": float("nan")}))
def test_passport_json(folder: Path, document: bytes) -> None:
    path = write(folder / "passport.json", document)
    public = write(folder / "key.pub", SIGNER.public_key.to_pem())
    code, out, err = cli("passport", "show", path)  # loads, checks and renders the statement
    if code == 0:
        assert out.startswith("<!-- writgate-passport -->") and not err, (out[:200], err)
    else:
        refused(code, err, path)
    code, out, err = cli("passport", "verify", path, "--key", public)
    if code == 1:  # a signature that does not verify (or no signature): one readable line
        assert err.startswith(f"writgate: passport verification failed: {path}: "), err
        assert len(err.splitlines()) == 1 and "Traceback" not in err
    elif code == 2:
        refused(code, err, path)
    else:
        assert code == 0 and out.startswith("verified: passport sha256:"), (code, out, err)


# -- unified diffs -------------------------------------------------------------------------------

DIFF = """\
diff --git a/src/app.py b/src/app.py
index 83db48f..bf269f4 100644
--- a/src/app.py
+++ b/src/app.py
@@ -1,3 +1,4 @@
 import os
+import sys
 def main():
-    return 0
+    return 1
diff --git "a/docs/a b\\tc.md" "b/docs/a b\\tc.md"
new file mode 100644
index 0000000..e69de29
--- /dev/null
+++ "b/docs/a b\\tc.md"\t
@@ -0,0 +1 @@
+hello
\\ No newline at end of file
diff --git a/old.txt b/new.txt
similarity index 90%
rename from old.txt
rename to new.txt
index 1111111..2222222 100644
--- a/old.txt
+++ b/new.txt
@@ -1 +1 @@
-a
+b
diff --git a/logo.png b/logo.png
index 3333333..4444444 100644
GIT binary patch
literal 5
McmZ?wbhEHbLKY4i

literal 0
HcmV?d00001

"""
DIFF_LINES = DIFF.splitlines(keepends=True)
DIFF_TRAPS = [
    "diff --git ",
    "diff --git a/x b/y\n",
    '"a/\\q" ',
    "--- a/\n",
    "+++ /dev/null\n",
    "@@ -1,2 +1,99999999999999999999 @@\n",
    "@@ -0,0 +0,0 @@\n",
    "@@ @@\n",
    "GIT binary patch\n",
    "literal 99999999999\n",
    'rename from "x\n',
    "new file mode \n",
    "\\ No newline at end of file\n",
    "\x00",
    "\r",
    "\t",
    "\ud800",
    "\n",
]
diffs = st.one_of(
    # The real diff with lines dropped, repeated or swapped, and traps inserted.
    st.lists(st.sampled_from(DIFF_LINES), max_size=40).map("".join),
    st.tuples(st.integers(0, len(DIFF)), st.lists(st.sampled_from(DIFF_TRAPS), max_size=4)).map(
        lambda t: DIFF[: t[0]] + "".join(t[1]) + DIFF[t[0] :]
    ),
    st.lists(st.one_of(st.sampled_from(DIFF_TRAPS), odd_text), max_size=20).map(
        lambda parts: "diff --git a/x b/x\n" + "".join(parts)
    ),
    st.text(max_size=200),
).map(lambda text: text.encode("utf-8", "surrogatepass"))


@fuzz(300)
@given(st.one_of(diffs, st.binary(max_size=300)))
@example(b"")
@example(("diff --git a/x b/x\n@@ -1 +1,99999999999999999999 @@\n" + "+x\n" * 1000).encode())
def test_unified_diffs(diff: bytes) -> None:
    with bounded("parsing a diff"):
        try:
            files = parse_diff(diff)
        except InvalidPassportError as error:
            assert error.message
        else:
            for stat in files:
                assert stat.additions >= 0 and stat.deletions >= 0
                json.dumps(stat.to_json())
        text = diff.decode("utf-8", "replace")
        for chunk in _split_files(text):
            added, removed, _binary = _parse_hunks(chunk)
            assert all(number >= 0 for number in [*added, *removed])
        change = Change(
            repo=Path("."), base="0" * 40, head="1" * 40, base_ref=None, head_ref=None,
            files=[], diff_text=text,
        )  # fmt: skip
        try:
            change.patch_set()
        except JudgeError as error:
            assert error.message
        assert len(parse_diff_lines(text)) == len(text.splitlines())


def test_the_honest_inputs_pass(folder: Path) -> None:
    # The properties above are only meaningful if the same commands accept honest input.
    assert cli("validate", write(folder / "ok.yaml", PIPELINE))[0] == 0
    write(folder / "passport.json", json.dumps(sample_statement()))
    policy, cases = write(folder / "p.yaml", POLICY), write(folder / "cases.yaml", CASES)
    assert cli("policy", "test", policy, "--cases", cases)[0] == 0
    signed = write(folder / "signed.json", dumps(_signed(dumps(sample_statement()))))
    public = write(folder / "key.pub", SIGNER.public_key.to_pem())
    assert cli("passport", "verify", signed, "--key", public)[0] == 0
    assert [f.path for f in parse_diff(DIFF.encode())] == [
        "src/app.py",
        "docs/a b\tc.md",
        "new.txt",
        "logo.png",
    ]
