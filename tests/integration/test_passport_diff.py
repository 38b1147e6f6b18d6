"""Per-file stats of the pinned diff equal ``git diff --numstat -M``, in real repositories."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from passport import (
    RevisionError,
    build_passport_sync,
    diff_command,
    read_diff,
    read_diff_sync,
)
from passport.diff import decode_path

ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
}

Row = tuple[str, str | None, str, str]  # path, previous path, additions, deletions ("-": binary)


def run(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=repo, env=ENV, capture_output=True, check=True).stdout


def numstat(repo: Path, base: str = "HEAD~", head: str = "HEAD") -> list[Row]:
    """Plain ``git diff --numstat -M -z`` (no user or system configuration), parsed."""
    output = run(repo, "diff", "--numstat", "-M", "-z", base, head, "--")
    fields = output.split(b"\0")
    rows: list[Row] = []
    i = 0
    while i < len(fields) - 1:
        additions, deletions, path = fields[i].split(b"\t", 2)
        if path:  # "A\tD\tpath"
            rows.append((decode_path(path), None, additions.decode(), deletions.decode()))
            i += 1
        else:  # "A\tD\t" NUL old NUL new: a rename or copy
            old, new = fields[i + 1], fields[i + 2]
            rows.append(
                (decode_path(new), decode_path(old), additions.decode(), deletions.decode())
            )
            i += 3
    return rows


def ours(repo: Path, base: str = "HEAD~", head: str = "HEAD") -> list[Row]:
    facts = read_diff_sync(repo, base, head)
    return [
        (
            f.path,
            f.previous_path,
            "-" if f.binary else str(f.additions),
            "-" if f.binary else str(f.deletions),
        )
        for f in facts.files
    ]


def new_repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir()
    run(repo, "init", "-q", "-b", "main")
    return repo


def commit(repo: Path, message: str = "commit") -> str:
    run(repo, "add", "-A")
    run(repo, "commit", "-q", "--allow-empty", "-m", message)
    return run(repo, "rev-parse", "HEAD").decode().strip()


def lines(n: int, start: int = 0) -> bytes:
    return b"".join(b"line %d of some text\n" % i for i in range(start, start + n))


def change(tmp_path: Path, before: Callable[[Path], None], after: Callable[[Path], None]) -> Path:
    repo = new_repo(tmp_path)
    before(repo)
    commit(repo, "base")
    after(repo)
    commit(repo, "head")
    return repo


def w(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def bpath(repo: Path, raw: bytes) -> Path:
    return Path(os.fsdecode(bytes(repo) + b"/" + raw))


# -- one hand-written case per kind of change ------------------------------------------------

CASES: dict[str, tuple[Callable[[Path], None], Callable[[Path], None]]] = {
    "modified": (
        lambda r: w(r / "a.txt", lines(20)),
        lambda r: w(r / "a.txt", lines(10) + b"changed\n" + lines(9, 11)),
    ),
    "renamed": (
        lambda r: w(r / "old.txt", lines(30)),
        lambda r: ((r / "old.txt").unlink(), w(r / "dir/new.txt", lines(30))),
    ),
    "renamed-and-modified": (
        lambda r: w(r / "old.txt", lines(30)),
        lambda r: ((r / "old.txt").unlink(), w(r / "new.txt", lines(29) + b"edited\n")),
    ),
    "copied": (
        lambda r: w(r / "src.txt", lines(30)),
        lambda r: w(r / "copy.txt", lines(30)),
    ),
    "binary-added": (
        lambda r: w(r / "keep", b"x\n"),
        lambda r: w(r / "image.bin", bytes(range(256)) * 4),
    ),
    "binary-modified": (
        lambda r: w(r / "image.bin", bytes(range(256)) * 4),
        lambda r: w(r / "image.bin", bytes(reversed(range(256))) * 4),
    ),
    "binary-renamed-exactly": (
        lambda r: w(r / "a.bin", b"\0\1\2" * 100),
        lambda r: ((r / "a.bin").unlink(), w(r / "b.bin", b"\0\1\2" * 100)),
    ),
    "binary-by-attribute-renamed": (
        lambda r: (w(r / ".gitattributes", b"*.dat binary\n"), w(r / "a.dat", b"text\n")),
        lambda r: ((r / "a.dat").unlink(), w(r / "b.dat", b"text\n")),
    ),
    "text-to-binary": (
        lambda r: w(r / "f", lines(5)),
        lambda r: w(r / "f", b"\0" + lines(5)),
    ),
    "mode-only": (
        lambda r: w(r / "run.sh", b"echo hi\n"),
        lambda r: (r / "run.sh").chmod(0o755),
    ),
    "mode-and-content": (
        lambda r: w(r / "run.sh", b"echo hi\n"),
        lambda r: (w(r / "run.sh", b"echo bye\n"), (r / "run.sh").chmod(0o755)),
    ),
    "binary-mode-only": (
        lambda r: w(r / "blob", b"\0" * 10),
        lambda r: (r / "blob").chmod(0o755),
    ),
    "empty-added": (
        lambda r: w(r / "keep", b"x\n"),
        lambda r: w(r / "empty", b""),
    ),
    "empty-removed": (
        lambda r: (w(r / "keep", b"x\n"), w(r / "empty", b"")),
        lambda r: (r / "empty").unlink(),
    ),
    "empty-renamed": (
        lambda r: w(r / "empty", b""),
        lambda r: ((r / "empty").unlink(), w(r / "other-empty", b"")),
    ),
    "empty-to-content": (
        lambda r: w(r / "f", b""),
        lambda r: w(r / "f", lines(3)),
    ),
    "deleted": (
        lambda r: (w(r / "keep", b"x\n"), w(r / "gone.txt", lines(12))),
        lambda r: (r / "gone.txt").unlink(),
    ),
    "no-final-newline": (
        lambda r: w(r / "f", b"one\ntwo"),
        lambda r: w(r / "f", b"one\ntwo\nthree"),
    ),
    "final-newline-added": (
        lambda r: w(r / "f", b"one\ntwo"),
        lambda r: w(r / "f", b"one\ntwo\n"),
    ),
    "crlf": (
        lambda r: w(r / "dos.txt", b"a\r\nb\r\nc\r\n"),
        lambda r: w(r / "dos.txt", b"a\r\nB\r\nc\r\nd\r\n"),
    ),
    "crlf-to-lf": (
        lambda r: w(r / "dos.txt", b"a\r\nb\r\n"),
        lambda r: w(r / "dos.txt", b"a\nb\n"),
    ),
    "lone-cr-and-form-feed": (
        lambda r: w(r / "odd.txt", b"a\rb\n\x0cpage\n\x1c\n"),
        lambda r: w(r / "odd.txt", b"a\rB\n\x0cpage\n\x1c\nmore\xe2\x80\xa8 \x85\n"),
    ),
    "path-with-spaces": (
        lambda r: w(r / "my dir/a file.txt", lines(3)),
        lambda r: w(r / "my dir/a file.txt", lines(4)),
    ),
    "path-with-space-b-slash": (
        lambda r: w(r / "x b/y", lines(3)),
        lambda r: ((r / "x b/y").chmod(0o755), w(r / "a b/c d", b"")),
    ),
    "path-with-newline-mode-only": (
        lambda r: w(r / "two\nlines", b"\0binary"),
        lambda r: (r / "two\nlines").chmod(0o755),
    ),
    "path-non-utf8": (
        lambda r: w(bpath(r, b"caf\xe9.txt"), lines(2)),
        lambda r: w(bpath(r, b"caf\xe9.txt"), lines(3)),
    ),
    "path-non-utf8-renamed": (
        lambda r: w(bpath(r, b"\xff\xfe name"), lines(20)),
        lambda r: (bpath(r, b"\xff\xfe name").unlink(), w(bpath(r, b"ren\xe9 \xff"), lines(20))),
    ),
    "path-utf8-quotes-tab-backslash": (
        lambda r: w(r / "keep", b"x\n"),
        lambda r: (
            w(r / "héllo wörld.txt", lines(2)),
            w(r / 'say "hi".txt', b"q\n"),
            w(r / "tab\there", b"t\n"),
            w(r / "back\\slash", b"b\n"),
            w(r / "new\nline", b"n\n"),
        ),
    ),
    "glob-characters-in-path-renamed-binary": (
        lambda r: w(r / "[a]*.bin", b"\0" * 50),
        lambda r: ((r / "[a]*.bin").unlink(), w(r / "*?.bin", b"\0" * 50)),
    ),
    "file-to-symlink": (
        lambda r: w(r / "link", b"one\ntwo\n"),
        lambda r: ((r / "link").unlink(), (r / "link").symlink_to("target")),
    ),
    "file-to-symlink-same-text": (
        lambda r: w(r / "link", b"target"),
        lambda r: ((r / "link").unlink(), (r / "link").symlink_to("target")),
    ),
    "symlink-to-file": (
        lambda r: (r / "link").symlink_to("elsewhere"),
        lambda r: ((r / "link").unlink(), w(r / "link", b"x\nelsewhere")),
    ),
    "binary-file-to-symlink": (
        lambda r: w(r / "link", b"\0\0"),
        lambda r: ((r / "link").unlink(), (r / "link").symlink_to("t")),
    ),
    "diff-looking-content": (
        lambda r: w(r / "p.diff", b"diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n"),
        lambda r: w(r / "p.diff", b"diff --git a/y b/y\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-\n+\n"),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_kind_of_change_matches_numstat(tmp_path: Path, name: str) -> None:
    before, after = CASES[name]
    repo = change(tmp_path, before, after)
    expected = numstat(repo)
    assert expected, "the case must change something"
    assert ours(repo) == expected


def test_statuses_follow_githubs_enum(tmp_path: Path) -> None:
    def before(r: Path) -> None:
        w(r / "mod.txt", lines(5))
        w(r / "gone.txt", lines(5))
        w(r / "old.txt", lines(30))
        w(r / "mode.sh", b"x\n")
        w(r / "link", b"a\n")

    def after(r: Path) -> None:
        w(r / "mod.txt", lines(6))
        (r / "gone.txt").unlink()
        (r / "old.txt").rename(r / "new.txt")
        (r / "mode.sh").chmod(0o755)
        (r / "link").unlink()
        (r / "link").symlink_to("x")
        w(r / "added.txt", b"new\n")

    repo = change(tmp_path, before, after)
    facts = read_diff_sync(repo, "HEAD~", "HEAD")
    statuses = {f.path: (f.status, f.previous_path) for f in facts.files}
    assert statuses == {
        "added.txt": ("added", None),
        "gone.txt": ("removed", None),
        "link": ("changed", None),
        "mod.txt": ("modified", None),
        "mode.sh": ("changed", None),
        "new.txt": ("renamed", "old.txt"),
    }
    assert facts.totals() == {
        "files": 6,
        "additions": facts.additions,
        "deletions": facts.deletions,
        "lines": facts.additions + facts.deletions,
    }


def test_subject_digest_is_sha256_of_the_pinned_diff(tmp_path: Path) -> None:
    repo = change(tmp_path, *CASES["binary-modified"])
    facts = read_diff_sync(repo, "HEAD~", "HEAD")
    pinned = run(repo, *diff_command("HEAD~", "HEAD"))
    assert facts.patch == pinned
    assert b"GIT binary patch" in pinned
    assert facts.sha256 == hashlib.sha256(pinned).hexdigest()
    statement = build_passport_sync(repo, "HEAD~", "HEAD", repository="acme/web")
    assert statement["subject"][1] == {"name": "diff", "digest": {"sha256": facts.sha256}}


def test_repository_config_does_not_change_the_diff(tmp_path: Path) -> None:
    repo = change(tmp_path, *CASES["renamed-and-modified"])
    plain = read_diff_sync(repo, "HEAD~", "HEAD")
    for key, value in (
        ("diff.renames", "false"),
        ("diff.noprefix", "true"),
        ("core.quotePath", "false"),
        ("diff.context", "10"),
        ("diff.algorithm", "histogram"),
    ):
        run(repo, "config", key, value)
    assert read_diff_sync(repo, "HEAD~", "HEAD") == plain


@pytest.mark.anyio
async def test_async_reader_matches(tmp_path: Path) -> None:
    repo = change(tmp_path, *CASES["crlf"])
    assert await read_diff(repo, "HEAD~", "HEAD") == read_diff_sync(repo, "HEAD~", "HEAD")


def test_unknown_revision_and_non_repository_are_input_errors(tmp_path: Path) -> None:
    repo = change(tmp_path, *CASES["modified"])
    with pytest.raises(RevisionError, match="unknown revision 'nope'"):
        build_passport_sync(repo, "nope", "HEAD")
    with pytest.raises(RevisionError, match="not a revision"):
        build_passport_sync(repo, "--output=/tmp/x", "HEAD")
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(RevisionError, match="not a git repository"):
        build_passport_sync(plain, "HEAD~", "HEAD")
    with pytest.raises(RevisionError, match="not a directory"):
        build_passport_sync(tmp_path / "missing", "HEAD~", "HEAD")


# -- property: random commit pairs in real repositories ----------------------------------------

NAMES = st.sampled_from(
    [
        b"a.txt",
        b"b.py",
        b"dir/c.md",
        b"dir/sub/d",
        b"sp ace.txt",
        b"x b/y",
        b"caf\xc3\xa9",
        b"raw\xff",
        b'q"uote',
        b"tab\tname",
        b"new\nline",
        b"bin.dat",
    ]
)
LINE = st.sampled_from([b"alpha\n", b"beta\n", b"gamma\n", b"delta\r\n", b"\n", b"epsilon\n"])
CONTENT = st.one_of(
    st.lists(LINE, max_size=30).map(b"".join),
    st.lists(LINE, min_size=1, max_size=10).map(lambda ls: b"".join(ls).rstrip(b"\n")),
    st.binary(max_size=200).map(lambda b: b"\0" + b),
    st.just(b""),
)


@st.composite
def commit_pairs(draw: st.DrawFn) -> tuple[dict[bytes, tuple[bytes, bool]], list[tuple]]:
    files = draw(st.dictionaries(NAMES, st.tuples(CONTENT, st.booleans()), max_size=7))
    operations = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["edit", "delete", "rename", "add", "chmod", "symlink"]),
                NAMES,
                NAMES,
                CONTENT,
            ),
            min_size=1,
            max_size=6,
        )
    )
    return files, operations


def _materialize(repo: Path, files: dict[bytes, tuple[bytes, bool]]) -> None:
    for name, (content, executable) in files.items():
        path = bpath(repo, name)
        w(path, content)
        path.chmod(0o755 if executable else 0o644)


def _clear(repo: Path) -> None:
    for child in repo.iterdir():
        if child.name != ".git":
            subprocess.run(["rm", "-rf", str(child)], check=True)


def _apply(repo: Path, files: dict[bytes, tuple[bytes, bool]], operations: list[tuple]) -> None:
    state = dict(files)
    links: dict[bytes, str] = {}
    for op, name, other, content in operations:
        if op == "edit" and name in state:
            old, executable = state[name]
            state[name] = (old[: len(old) // 2] + content + old[len(old) // 2 :], executable)
        elif op == "delete":
            state.pop(name, None)
            links.pop(name, None)
        elif op == "rename" and name in state and other not in state:
            state[other] = state.pop(name)
        elif op == "add":
            state[name] = (content, False)
            links.pop(name, None)
        elif op == "chmod" and name in state:
            state[name] = (state[name][0], not state[name][1])
        elif op == "symlink":
            state.pop(name, None)
            links[name] = "target-" + str(len(content))
    # A path cannot be both a file and a directory ("x b/y" vs a file "x b"): git refuses too.
    _clear(repo)
    _materialize(repo, state)
    for name, target in links.items():
        path = bpath(repo, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(commit_pairs())
def test_random_commit_pairs_match_numstat(
    pair: tuple[dict[bytes, tuple[bytes, bool]], list[tuple]],
) -> None:
    files, operations = pair
    with tempfile.TemporaryDirectory() as tmp:
        repo = new_repo(Path(tmp))
        _materialize(repo, files)
        base = commit(repo, "base")
        _apply(repo, files, operations)
        head = commit(repo, "head")
        expected = numstat(repo, base, head)
        facts = read_diff_sync(repo, base, head)
        assert ours(repo, base, head) == expected
        totals = facts.totals()
        assert totals["files"] == len(expected)
        assert totals["additions"] == sum(int(a) for _, _, a, _ in expected if a != "-")
        assert totals["deletions"] == sum(int(d) for _, _, _, d in expected if d != "-")
        assert totals["lines"] == totals["additions"] + totals["deletions"]


def test_submodule_changes_match_numstat(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    w(repo / "file", b"content\n")
    w(repo / "sub", b"was a file\n")
    commit(repo, "base")
    one = run(repo, "rev-parse", "HEAD").decode().strip()
    # Gitlinks straight into the index: a new submodule and a file turned into a submodule.
    run(repo, "rm", "-q", "--cached", "sub")
    for path in ("vendor/lib", "sub"):
        run(repo, "update-index", "--add", "--cacheinfo", f"160000,{one},{path}")
    run(repo, "commit", "-q", "-m", "submodules")
    expected = numstat(repo)
    assert [row[0] for row in expected] == ["sub", "vendor/lib"]
    assert ours(repo) == expected
    statuses = {f.path: f.status for f in read_diff_sync(repo, "HEAD~", "HEAD").files}
    assert statuses == {"sub": "changed", "vendor/lib": "added"}
