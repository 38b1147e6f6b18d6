"""Owner ids name a process of a host; a dead owner is told apart from a reused pid."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from writgate.owners import new_owner_id, owner_is_dead


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def _start_of(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()[19]


def test_this_process_is_alive() -> None:
    owner = new_owner_id()
    host, pid, rest = owner.rsplit(":", 2)
    assert host == socket.gethostname() and pid.isdigit() and "." in rest
    assert not owner_is_dead(owner)


def test_a_live_process_with_its_start_time_is_alive(child: subprocess.Popen[bytes]) -> None:
    host = socket.gethostname()
    assert not owner_is_dead(f"{host}:{child.pid}:{_start_of(child.pid)}.abcdef")
    assert not owner_is_dead(f"{host}:{child.pid}:abcdef")  # an owner written before start times


def test_a_reused_pid_is_not_the_owner(child: subprocess.Popen[bytes]) -> None:
    earlier = int(_start_of(child.pid)) - 1
    assert owner_is_dead(f"{socket.gethostname()}:{child.pid}:{earlier}.abcdef")


def test_an_ended_process_is_dead_and_other_hosts_are_never(
    child: subprocess.Popen[bytes],
) -> None:
    owner = f"{socket.gethostname()}:{child.pid}:{_start_of(child.pid)}.abcdef"
    child.kill()
    child.wait()
    assert owner_is_dead(owner)
    assert not owner_is_dead(f"elsewhere.example:{child.pid}:1.abcdef")
    assert not owner_is_dead("not-an-owner")
