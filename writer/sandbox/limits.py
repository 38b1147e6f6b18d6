"""Resource limits of a local sandbox: a cgroup per sandbox, or rlimits where there is none.

What actually contains a fork bomb depends on who runs writgate:

- As **root**, the sandboxed processes keep kernel uid 0 (bubblewrap maps the sandbox user to the
  caller), and ``RLIMIT_NPROC`` is never enforced for uid 0. A **cgroup** (``pids.max``, and the
  memory limit) is then the only reliable limit, so the local provider creates one per sandbox
  (cgroup v2, or the v1 ``pids`` and ``memory`` controllers) and refuses to run a sandbox with a
  process limit when it cannot.
- As an **unprivileged user**, ``RLIMIT_NPROC`` set *inside* the sandbox's user namespace counts
  only the sandbox's own processes, so ``prlimit`` in front of the command is enough; memory is
  then bounded by ``RLIMIT_AS``.

CPU time is always ``RLIMIT_CPU`` (per process). Wall-clock time is enforced by the caller, which
kills the whole sandbox.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import SandboxUnavailable
from .protocol import Limits

__all__ = ["Cgroup", "cgroup_support", "prlimit_prefix"]

_MOUNTS = Path("/proc/self/mounts")
_SELF = Path("/proc/self/cgroup")


@dataclass(frozen=True)
class _Hierarchy:
    controller: str  # "pids" | "memory" | "" for the v2 unified hierarchy
    directory: Path  # where writgate creates its sandbox cgroups


def _own_cgroups() -> dict[str, str]:
    """Controller ("" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    result: dict[str, str] = {}
    try:
        lines = _SELF.read_text().splitlines()
    except OSError:
        return result
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            result[controller] = path
    return result


def _mount_points() -> dict[str, Path]:
    """Controller ("" for v2) -> mount point of its hierarchy."""
    result: dict[str, Path] = {}
    try:
        lines = _MOUNTS.read_text().splitlines()
    except OSError:
        return result
    for line in lines:
        parts = line.split()
        if len(parts) < 4:
            continue
        if parts[2] == "cgroup2":
            result.setdefault("", Path(parts[1]))
        elif parts[2] == "cgroup":
            for option in parts[3].split(","):
                result.setdefault(option, Path(parts[1]))
    return result


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


def _find_hierarchies() -> list[_Hierarchy] | None:
    """Where this process may create child cgroups for pids and memory, or None."""
    own, mounts = _own_cgroups(), _mount_points()
    if "pids" in mounts and "memory" in mounts:  # cgroup v1
        found = []
        for controller in ("pids", "memory"):
            base = mounts[controller] / own.get(controller, "/").lstrip("/")
            if not _writable_dir(base):
                return None
            found.append(_Hierarchy(controller, base))
        return found
    if "" in mounts and "" in own:  # cgroup v2: controllers must be enabled for children
        base = mounts[""] / own[""].lstrip("/")
        try:
            enabled = (base / "cgroup.subtree_control").read_text().split()
        except OSError:
            return None
        if {"pids", "memory"} <= set(enabled) and _writable_dir(base):
            return [_Hierarchy("", base)]
    return None


_probed: list[list[_Hierarchy] | None] = []


def _hierarchies() -> list[_Hierarchy] | None:
    if not _probed:
        _probed.append(_find_hierarchies())
    return _probed[0]


def cgroup_support() -> bool:
    """Whether per-sandbox cgroups can be created here (probed once)."""
    return _hierarchies() is not None


class Cgroup:
    """A sandbox's cgroup(s): created with its limits, joined by its processes, removed at close."""

    def __init__(self, name: str, limits: Limits):
        hierarchies = _hierarchies()
        if hierarchies is None:
            raise SandboxUnavailable("cgroups are not available for sandboxes on this machine")
        self.directories: list[Path] = []
        try:
            for hierarchy in hierarchies:
                directory = hierarchy.directory / name
                directory.mkdir(exist_ok=True)
                self.directories.append(directory)
                self._configure(hierarchy.controller, directory, limits)
        except OSError as exc:
            self.remove()
            raise SandboxUnavailable(f"cannot set up the sandbox cgroup: {exc}") from exc

    @classmethod
    def existing(cls, name: str) -> Cgroup | None:
        """The cgroup ``name`` left behind by an earlier process, if there is one."""
        hierarchies = _hierarchies() or []
        directories = [h.directory / name for h in hierarchies if (h.directory / name).is_dir()]
        if not directories:
            return None
        cgroup = cls.__new__(cls)
        cgroup.directories = directories
        return cgroup

    @staticmethod
    def sweep_empty(prefix: str, *, older_than: float) -> list[str]:
        """Remove empty cgroups named ``prefix…`` older than ``older_than`` seconds; their names.

        A live local sandbox always has its spawner in its cgroup, so an old empty one was left
        by a process that stopped without closing its sandboxes (whatever its home directory).
        """
        removed: list[str] = []
        now = time.time()
        for hierarchy in _hierarchies() or []:
            with contextlib.suppress(OSError):
                for directory in hierarchy.directory.glob(f"{prefix}*"):
                    with contextlib.suppress(OSError):
                        if now - directory.stat().st_mtime < older_than:
                            continue
                        if (directory / "cgroup.procs").read_text().strip():
                            continue
                        directory.rmdir()
                        removed.append(directory.name)
        return removed

    @staticmethod
    def _configure(controller: str, directory: Path, limits: Limits) -> None:
        settings: dict[str, str] = {}
        if controller in ("pids", "") and limits.processes is not None:
            settings["pids.max"] = str(limits.processes)
        if limits.memory_mb is not None:
            memory = str(limits.memory_mb * 1024 * 1024)
            if controller == "memory":
                settings["memory.limit_in_bytes"] = memory
            elif controller == "":
                settings["memory.max"] = memory
                settings["memory.swap.max"] = "0"
        for name, value in settings.items():
            path = directory / name
            if name == "memory.swap.max" and not path.exists():
                continue
            path.write_text(value)

    def join_function(self) -> Callable[[], None]:
        """A ``preexec_fn`` moving the new process into this cgroup before it runs bwrap."""
        procs = [str(directory / "cgroup.procs") for directory in self.directories]

        def join() -> None:
            pid = str(os.getpid()).encode()
            for path in procs:
                fd = os.open(path, os.O_WRONLY)
                try:
                    os.write(fd, pid)
                finally:
                    os.close(fd)

        return join

    def pids(self) -> set[int]:
        """The processes currently in the cgroup."""
        found: set[int] = set()
        for directory in self.directories:
            with contextlib.suppress(OSError):
                found |= {int(p) for p in (directory / "cgroup.procs").read_text().split()}
        return found

    def kill_all(self) -> None:
        """SIGKILL every process of the sandbox (new ones cannot escape the cgroup)."""
        for directory in self.directories:
            kill = directory / "cgroup.kill"
            if kill.exists():
                with contextlib.suppress(OSError):
                    kill.write_text("1")
        for _ in range(10):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def memory_events(self) -> int:
        """How many times the memory limit was hit (v1 failcnt / v2 max events)."""
        for directory in self.directories:
            for name in ("memory.failcnt", "memory.events"):
                path = directory / name
                with contextlib.suppress(OSError, ValueError):
                    text = path.read_text()
                    if name == "memory.failcnt":
                        return int(text.strip())
                    for line in text.splitlines():
                        key, value = line.split()
                        if key == "max":
                            return int(value)
        return 0

    def remove(self) -> None:
        """Remove the cgroup directories (after the processes are gone)."""
        for directory in reversed(self.directories):
            with contextlib.suppress(OSError):
                directory.rmdir()


def prlimit_prefix(limits: Limits, *, with_process_limits: bool) -> list[str]:
    """``prlimit …  --`` setting the rlimits inside the sandbox (empty when there are none).

    ``with_process_limits`` adds ``RLIMIT_NPROC`` and ``RLIMIT_AS``, for when no cgroup holds
    processes and memory.
    """
    options: list[str] = []
    if limits.cpu_seconds is not None:
        options.append(f"--cpu={limits.cpu_seconds}")
    if with_process_limits:
        if limits.processes is not None:
            options.append(f"--nproc={limits.processes}")
        if limits.memory_mb is not None:
            options.append(f"--as={limits.memory_mb * 1024 * 1024}")
    return ["prlimit", *options, "--"] if options else []
