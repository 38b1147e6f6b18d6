"""The change under review: a git repository, a base and a head.

:func:`load_change` reads the file list (status, additions, deletions, binary — the same numbers as
``git diff --numstat -M``) and the parsed patch, so reviewers can ask which lines a change added.
File contents at base and head are read on demand and cached.
"""

from __future__ import annotations

import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchSet

from writgate.git import GitError, run_git

from .errors import JudgeError

__all__ = ["Change", "ChangedFile", "load_change"]

_STATUS = {
    "A": "added",
    "D": "removed",
    "M": "modified",
    "R": "renamed",
    "C": "copied",
    "T": "changed",
}
_DIFF_OPTIONS = (
    "--no-color",
    "--no-ext-diff",
    "--find-renames",
    "--src-prefix=a/",
    "--dst-prefix=b/",
)
_TEXT_LIMIT = 5 * 1024 * 1024  # larger blobs are not read as text by reviewers


@dataclass(frozen=True)
class ChangedFile:
    """One file of the change; line numbers in ``added_lines`` are head line numbers."""

    path: str
    previous_path: str | None
    status: str
    additions: int
    deletions: int
    binary: bool
    added_lines: dict[int, str] = field(default_factory=dict, repr=False)
    removed_lines: dict[int, str] = field(default_factory=dict, repr=False)
    patch: Any = field(default=None, repr=False, compare=False)  # unidiff.PatchedFile

    @property
    def base_path(self) -> str | None:
        """The path of this file at base (``None`` for an added file)."""
        if self.status == "added":
            return None
        return self.previous_path or self.path

    def to_json(self) -> dict[str, Any]:
        """The per-file shape of the passport (contract 1)."""
        return {
            "path": self.path,
            "previousPath": self.previous_path,
            "status": self.status,
            "additions": self.additions,
            "deletions": self.deletions,
            "binary": self.binary,
        }


class Change:
    """A change between two commits of one repository."""

    def __init__(
        self,
        *,
        repo: Path,
        base: str,
        head: str,
        base_ref: str | None,
        head_ref: str | None,
        files: Sequence[ChangedFile],
        diff_text: str,
    ):
        self.repo = repo
        self.base = base
        self.head = head
        self.base_ref = base_ref
        self.head_ref = head_ref
        self.files = list(files)
        self.diff_text = diff_text
        self._blobs: dict[tuple[str, str], bytes | None] = {}
        self._by_path = {f.path: f for f in self.files}

    def file(self, path: str) -> ChangedFile | None:
        """The changed file at ``path`` (head path), if any."""
        return self._by_path.get(path)

    @property
    def totals(self) -> dict[str, int]:
        """``{"files", "additions", "deletions", "lines"}``."""
        additions = sum(f.additions for f in self.files)
        deletions = sum(f.deletions for f in self.files)
        return {
            "files": len(self.files),
            "additions": additions,
            "deletions": deletions,
            "lines": additions + deletions,
        }

    async def read(self, rev: str, path: str) -> bytes | None:
        """The bytes of ``path`` at ``rev`` (``None`` when it does not exist there)."""
        key = (rev, path)
        if key not in self._blobs:
            try:
                self._blobs[key] = await run_git(["show", f"{rev}:{path}"], cwd=self.repo)
            except GitError:
                self._blobs[key] = None
        return self._blobs[key]

    async def base_text(self, changed: ChangedFile) -> str | None:
        """The file's text at base (``None`` when added, binary or too large)."""
        if changed.binary or changed.base_path is None:
            return None
        return _decode(await self.read(self.base, changed.base_path))

    async def head_text(self, changed: ChangedFile) -> str | None:
        """The file's text at head (``None`` when removed, binary or too large)."""
        if changed.binary or changed.status == "removed":
            return None
        return _decode(await self.read(self.head, changed.path))

    async def text_at(self, rev: str, path: str) -> str | None:
        """Any file's text at ``rev`` (``None`` when missing, binary or too large)."""
        return _decode(await self.read(rev, path))

    async def materialize_head(self, destination: Path, paths: Sequence[str] | None = None) -> Path:
        """Write the head tree (or only ``paths``) under ``destination``; returns it."""
        args = ["archive", "--format=tar", self.head]
        if paths is not None:
            if not paths:
                return destination
            args += ["--", *paths]
        data = await run_git(args, cwd=self.repo)

        def extract() -> None:
            with tempfile.TemporaryFile() as buffer:
                buffer.write(data)
                buffer.seek(0)
                with tarfile.open(fileobj=buffer) as archive:
                    archive.extractall(destination, filter="data")

        await anyio.to_thread.run_sync(extract)
        return destination

    def __iter__(self) -> Iterator[ChangedFile]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)


def _decode(data: bytes | None) -> str | None:
    if data is None or len(data) > _TEXT_LIMIT or b"\x00" in data[:8192]:
        return None
    return data.decode("utf-8", "replace")


