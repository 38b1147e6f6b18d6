"""Diff facts: the pinned ``git diff`` of a change and its per-file stats, parsed with unidiff.

The stats equal ``git diff --numstat -M`` (same paths, additions, deletions, binary flags) for
every kind of change git can express. Three details make that hold:

- Paths come from git's extended headers (``rename from``/``copy from``, ``---``/``+++``, or the
  ``diff --git`` line split the way ``git apply`` splits it), unquoted from git's C-style quoting,
  so paths with spaces, tabs, quotes or non-UTF-8 bytes are exact. unidiff is given a sanitized
  header per file (its own header regex is ambiguous for paths containing `` b/``) and counts the
  hunk lines and detects ``GIT binary patch`` sections.
- A type change (file <-> symlink or submodule) is one entry in ``--numstat`` but a deletion plus
  a creation in the patch; the two halves are merged and counted the way git counts them.
- A 100%-similar rename or a mode-only change carries no content in the patch, yet
  ``--numstat`` reports ``-`` for a binary file: the blob is read and sniffed the way git does
  (a NUL byte in the first 8000 bytes, or the ``diff`` attribute unset).

Non-UTF-8 bytes in a path are written as ``\\xNN`` escapes (JSON strings must be Unicode).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchSet

from writgate.git import GitError, run_git_sync

from .errors import InvalidPassportError, RevisionError

__all__ = [
    "CONFIG_PINS",
    "DIFF_OPTIONS",
    "DiffFacts",
    "FileStat",
    "FileStatus",
    "decode_path",
    "diff_command",
    "parse_diff",
    "read_diff",
    "read_diff_sync",
]

FileStatus = Literal["added", "removed", "modified", "renamed", "copied", "changed"]

# The pinned diff (DESIGN.md §8). The subject digest is over exactly this output.
DIFF_OPTIONS = (
    "--binary",
    "--full-index",
    "--no-color",
    "--no-ext-diff",
    "--src-prefix=a/",
    "--dst-prefix=b/",
)
# Repository configuration could otherwise change the bytes of the pinned diff (and its digest):
# quoting of paths, rename detection, prefixes, file order, context size, algorithm.
CONFIG_PINS = (
    "core.quotePath=true",
    "diff.renames=true",
    "diff.noprefix=false",
    "diff.mnemonicPrefix=false",
    "diff.relative=false",
    "diff.suppressBlankEmpty=false",
    "diff.orderFile=/dev/null",
    "diff.context=3",
    "diff.interHunkContext=0",
    "diff.algorithm=default",
    "diff.indentHeuristic=true",
)

_SNIFF_BYTES = 8000  # git's FIRST_FEW_BYTES: a NUL in these makes a blob binary
_SPECIAL_MODES = ("120000", "160000")  # symlink, submodule: one "line" of content
_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def diff_command(base: str, head: str) -> list[str]:
    """The git arguments of the pinned diff between two commits."""
    pins = [arg for pin in CONFIG_PINS for arg in ("-c", pin)]
    return [*pins, "diff", *DIFF_OPTIONS, base, head, "--"]


@dataclass(frozen=True)
class FileStat:
    """One changed file, with the numbers ``git diff --numstat -M`` reports for it."""

    path: str
    previous_path: str | None
    status: FileStatus
    additions: int
    deletions: int
    binary: bool

    def to_json(self) -> dict[str, Any]:
        """The ``change.files[]`` entry of the statement."""
        return {
            "path": self.path,
            "previousPath": self.previous_path,
            "status": self.status,
            "additions": self.additions,
            "deletions": self.deletions,
            "binary": self.binary,
        }


@dataclass(frozen=True)
class DiffFacts:
    """The pinned diff of a change: its bytes, their SHA-256 and the per-file stats."""

    patch: bytes
    sha256: str
    files: tuple[FileStat, ...]

    @property
    def additions(self) -> int:
        return sum(f.additions for f in self.files)

    @property
    def deletions(self) -> int:
        return sum(f.deletions for f in self.files)

    def totals(self) -> dict[str, int]:
        """The ``change.totals`` object (``lines = additions + deletions``)."""
        additions, deletions = self.additions, self.deletions
        return {
            "files": len(self.files),
            "additions": additions,
            "deletions": deletions,
            "lines": additions + deletions,
        }


def decode_path(raw: bytes) -> str:
    """A path as text: UTF-8, with any other byte written as a ``\\xNN`` escape."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace")


