"""Process identities for leases and run ownership, and liveness checks.

An owner is ``host:pid:start.random``: ``start`` is the process's start time (clock ticks since
boot, from ``/proc``), so a pid that the kernel gave to another process after the owner died is
not taken for the owner. Owners written before the start time was recorded (``host:pid:random``)
are checked by pid alone.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

__all__ = ["new_owner_id", "owner_is_dead"]


def new_owner_id() -> str:
    """``host:pid:start.random``: who holds a lease or drives a run."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or 0}.{secrets.token_hex(3)}"


def owner_is_dead(owner: str) -> bool:
    """Whether ``owner`` is a process of this host that no longer exists (or whose pid another
    process now has).

    Owners on other hosts are never declared dead here; their leases expire instead.
    """
    parts = owner.split(":")
    if len(parts) < 3:
        return False
    host, pid_text = ":".join(parts[:-2]), parts[-2]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    started, dot, _ = parts[-1].partition(".")
    if dot and started.isdigit() and started != "0":
        now = _start_time(pid)
        if now is not None and now != started:
            return True  # the pid was reused by a process that started later
    return _is_zombie(pid)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()


def _start_time(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def _is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[:1] == ["Z"]
