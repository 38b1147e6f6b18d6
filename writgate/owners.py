"""Process identities for leases and run ownership: ``host:pid:random``, and liveness checks."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

__all__ = ["new_owner_id", "owner_is_dead"]


def new_owner_id() -> str:
    """``host:pid:random``: who holds a lease or drives a run."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def owner_is_dead(owner: str) -> bool:
    """Whether ``owner`` is a process of this host that no longer exists.

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
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
