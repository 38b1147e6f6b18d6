"""Running git: one async entry point with error translation, and a cached mirror per repository.

Every package that reads or writes git goes through :func:`run_git` so failures become
:class:`GitError` with git's own message (credentials scrubbed), never a raw ``CalledProcessError``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio

from .errors import WritgateError

__all__ = ["GIT_ENV", "GitError", "mirror", "run_git", "run_git_sync"]

# A fixed, hermetic environment: no user/system config, no prompts, stable output.
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "writgate",
    "GIT_AUTHOR_EMAIL": "writgate@localhost",
    "GIT_COMMITTER_NAME": "writgate",
    "GIT_COMMITTER_EMAIL": "writgate@localhost",
    "LC_ALL": "C",
}
_CREDENTIALS = re.compile(r"(https?://)[^/@\s]+@")


class GitError(WritgateError):
    """A git command failed."""

    code = "git_error"


def _scrub(text: str) -> str:
    return _CREDENTIALS.sub(r"\1***@", text)


def _environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR", "LANG")}
    base.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return {**base, **GIT_ENV, **(extra or {})}


def _failure(args: Sequence[str], returncode: int, stderr: bytes) -> GitError:
    message = stderr.decode("utf-8", "replace").strip().splitlines()
    last = message[-1] if message else f"exit code {returncode}"
    return GitError(f"git {args[0]} failed: {_scrub(last)}", returncode=returncode)


def run_git_sync(
    args: Sequence[str],
    *,
    cwd: Path | str | None = None,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> bytes:
    """Run ``git ARGS`` and return stdout; raise :class:`GitError` on failure when ``check``."""
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            input=input,
            env=_environment(env),
            capture_output=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed") from exc
    if check and result.returncode != 0:
        raise _failure(args, result.returncode, result.stderr)
    return result.stdout


async def run_git(
    args: Sequence[str],
    *,
    cwd: Path | str | None = None,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> bytes:
    """Async :func:`run_git_sync` (git runs as a subprocess; the event loop is not blocked)."""
    try:
        result = await anyio.run_process(
            ["git", *args], cwd=cwd, input=input, env=_environment(env), check=False
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed") from exc
    if check and result.returncode != 0:
        raise _failure(args, result.returncode, result.stderr)
    return result.stdout


def _mirror_sync(root: Path, url: str, refs: Sequence[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(url.encode()).hexdigest()[:24]
    path = root / f"{key}.git"
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (path / "HEAD").exists():
            tmp = root / f"{key}.tmp{os.getpid()}"
            run_git_sync(["clone", "--quiet", "--bare", "--", url, str(tmp)])
            run_git_sync(["config", "remote.origin.fetch", "+refs/heads/*:refs/heads/*"], cwd=tmp)
            tmp.rename(path)
        run_git_sync(["fetch", "--quiet", "--prune", "origin"], cwd=path)
        for ref in refs:
            run_git_sync(["fetch", "--quiet", "origin", ref], cwd=path, check=False)
    return path


async def mirror(root: Path, url: str, *, refs: Sequence[str] = ()) -> Path:
    """A bare mirror of ``url`` under ``root``, created once and fetched up to date.

    Concurrent callers (threads or processes) on the same URL are serialized by a file lock, so
    the mirror is never corrupted. ``refs`` are extra refs or commit ids to fetch.
    """
    return await anyio.to_thread.run_sync(_mirror_sync, root, url, list(refs))