def _unquote(text: str) -> bytes:
    """The raw bytes of a path as git prints it (C-style quoted when it needs to be)."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text.encode("utf-8", "surrogateescape")
    out = bytearray()
    i, end = 1, len(text) - 1
    while i < end:
        char = text[i]
        if char != "\\":
            out += char.encode("utf-8", "surrogateescape")
            i += 1
            continue
        following = text[i + 1] if i + 1 < end else ""
        if following in _C_ESCAPES:
            out.append(_C_ESCAPES[following])
            i += 2
        elif following in "0123" and following and re.fullmatch(r"[0-7]{3}", text[i + 1 : i + 4]):
            out.append(int(text[i + 1 : i + 4], 8))
            i += 4
        else:
            raise InvalidPassportError(f"bad escape in quoted path {text!r}", field="diff")
    return bytes(out)


def _quoted_token(text: str, start: int) -> int:
    """The index just past the closing quote of the quoted token starting at ``start``."""
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i + 1
        i += 1
    raise InvalidPassportError(f"unterminated quoted path in {text!r}", field="diff")


def _header_paths(rest: str) -> tuple[str, str] | None:
    """The two names of a ``diff --git`` line (after the command), or None when ambiguous."""
    if rest.startswith('"'):
        end = _quoted_token(rest, 0)
        return rest[:end], rest[end + 1 :]
    if rest.endswith('"'):
        start = rest.rfind(' "')
        while start > 0:
            try:
                if _quoted_token(rest, start + 1) == len(rest):
                    return rest[:start], rest[start + 1 :]
            except InvalidPassportError:
                pass
            start = rest.rfind(' "', 0, start)
        return None
    # Unquoted: both names are the same path (renames and copies have their own header lines),
    # so the line is "a/P b/P" and splits in the middle, as git apply does it.
    if (len(rest) - 5) % 2:
        return None
    half = (len(rest) - 5) // 2
    source, target = rest[: half + 2], rest[half + 3 :]
    if rest[half + 2] != " " or source[2:] != target[2:]:
        return None
    return source, target


def _strip_prefix(name: str, prefix: str) -> bytes:
    raw = _unquote(name)
    if not raw.startswith(prefix.encode()):
        raise InvalidPassportError(f"path {name!r} lacks the {prefix!r} prefix", field="diff")
    return raw[len(prefix) :]


@dataclass
class _Entry:
    """One ``diff --git`` section of the patch, header parsed, counts from unidiff."""

    old_path: bytes
    new_path: bytes
    kind: str  # added, removed, modified, renamed, copied
    old_mode: str | None
    new_mode: str | None
    additions: int
    deletions: int
    binary: bool
    hunks: bool
    text: str  # the section itself (for the rare type-change recount)
    patched: Any  # unidiff's PatchedFile


def _sections(text: str) -> Iterator[str]:
    """The ``diff --git`` sections of a patch (a hunk line never starts with "diff --git ")."""
    if not text:
        return
    if not text.startswith("diff --git "):
        raise InvalidPassportError("the diff does not start with a 'diff --git' line", field="diff")
    parts = text.split("\ndiff --git ")
    for index, part in enumerate(parts):
        section = part if index == 0 else "diff --git " + part
        yield section if index == len(parts) - 1 else section + "\n"


def _parse_section(section: str, *, metadata_only: bool = True) -> _Entry:
    stream = io.StringIO(section)  # splits on "\n" only: "\r" and other separators stay in lines
    first = stream.readline()
    old_name = new_name = None
    rename_from = rename_to = None
    kind = "modified"
    old_mode = new_mode = None
    body: list[str] = []
    for line in stream:
        if line.startswith(("@@ ", "GIT binary patch", "Binary files ")):
            body.append(line)
            break
        value = line.rstrip("\n")
        if value.startswith("--- "):
            old_name = value[4:]
        elif value.startswith("+++ "):
            new_name = value[4:]
        elif value.startswith(("rename from ", "copy from ")):
            kind = "renamed" if value.startswith("rename") else "copied"
            rename_from = value.split(" ", 2)[2]
        elif value.startswith(("rename to ", "copy to ")):
            rename_to = value.split(" ", 2)[2]
        elif value.startswith("new file mode "):
            kind, new_mode = "added", value[14:]
        elif value.startswith("deleted file mode "):
            kind, old_mode = "removed", value[18:]
        elif value.startswith("old mode "):
            old_mode = value[9:]
        elif value.startswith("new mode "):
            new_mode = value[9:]
        elif value.startswith("index ") and " " in value[6:]:
            mode = value.rsplit(" ", 1)[1]
            old_mode, new_mode = old_mode or mode, new_mode or mode

    # Paths: rename/copy lines, then ---/+++ lines, then the diff --git line.
    if rename_from is not None and rename_to is not None:
        old_path, new_path = _unquote(rename_from), _unquote(rename_to)
    else:
        old_path = new_path = b""
        if old_name is not None and old_name != "/dev/null":
            old_path = _strip_prefix(_strip_tab(old_name), "a/")
        if new_name is not None and new_name != "/dev/null":
            new_path = _strip_prefix(_strip_tab(new_name), "b/")
        if not old_path and not new_path:
            names = _header_paths(first.rstrip("\n")[len("diff --git ") :])
            if names is None:
                raise InvalidPassportError(f"cannot read the paths of {first.strip()!r}")
            old_path, new_path = _strip_prefix(names[0], "a/"), _strip_prefix(names[1], "b/")
        old_path = old_path or new_path
        new_path = new_path or old_path

    # unidiff gets a header it cannot misread (its "diff --git" regex is ambiguous for paths
    # containing " b/"), then the untouched hunks or binary patch.
    source = "/dev/null" if kind == "added" else "a/f"
    target = "/dev/null" if kind == "removed" else "b/f"
    clean = ["diff --git a/f b/f\n"]
    if kind == "added":
        clean.append(f"new file mode {new_mode}\n")
    elif kind == "removed":
        clean.append(f"deleted file mode {old_mode}\n")
    if body and body[0].startswith("@@ "):
        clean += [f"--- {source}\n", f"+++ {target}\n"]
    try:
        parsed = PatchSet(itertools.chain(clean, body, stream), metadata_only=metadata_only)
    except UnidiffParseError as exc:
        raise InvalidPassportError(
            f"cannot parse the diff of {decode_path(new_path)!r}: {exc}", field="diff"
        ) from exc
    if len(parsed) != 1:
        raise InvalidPassportError(f"unexpected diff section {first.strip()!r}", field="diff")
    patched = parsed[0]
    binary = bool(patched.is_binary_file)
    return _Entry(
        old_path=old_path,
        new_path=new_path,
        kind=kind,
        old_mode=old_mode,
        new_mode=new_mode,
        additions=0 if binary else patched.added,
        deletions=0 if binary else patched.removed,
        binary=binary,
        hunks=len(patched) > 0,
        text=section,
        patched=patched,
    )


def _strip_tab(name: str) -> str:
    # git ends "---"/"+++" names that contain a space with a tab (for GNU patch).
    return name[:-1] if name.endswith("\t") else name


def _content_lines(section: str, kind: str) -> list[str]:
    """The removed (``kind == "-"``) or added (``"+"``) lines of a section, newlines kept."""
    lines: list[str] = []
    previous = None
    for hunk in _parse_section(section, metadata_only=False).patched:
        for line in hunk:
            if line.line_type == "\\":  # "\ No newline at end of file" ends the line before
                if previous == kind and lines:
                    lines[-1] = lines[-1].removesuffix("\n")
            elif line.line_type == kind:
                lines.append(line.value)
            previous = line.line_type
    return lines


def _merge_type_change(removed: _Entry, added: _Entry) -> FileStat:
    """A file <-> symlink/submodule change: git counts the diff between the two contents."""
    path = decode_path(added.new_path)
    if removed.binary or added.binary:
        return FileStat(path, None, "changed", 0, 0, True)
    old = _content_lines(removed.text, "-")
    new = _content_lines(added.text, "+")
    # One side is a symlink target or a "Subproject commit" line: at most one line, so the
    # longest common subsequence is 1 exactly when that line occurs on the other side.
    common = 0
    if min(len(old), len(new)) == 1:
        single, other = (old, new) if len(old) == 1 else (new, old)
        common = 1 if single[0] in other else 0
    return FileStat(path, None, "changed", len(new) - common, len(old) - common, False)


def _status(entry: _Entry) -> FileStatus:
    if entry.kind in ("added", "removed", "renamed", "copied"):
        return entry.kind  # type: ignore[return-value]
    if not entry.hunks and not entry.binary and entry.old_mode != entry.new_mode:
        return "changed"  # mode only
    return "modified"


def _is_type_change(first: _Entry, second: _Entry) -> bool:
    return (
        first.kind == "removed"
        and second.kind == "added"
        and first.old_path == second.new_path
        and (first.old_mode in _SPECIAL_MODES or second.new_mode in _SPECIAL_MODES)
    )


def _parse(patch: bytes) -> tuple[list[FileStat], dict[int, bytes]]:
    text = patch.decode("utf-8", "surrogateescape")
    entries = [_parse_section(section) for section in _sections(text)]
    files: list[FileStat] = []
    unresolved: dict[int, bytes] = {}
    i = 0
    while i < len(entries):
        entry = entries[i]
        if i + 1 < len(entries) and _is_type_change(entry, entries[i + 1]):
            files.append(_merge_type_change(entry, entries[i + 1]))
            i += 2
            continue
        previous = decode_path(entry.old_path) if entry.kind in ("renamed", "copied") else None
        if entry.kind not in ("added", "removed") and not entry.hunks and not entry.binary:
            # Same content (an exact rename/copy, or a mode change): the patch shows no
            # content, but --numstat still reports a binary blob as "-".
            unresolved[len(files)] = entry.new_path
        files.append(
            FileStat(
                path=decode_path(entry.new_path),
                previous_path=previous,
                status=_status(entry),
                additions=entry.additions,
                deletions=entry.deletions,
                binary=entry.binary,
            )
        )
        i += 1
    return files, unresolved


def parse_diff(patch: bytes) -> list[FileStat]:
    """Per-file stats of a pinned diff, from the patch alone.

    An exact rename or mode change of a binary file carries no content, so it reads as text here;
    :func:`read_diff` settles such files from the repository as ``git diff --numstat`` does.
    """
    return _parse(patch)[0]


def _fs(raw: bytes) -> str:
    """A raw path as a command-line argument (subprocess encodes it back with surrogateescape)."""
    return raw.decode("utf-8", "surrogateescape")


def _binary_by_attribute(repo: Path, paths: Sequence[bytes]) -> set[bytes]:
    output = run_git_sync(["check-attr", "-z", "diff", "--", *map(_fs, paths)], cwd=repo)
    fields = output.split(b"\0")
    return {fields[i] for i in range(0, len(fields) - 2, 3) if fields[i + 2] == b"unset"}


def _blob_heads(repo: Path, head: str, paths: Sequence[bytes]) -> dict[bytes, bytes]:
    """The first bytes of each path's blob at ``head`` (paths that are not blobs are left out)."""
    listing = run_git_sync(
        ["--literal-pathspecs", "ls-tree", "-z", "--full-tree", head, "--", *map(_fs, paths)],
        cwd=repo,
    )
    oids: dict[bytes, bytes] = {}
    for record in listing.split(b"\0"):
        meta, _, path = record.partition(b"\t")
        fields = meta.split()
        if len(fields) == 3 and fields[1] == b"blob":
            oids[path] = fields[2]
    order = list(oids.items())
    request = b"".join(oid + b"\n" for _, oid in order)
    output = run_git_sync(["cat-file", "--batch"], cwd=repo, input=request) if order else b""
    heads: dict[bytes, bytes] = {}
    position = 0
    for path, _ in order:
        newline = output.index(b"\n", position)
        size = int(output[position:newline].split()[2])
        start = newline + 1
        heads[path] = output[start : start + min(size, _SNIFF_BYTES)]
        position = start + size + 1
    return heads


