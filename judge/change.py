"""The change under review: a git repository, a base and a head.

:func:`load_change` reads the file list (status, additions, deletions, binary — the same numbers as
``git diff --numstat -M``) and the parsed patch, so reviewers can ask which lines a change added.
File contents at base and head are read on demand and cached.
"""

from __future__ import annotations

import re
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

from .errors import JudgeError, RevisionNotFound

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
        self._patches: list[Any] | None = None
        self._trees: dict[str, dict[str, str]] = {}
        self.cache: dict[str, Any] = {}  # reviewers share derived facts here
        self._by_path = {f.path: f for f in self.files}

    def patch_set(self) -> list[Any]:
        """The diff parsed by ``unidiff`` (one ``PatchedFile`` per file, in file order), on demand.

        Reviewers that only need added or removed lines use ``ChangedFile.added_lines``, which
        is read without it (parsing a large diff with unidiff takes a while).
        """
        if self._patches is None:
            try:
                self._patches = list(PatchSet(self.diff_text))
            except UnidiffParseError as exc:
                raise JudgeError(f"cannot parse the diff: {exc}") from exc
        return self._patches

    def patch(self, path: str) -> Any:
        """The ``unidiff.PatchedFile`` of the changed file at ``path`` (``None`` if none)."""
        for changed, patched in zip(self.files, self.patch_set(), strict=False):
            if changed.path == path:
                return patched
        return None

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

    async def tree(self, rev: str) -> dict[str, str]:
        """Every blob path at ``rev`` and its object id (one ``git ls-tree``, cached)."""
        if rev not in self._trees:
            listing = await run_git(["ls-tree", "-r", "-z", "--full-tree", rev], cwd=self.repo)
            entries: dict[str, str] = {}
            for entry in listing.decode("utf-8", "surrogateescape").split("\0"):
                meta, _, path = entry.partition("\t")
                parts = meta.split(" ")
                if len(parts) == 3 and parts[1] == "blob":
                    entries[path] = parts[2]
            self._trees[rev] = entries
        return self._trees[rev]

    async def read_many(self, rev: str, paths: Sequence[str]) -> dict[str, bytes | None]:
        """The bytes of each of ``paths`` at ``rev`` (``None`` when missing), in two git calls."""
        wanted = [p for p in dict.fromkeys(paths) if (rev, p) not in self._blobs]
        if wanted:
            tree = await self.tree(rev)
            present = [p for p in wanted if p in tree]
            for path in wanted:
                if path not in tree:
                    self._blobs[(rev, path)] = None
            if present:
                request = "".join(f"{tree[path]}\n" for path in present).encode()
                output = await run_git(["cat-file", "--batch"], cwd=self.repo, input=request)
                for path, blob in zip(present, _batch_objects(output), strict=True):
                    self._blobs[(rev, path)] = blob
        return {path: self._blobs[(rev, path)] for path in paths}

    async def materialize_head(self, destination: Path, paths: Sequence[str] | None = None) -> Path:
        """Write the head tree (or only ``paths``, missing ones skipped) under ``destination``."""
        if paths is not None:
            blobs = await self.read_many(self.head, paths)

            def write() -> None:
                root = destination.resolve()
                for path, blob in blobs.items():
                    target = (root / path).resolve()
                    if blob is None or not target.is_relative_to(root):
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(blob)

            await anyio.to_thread.run_sync(write)
            return destination
        data = await run_git(["archive", "--format=tar", self.head], cwd=self.repo)

        def extract() -> None:
            with tempfile.TemporaryFile() as buffer:
                buffer.write(data)
                buffer.seek(0)
                with tarfile.open(fileobj=buffer) as archive:
                    archive.extractall(destination, filter=_safe_member)

        await anyio.to_thread.run_sync(extract)
        return destination

    def __iter__(self) -> Iterator[ChangedFile]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)


