"""The change model: file list and line maps agree with git's numstat and with unidiff, also on
content that looks like diff syntax; findings keep stable fingerprints."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

import judge
from judge import Finding, fingerprint
from judge.findings import disambiguate
from tests.conftest import git
from tests.unit.judge_repos import change_of, make_repo
from writgate.errors import InputError

TRICKY_BASE = "".join(f"line {i}\n" for i in range(1, 40))
TRICKY_HEAD = (
    "--- a/not-a-header\n"
    + "".join(f"line {i}\n" for i in range(1, 10))
    + "+++ b/still-content\n@@ -1 +1 @@ looks like a hunk\ndiff --git a/x b/x\n"
    + "".join(f"line {i}\n" for i in range(12, 38))
    + "\\ not the marker\nno newline at the end"
)


def test_line_maps_match_unidiff_and_counts_match_numstat(tmp_path: Path) -> None:
    repo, base, head = make_repo(
        tmp_path,
        {"a.txt": TRICKY_BASE, "crlf.txt": "one\r\ntwo\r\n", "gone.txt": "x\n",
         "old.py": "a = 1\n" * 30},
        {"a.txt": TRICKY_HEAD, "crlf.txt": "one\r\nTWO\r\n", "gone.txt": None, "b.bin": b"\x00\x01",
         "new.py": "a = 1\n" * 30 + "b = 2\n", "old.py": None, "space name.txt": "s\n"},
    )  # fmt: skip
    change = anyio.run(judge.load_change, repo, base, head)
    numstat = git(repo, "diff", "--numstat", "-M", base, head)
    expected = {}
    for line in numstat.splitlines():
        added, deleted, name = line.split("\t", 2)
        name = name.split(" => ")[-1].rstrip("}").strip('"')
        expected[name] = (0, 0) if added == "-" else (int(added), int(deleted))
    assert {f.path: (f.additions, f.deletions) for f in change} == expected
    assert change.file("new.py").status == "renamed"  # type: ignore[union-attr]
    assert change.file("new.py").previous_path == "old.py"  # type: ignore[union-attr]
    assert change.file("b.bin").binary  # type: ignore[union-attr]
    assert change.file("crlf.txt").added_lines == {2: "TWO"}  # type: ignore[union-attr]
    for changed in change:
        patched = change.patch(changed.path)
        assert patched is not None
        added = {
            line.target_line_no: line.value.rstrip("\r\n")
            for hunk in patched for line in hunk if line.is_added
        }  # fmt: skip
        removed = {
            line.source_line_no: line.value.rstrip("\r\n")
            for hunk in patched for line in hunk if line.is_removed
        }  # fmt: skip
        assert (changed.added_lines, changed.removed_lines) == (added, removed), changed.path
    a = change.file("a.txt")
    assert a is not None and a.added_lines[1] == "--- a/not-a-header"
    assert a.added_lines[max(a.added_lines)] == "no newline at the end"


def test_read_many_and_materialize_head(tmp_path: Path) -> None:
    change = change_of(tmp_path, {"a/b.txt": "1\n"}, {"a/b.txt": "2\n", "c.txt": "3\n"})
    blobs = anyio.run(change.read_many, change.head, ["a/b.txt", "c.txt", "missing.txt"])
    assert blobs == {"a/b.txt": b"2\n", "c.txt": b"3\n", "missing.txt": None}
    out = tmp_path / "out"
    anyio.run(change.materialize_head, out, ["c.txt", "../escape.txt"])
    assert sorted(p.name for p in out.rglob("*")) == ["c.txt"]
    full = tmp_path / "full"
    anyio.run(change.materialize_head, full)
    assert (full / "a" / "b.txt").read_text() == "2\n" and (full / "README.md").exists()


def test_fingerprint_is_stable_and_ignores_whitespace() -> None:
    first = fingerprint("ruff", "F401", "a.py", "import   os")
    assert first == fingerprint("ruff", "F401", "a.py", " import os ")
    assert first != fingerprint("ruff", "F401", "b.py", "import os")
    assert first != fingerprint("ruff", "F811", "a.py", "import os")
    assert len(first) == 64 and int(first, 16) >= 0


def test_repeated_snippets_get_distinct_fingerprints() -> None:
    one = Finding.create(
        reviewer="r", rule="x", severity="info", message="m", path="a", snippet="s"
    )
    two = Finding.create(
        reviewer="r", rule="x", severity="info", message="m", path="a", snippet="s"
    )
    unique = disambiguate([one, two])
    assert unique[0].fingerprint == one.fingerprint
    assert unique[1].fingerprint != one.fingerprint
    assert disambiguate([one, two])[1].fingerprint == unique[1].fingerprint


def test_finding_json_round_trip_and_errors() -> None:
    finding = Finding.create(
        reviewer="secrets", rule="aws-access-key", severity="error", message="m", path="a.py",
        start_line=3, snippet="x",
    )  # fmt: skip
    data = finding.to_json()
    assert list(data) == ["reviewer", "rule", "severity", "path", "startLine", "endLine",
                          "message", "suggestion", "fingerprint"]  # fmt: skip
    assert data["endLine"] == 3
    assert Finding.from_json(json.loads(json.dumps(data))) == finding
    with pytest.raises(InputError) as raised:
        Finding.from_json({**data, "severity": "fatal"}, where="findings[2]")
    assert raised.value.field == "findings[2].severity"
    with pytest.raises(InputError):
        Finding.from_json({**data, "startLine": 0})


def test_public_api_is_sorted() -> None:
    assert judge.__all__ == sorted(judge.__all__)
    for name in judge.__all__:
        assert hasattr(judge, name), name


def test_judge_does_not_import_writer_or_pipelines() -> None:
    root = Path(judge.__file__).parent
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules = [node.module]
            for module in modules:
                top = module.split(".")[0]
                assert top not in ("writer", "pipelines", "writgate.app"), (path, module)
                assert not module.startswith("writgate.app"), (path, module)
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, judge, judge.api, judge.gate; "
         "print(sorted({m.split('.')[0] for m in sys.modules}))"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "'writer'" not in loaded and "'pipelines'" not in loaded