def _settle_unchanged_blobs(
    repo: Path, head: str, files: list[FileStat], unresolved: dict[int, bytes]
) -> list[FileStat]:
    """Mark unchanged binary blobs (exact renames, mode changes) binary, as git's diffstat does."""
    if not unresolved:
        return files
    paths = list(unresolved.values())
    by_attribute = _binary_by_attribute(repo, paths)
    heads = _blob_heads(repo, head, paths)
    settled = list(files)
    for index, path in unresolved.items():
        if path in by_attribute or b"\0" in heads.get(path, b""):
            stat = settled[index]
            settled[index] = FileStat(stat.path, stat.previous_path, stat.status, 0, 0, True)
    return settled


def _translate(exc: GitError, repo: Path, base: str, head: str) -> RevisionError:
    message = str(exc)
    if "not a git repository" in message.lower():
        return RevisionError(f"{repo} is not a git repository", field="repo")
    detail = message.split(" failed: ", 1)[-1]  # "git -c failed: fatal: …" -> "fatal: …"
    return RevisionError(f"cannot diff {base}..{head} in {repo}: {detail}", field="rev")


def _facts(patch: bytes, files: list[FileStat]) -> DiffFacts:
    return DiffFacts(patch=patch, sha256=hashlib.sha256(patch).hexdigest(), files=tuple(files))


def read_diff_sync(repo: Path | str, base: str, head: str) -> DiffFacts:
    """Run the pinned diff of ``base..head`` (commit ids or revisions) in ``repo`` and parse it."""
    repo = Path(repo)
    try:
        patch = run_git_sync(diff_command(base, head), cwd=repo)
        files, unresolved = _parse(patch)
        return _facts(patch, _settle_unchanged_blobs(repo, head, files, unresolved))
    except GitError as exc:
        raise _translate(exc, repo, base, head) from exc


async def read_diff(repo: Path | str, base: str, head: str) -> DiffFacts:
    """Async :func:`read_diff_sync`: git runs as a subprocess, parsing in a worker thread."""
    return await anyio.to_thread.run_sync(read_diff_sync, repo, base, head)