def _safe_member(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
    """tarfile's ``data`` filter, skipping (not failing on) members it refuses, such as a
    symlink that points outside the tree."""
    try:
        return tarfile.data_filter(member, path)
    except tarfile.FilterError:
        return None


def _batch_objects(output: bytes) -> Iterator[bytes | None]:
    """The contents of each object of ``git cat-file --batch`` output (``None`` if missing)."""
    position = 0
    while position < len(output):
        end = output.index(b"\n", position)
        header = output[position:end].split(b" ")
        position = end + 1
        if header[-1] == b"missing" or len(header) != 3 or header[1] != b"blob":
            if len(header) == 3 and header[1] != b"blob":
                position += int(header[2]) + 1  # a tree or a submodule: skip its content
            yield None
            continue
        size = int(header[2])
        yield output[position : position + size]
        position += size + 1


def _decode(data: bytes | None) -> str | None:
    if data is None or len(data) > _TEXT_LIMIT or b"\x00" in data[:8192]:
        return None
    return data.decode("utf-8", "replace")


async def _resolve(repo: Path, rev: str, what: str) -> str:
    try:
        out = await run_git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=repo)
    except GitError as exc:
        raise RevisionNotFound(f"revision {rev!r} is not a commit in {repo}", field=what) from exc
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


_HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def _split_files(diff_text: str) -> list[list[str]]:
    """The lines of ``git diff`` output, one list per file (split on ``diff --git``)."""
    chunks: list[list[str]] = []
    for line in diff_text.split("\n"):
        if line.startswith("diff --git "):
            chunks.append([line])
        elif chunks:
            chunks[-1].append(line)
    return chunks


def _parse_hunks(lines: list[str]) -> tuple[dict[int, str], dict[int, str], bool]:
    """Added lines (head numbers), removed lines (base numbers), and whether it is binary.

    Inside a hunk every line is counted against the hunk header's lengths, so content that
    looks like a header (``--- x``, ``@@``) is never misread.
    """
    added: dict[int, str] = {}
    removed: dict[int, str] = {}
    old = new = old_left = new_left = 0
    binary = False
    for line in lines:
        if old_left > 0 or new_left > 0:
            tag = line[:1]
            if tag == "+":
                added[new] = line[1:].rstrip("\r")
                new += 1
                new_left -= 1
            elif tag == "-":
                removed[old] = line[1:].rstrip("\r")
                old += 1
                old_left -= 1
            elif tag == "\\":
                continue  # "\ No newline at end of file"
            else:
                old, new = old + 1, new + 1
                old_left, new_left = old_left - 1, new_left - 1
            continue
        match = _HUNK.match(line)
        if match:
            old, new = int(match[1]), int(match[3])
            old_left = 1 if match[2] is None else int(match[2])
            new_left = 1 if match[4] is None else int(match[4])
        elif line.startswith(("Binary files ", "GIT binary patch")):
            binary = True
    return added, removed, binary


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
        raise RevisionNotFound(f"repository {path} does not exist", field="repo")
    resolved: dict[str, str] = {}

    async def resolve(rev: str, what: str) -> None:
        resolved[what] = await _resolve(path, rev, what)

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(resolve, base, "base")
            group.start_soon(resolve, head, "head")
    except* JudgeError as group_error:
        try:
            await run_git(["rev-parse", "--git-dir"], cwd=path)
        except GitError as exc:
            raise RevisionNotFound(f"{path} is not a git repository", field="repo") from exc
        raise group_error.exceptions[0] from None
    base_sha, head_sha = resolved["base"], resolved["head"]
    common = [*_DIFF_OPTIONS, base_sha, head_sha]
    outputs: dict[str, bytes] = {}

    async def diff(key: str, *extra: str) -> None:
        outputs[key] = await run_git(["diff", *extra, *common], cwd=path)

    async with anyio.create_task_group() as group:
        group.start_soon(diff, "status", "--name-status", "-z")
        group.start_soon(diff, "patch")
    statuses = _parse_name_status(outputs["status"])
    diff_text = outputs["patch"].decode("utf-8", "replace")
    chunks = _split_files(diff_text)
    if len(statuses) != len(chunks):
        raise JudgeError(
            f"inconsistent diff output for {base_sha[:12]}..{head_sha[:12]} "
            f"({len(statuses)} files, {len(chunks)} patches)"
        )
    files = []
    for (status, file_path, previous), chunk in zip(statuses, chunks, strict=True):
        # The counts of ``git diff --numstat``: the +/- lines of the patch; 0 for binary files.
        added_lines, removed_lines, binary = _parse_hunks(chunk)
        files.append(
            ChangedFile(
                path=file_path,
                previous_path=previous,
                status=status,
                additions=0 if binary else len(added_lines),
                deletions=0 if binary else len(removed_lines),
                binary=binary,
                added_lines={} if binary else added_lines,
                removed_lines={} if binary else removed_lines,
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
