"""A sandbox's cleanup ends whatever cancels it, and whenever: the event loop can always close.

A local sandbox tears itself down in a task of its own (a cancelled caller leaves no half
sandbox behind), so that task may still run when the event loop closes, and closing the loop
cancels every task at once. These tests close the loop at each moment of the cleanup steps that
start processes, and cancel commands once (a plain ``Task.cancel``, as the loop's close does):
every wait must end and no cancellation may be lost.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

from tests.conftest import git
from writer.sandbox import SandboxSpec
from writer.sandbox.egress import Allowlist, EgressProxy
from writer.sandbox.local import LocalProvider, LocalSandbox
from writer.sandbox.spawner import Spawner
from writer.sandbox.workspace import release

_CLOSE_SECONDS = 30.0  # far more than any cleanup step takes; a hang never ends


def _close_in_thread(runner: asyncio.Runner) -> bool:
    """Close ``runner`` (cancel every task, wait for them); whether that ended in time."""
    closing = threading.Thread(target=runner.close, name="close-loop", daemon=True)
    closing.start()
    closing.join(_CLOSE_SECONDS)
    return not closing.is_alive()


def _close_loop_during(start: Callable[[], Awaitable[None]], iterations: int) -> bool:
    """Start ``start()`` in a task, let the loop run ``iterations`` times, then close it."""
    runner = asyncio.Runner()

    async def begin() -> None:
        asyncio.get_running_loop().create_task(start())
        for _ in range(iterations):
            await asyncio.sleep(0)

    runner.run(begin())
    return _close_in_thread(runner)


def test_the_loop_closes_at_any_moment_of_a_mirror_ref_release(git_repo: Path) -> None:
    ref = "refs/writgate/sandboxes/sbx_release"
    for iterations in range(8):  # the start of git, its pipes, its exit: every loop iteration
        git(git_repo, "update-ref", ref, "HEAD")
        closed = _close_loop_during(lambda: release(git_repo, "sbx_release"), iterations)
        assert closed, f"the event loop could not close {iterations} iterations into release()"
    assert git(git_repo, "for-each-ref", "refs/writgate/") == ""  # the last release ran


class _ExitedProcess:
    """A command that printed a line and exited: what ``_supervise`` waits for, in memory."""

    def __init__(self) -> None:
        self.stdin = None
        self.stdout = asyncio.StreamReader()
        self.stdout.feed_data(b"done\n")
        self.stdout.feed_eof()
        self.stderr = asyncio.StreamReader()
        self.stderr.feed_eof()
        self.returncode = 0  # exited: nothing is ever killed
        self.pid = 0

    async def wait(self) -> int:
        return 0


def test_a_cancellation_of_a_command_is_never_lost(tmp_path: Path, git_repo: Path) -> None:
    """One ``Task.cancel`` (the loop's close, a gather's cancel) at every loop iteration of a
    command's end: the command either finished before it or ends cancelled, never returns as
    if nothing happened (a cleanup that swallows the cancellation lets its caller run on)."""
    provider = LocalProvider(home=tmp_path / "home")
    sandbox = LocalSandbox(
        provider=provider,
        sandbox_id="sbx_cancel",
        spec=SandboxSpec(repository_url=str(git_repo), ref="main"),
        directory=tmp_path / "sbx_cancel",
    )

    async def run(iterations: int) -> tuple[bool, asyncio.Task[object]]:
        process = cast(Any, _ExitedProcess())
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(
            sandbox._supervise(process, None, None, None, None)
        )
        for _ in range(iterations):
            await asyncio.sleep(0)
        requested = task.cancel()
        await asyncio.wait({task})
        return requested, task

    finished = 0
    for iterations in range(12):
        requested, task = asyncio.run(run(iterations))
        if requested:
            assert task.cancelled(), f"a cancellation {iterations} iterations in was lost"
        else:
            finished += 1
            assert task.result() == (0, b"done\n", b"", False)
    assert finished > 0  # the sweep reached the end of the command
    assert not sandbox._processes


def test_a_cancelled_close_of_the_egress_proxy_is_cancelled() -> None:
    """``close()`` cancels the open tunnels and waits for them: a cancellation of the close
    itself, at any iteration of that wait, propagates instead of being taken for a tunnel's."""

    async def on_egress(host: str, port: int, allowed: bool) -> None:
        return None

    async def run(iterations: int) -> tuple[bool, asyncio.Task[None]]:
        socket_path = short / f"egress-{iterations}.sock"  # under the 108 bytes of a socket path
        proxy = EgressProxy(socket_path=socket_path, allowlist=Allowlist(()), on_egress=on_egress)
        await proxy.start()
        _, client = await asyncio.open_unix_connection(str(socket_path))
        while True:  # until the tunnel's task waits for a request head
            if proxy._tasks:
                break
            await asyncio.sleep(0.001)
        closing = asyncio.get_running_loop().create_task(proxy.close())
        for _ in range(iterations):
            await asyncio.sleep(0)
        requested = closing.cancel()
        await asyncio.wait({closing})
        client.close()
        await asyncio.wait({asyncio.ensure_future(proxy.close())}, timeout=5)
        assert not proxy._tasks and not socket_path.exists()
        return requested, closing

    short = Path(tempfile.mkdtemp(prefix="wgx-test-"))
    cancelled = 0
    try:
        for iterations in range(6):
            requested, closing = asyncio.run(run(iterations))
            if requested:
                cancelled += 1
                assert closing.cancelled(), f"a cancellation {iterations} iterations in was lost"
    finally:
        shutil.rmtree(short, ignore_errors=True)
    assert cancelled > 0


class _StuckHelper:
    """A spawner helper that never exits, even when killed (a process stuck in the kernel)."""

    returncode = None
    killed = False

    async def wait(self) -> int:
        await asyncio.Event().wait()
        return 0

    def kill(self) -> None:
        self.killed = True


def test_closing_a_spawner_whose_helper_never_exits_is_bounded() -> None:
    async def run() -> _StuckHelper:
        spawner = Spawner()
        helper = _StuckHelper()
        spawner._process = cast(Any, helper)
        spawner.EXIT_SECONDS = 0.05
        await asyncio.wait_for(spawner.close(), 10)
        assert {task for task in asyncio.all_tasks() if not task.done()} == {asyncio.current_task()}
        return helper

    assert asyncio.run(run()).killed