async def _resolve(repo: Path, rev: str, what: str) -> str:
    try:
        out = await run_git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=repo)
    except GitError as exc:
        raise JudgeError(f"{what} revision {rev!r} is not a commit in {repo}") from exc
    return out.decode().strip()


def _parse_name_status(raw: bytes) -> list[tuple[str, str, str | None]]:
    """``(status, path, previous_path)`` from ``git diff --name-status -z``."""
    fields = raw.decode("utf-8", "surrogateescape").split("\0")
    result: list[tuple[str, str, str | None]] = []
    i = 0
    while i < len(fields) and fields[i]:
        code = fields[i][0]
        if code in ("R", "C"):
            old, new = fields[i + 1], fields[i + 2]
            result.append((_STATUS[code], new, old))
            i += 3
        else:
            result.append((_STATUS.get(code, "changed"), fields[i + 1], None))
            i += 2
    return result


def _parse_numstat(raw: bytes) -> list[tuple[int | None, int | None]]:
    """``(additions, deletions)`` per entry of ``git diff --numstat -z`` (``None`` = binary)."""
    fields = raw.decode("utf-8", "surrogateescape").split("\0")
    result: list[tuple[int | None, int | None]] = []
    i = 0
    while i < len(fields) and fields[i]:
        parts = fields[i].split("\t")
        added, deleted = parts[0], parts[1]
        result.append(
            (None if added == "-" else int(added), None if deleted == "-" else int(deleted))
        )
        # A rename or copy has an empty path field followed by the old and new paths.
        i += 3 if len(parts) > 2 and parts[2] == "" else 1
    return result


async def load_change(
    repo: Path | str,
    base: str,
    head: str,
    *,
    base_ref: str | None = None,
    head_ref: str | None = None,
) -> Change:
    """Read the change ``base..head`` of the repository at ``repo``.

    Raises :class:`JudgeError` when ``repo`` is not a git repository or a revision is unknown.
    """
    path = Path(repo)
    if not await anyio.Path(path).exists():
        raise JudgeError(f"repository {path} does not exist")
    try:
        await run_git(["rev-parse", "--git-dir"], cwd=path)
    except GitError as exc:
        raise JudgeError(f"{path} is not a git repository") from exc
    base_sha = await _resolve(path, base, "base")
    head_sha = await _resolve(path, head, "head")
    common = ["diff", *_DIFF_OPTIONS, base_sha, head_sha]
    statuses = _parse_name_status(
        await run_git([*common[:1], "--name-status", "-z", *common[1:]], cwd=path)
    )
    numbers = _parse_numstat(await run_git([*common[:1], "--numstat", "-z", *common[1:]], cwd=path))
    diff_bytes = await run_git(common, cwd=path)
    diff_text = diff_bytes.decode("utf-8", "replace")
    try:
        patches = list(PatchSet(diff_text))
    except UnidiffParseError as exc:
        raise JudgeError(f"cannot parse the diff {base_sha[:12]}..{head_sha[:12]}: {exc}") from exc
    if not (len(statuses) == len(numbers) == len(patches)):
        raise JudgeError(
            f"inconsistent diff output for {base_sha[:12]}..{head_sha[:12]} "
            f"({len(statuses)} files, {len(numbers)} stats, {len(patches)} patches)"
        )
    files = []
    for (status, file_path, previous), (added, deleted), patch in zip(
        statuses, numbers, patches, strict=True
    ):
        binary = added is None or deleted is None or bool(patch.is_binary_file)
        added_lines: dict[int, str] = {}
        removed_lines: dict[int, str] = {}
        if not binary:
            for hunk in patch:
                for line in hunk:
                    if line.is_added and line.target_line_no is not None:
                        added_lines[line.target_line_no] = line.value.rstrip("\r\n")
                    elif line.is_removed and line.source_line_no is not None:
                        removed_lines[line.source_line_no] = line.value.rstrip("\r\n")
        files.append(
            ChangedFile(
                path=file_path,
                previous_path=previous,
                status=status,
                additions=0 if binary else int(added or 0),
                deletions=0 if binary else int(deleted or 0),
                binary=binary,
                added_lines=added_lines,
                removed_lines=removed_lines,
                patch=patch,
            )
        )
    return Change(
        repo=path,
        base=base_sha,
        head=head_sha,
        base_ref=base_ref if base_ref is not None else _ref_name(base, base_sha),
        head_ref=head_ref if head_ref is not None else _ref_name(head, head_sha),
        files=files,
        diff_text=diff_text,
    )


def _ref_name(given: str, sha: str) -> str | None:
    """The ref the user named, or ``None`` when they gave a commit id."""
    if sha.startswith(given.lower()) or given in ("HEAD", "@"):
        return None
    return given.removeprefix("refs/heads/")
