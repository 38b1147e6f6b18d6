"""Behaviour specific to the local provider: crash leftovers, a lost workspace, the cgroup."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from tests.conftest import git
from writer.sandbox import Limits, NetworkPolicy, SandboxEvent, SandboxLost, SandboxSpec
from writer.sandbox.limits import Cgroup, cgroup_support
from writer.sandbox.local import LocalProvider

pytestmark = pytest.mark.anyio


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[LocalProvider]:
    provider = LocalProvider(home=tmp_path / "home")
    try:
        yield provider
    finally:
        await provider.aclose()


def spec(repo: Path, **changes: object) -> SandboxSpec:
    values: dict[str, object] = {"repository_url": str(repo), "ref": "main"}
    values.update(changes)
    return SandboxSpec(**values)  # type: ignore[arg-type]


async def test_prune_removes_only_the_sandboxes_of_dead_processes(
    tmp_path: Path, git_repo: Path, provider: LocalProvider
) -> None:
    live = await provider.create(spec(git_repo))
    crashed = await provider.create(spec(git_repo, network=NetworkPolicy(mode="restricted")))
    crashed_dir = crashed.directory
    socket_dir = Path((crashed_dir / "socket-dir").read_text())
    # Simulate a crash: the recorded owner is a process that no longer runs (same pid, other
    # start time: a reused pid), and nothing was closed.
    (crashed_dir / "owner").write_text(f"{os.getpid()} 1\n")
    provider._forget(crashed.id)

    etc_base = tmp_path / "home" / "sandbox-etc"
    (etc_base / f"closed-{os.getpid()}-1").mkdir()  # the /etc of a stopped process
    assert live._etc.parent == etc_base and crashed._etc == live._etc  # one per process

    other_process = LocalProvider(home=tmp_path / "home")
    # Its first create prunes on its own.
    await (await other_process.create(spec(git_repo))).close()
    assert not crashed_dir.exists()
    assert not await anyio.Path(socket_dir).exists()
    assert Cgroup.existing(f"writgate-{crashed.id}") is None
    mirror = next(provider.mirrors.glob("*.git"))
    refs = git(mirror, "for-each-ref", "--format=%(refname)", "refs/writgate/")
    assert refs.split() == [f"refs/writgate/sandboxes/{live.id}"]
    assert sorted(p.name for p in provider.root.iterdir()) == [live.id]
    assert sorted(p.name for p in etc_base.iterdir()) == [live._etc.name]
    assert await live.is_alive()
    assert await other_process.prune_orphans() == []
    await crashed.close()  # the object of the crashed process: closing it stays harmless


async def test_a_sandbox_whose_workspace_vanished_is_lost(tmp_path: Path, git_repo: Path) -> None:
    events: list[SandboxEvent] = []

    async def on_event(event: SandboxEvent) -> None:
        events.append(event)

    provider = LocalProvider(home=tmp_path / "home", on_event=on_event)
    sandbox = await provider.create(spec(git_repo, labels={"runId": "run_lost"}))
    await anyio.to_thread.run_sync(
        lambda: subprocess.run(["rm", "-rf", str(sandbox.directory / "workspace")], check=True)
    )
    assert not await sandbox.is_alive()
    with pytest.raises(SandboxLost):
        await sandbox.exec(["true"])
    assert [(e.type, e.labels["runId"]) for e in events] == [("sandbox.lost", "run_lost")]
    assert await provider.attach(sandbox.id) is None


@pytest.mark.skipif(not cgroup_support(), reason="no writable cgroups on this machine")
async def test_the_cgroup_carries_the_limits_and_goes_away_on_close(
    git_repo: Path, provider: LocalProvider
) -> None:
    sandbox = await provider.create(spec(git_repo, limits=Limits(memory_mb=300, processes=40)))
    cgroup = Cgroup.existing(f"writgate-{sandbox.id}")
    assert cgroup is not None
    values = {
        path.name: path.read_text().strip()
        for directory in cgroup.directories
        for path in directory.iterdir()
        if path.name in ("pids.max", "memory.limit_in_bytes", "memory.max")
    }
    assert values["pids.max"] == "40"
    assert str(300 * 1024 * 1024) in values.values()
    result = await sandbox.exec(["cat", "/proc/self/cgroup"])
    assert result.exit_code == 0
    await sandbox.close()
    assert Cgroup.existing(f"writgate-{sandbox.id}") is None


async def test_the_ref_can_be_a_commit_that_is_on_no_branch(
    git_repo: Path, provider: LocalProvider
) -> None:
    git(git_repo, "checkout", "-qb", "topic")
    (git_repo / "topic.txt").write_text("only on a deleted branch\n")
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "topic")
    orphan = git(git_repo, "rev-parse", "HEAD").strip()
    git(git_repo, "checkout", "-q", "main")
    git(git_repo, "branch", "-qD", "topic")
    sandbox = await provider.create(spec(git_repo, ref=orphan))
    assert await sandbox.head() == orphan
    assert await sandbox.read_file("topic.txt") == b"only on a deleted branch\n"


async def test_an_unknown_ref_is_a_setup_error(git_repo: Path, provider: LocalProvider) -> None:
    from writer.sandbox import SandboxSetupError

    with pytest.raises(SandboxSetupError, match="no-such-branch"):
        await provider.create(spec(git_repo, ref="no-such-branch"))
    assert list(provider.root.iterdir()) == []


async def test_big_outputs_are_cut_and_marked_but_files_and_diffs_are_whole(
    git_repo: Path, provider: LocalProvider
) -> None:
    sandbox = await provider.create(spec(git_repo))
    size = 17 * 1024 * 1024
    lines: list[int] = []

    async def count(stream: str, line: str) -> None:
        lines.append(len(line))

    result = await sandbox.exec(
        ["sh", "-c", f"head -c {size} /dev/zero | tr '\\0' 'x' | fold -w 1023"], on_output=count
    )
    assert result.exit_code == 0
    assert result.stdout.endswith("output truncated after 16 MiB; on_output saw all of it]\n")
    assert sum(lines) == size  # the sink saw every byte
    made = await sandbox.exec(["sh", "-c", f"head -c {size} /dev/urandom > big.bin"])
    assert made.exit_code == 0
    assert len(await sandbox.read_file("big.bin")) == size
    assert len(await sandbox.diff()) > size  # base85 of the whole file


@pytest.mark.skipif(not cgroup_support(), reason="no writable cgroups on this machine")
async def test_commands_start_inside_the_cgroup_and_survive_a_dead_spawner(
    git_repo: Path, provider: LocalProvider
) -> None:
    sandbox = await provider.create(spec(git_repo))
    cgroup = Cgroup.existing(f"writgate-{sandbox.id}")
    assert cgroup is not None and sandbox._spawner is not None
    spawner_process = sandbox._spawner._process
    assert spawner_process is not None and spawner_process.pid in cgroup.pids()
    seen: set[int] = set()

    async def watch(stream: str, line: str) -> None:
        seen.update(cgroup.pids())

    result = await sandbox.exec(["sh", "-c", "echo started; sleep 0.2"], on_output=watch)
    assert result.exit_code == 0
    assert len(seen) >= 3  # the spawner, bwrap and the command, all in the sandbox's cgroup
    spawner_process.kill()
    await spawner_process.wait()
    again = await sandbox.exec(["echo", "after"], stdin=b"ignored")
    assert again.stdout == "after\n"
    assert sandbox._spawner._process is not spawner_process
