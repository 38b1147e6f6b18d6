"""The e2b provider against a stand-in for the E2B cloud: real commands in a bubblewrap "VM".

Without an E2B account the provider's own logic (bundle upload and checkout, streaming, diff,
warm sessions, re-attach by id from another process, error translation) still has to be right.
:class:`FakeAsyncSandbox` implements the part of ``e2b.AsyncSandbox`` the provider uses, checks
every call against the installed SDK's signatures, and runs commands for real: bash in a
bubblewrap sandbox whose ``/home/user`` and ``/tmp`` are directories of the test. The conformance
suite runs on it as the ``e2b-fake`` provider.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import os
import shutil
import tempfile
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import git
from writer.sandbox import NetworkPolicy, SandboxSpec

e2b = pytest.importorskip("e2b", reason="the e2b extra is not installed")

pytestmark = pytest.mark.anyio

_ids = itertools.count(1)


def _check_call(method: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """Fail when the provider passes an argument the real SDK method does not take."""
    parameters = inspect.signature(method).parameters
    unknown = set(kwargs) - set(parameters)
    assert not unknown, f"{method.__qualname__} has no parameter(s) {sorted(unknown)}"


class _Files:
    def __init__(self, sandbox: FakeAsyncSandbox):
        self.sandbox = sandbox

    def _host(self, path: str) -> Path:
        assert path.startswith("/"), f"E2B paths are absolute here, got {path!r}"
        return self.sandbox.root / path.lstrip("/")

    async def read(self, path: str, format: str = "text", **kwargs: Any) -> Any:
        from e2b.sandbox_async.filesystem.filesystem import Filesystem

        _check_call(Filesystem.read, {"path": path, "format": format, **kwargs})
        self.sandbox.ensure_running()
        host = self._host(path)
        if not host.is_file():
            raise e2b.FileNotFoundException(f"Path '{path}' does not exist")
        data = host.read_bytes()
        return bytearray(data) if format == "bytes" else data.decode()

    async def write(self, path: str, data: bytes | str, **kwargs: Any) -> None:
        from e2b.sandbox_async.filesystem.filesystem import Filesystem

        _check_call(Filesystem.write, {"path": path, "data": data, **kwargs})
        self.sandbox.ensure_running()
        host = self._host(path)
        host.parent.mkdir(parents=True, exist_ok=True)
        host.write_bytes(data.encode() if isinstance(data, str) else data)


class _Commands:
    def __init__(self, sandbox: FakeAsyncSandbox):
        self.sandbox = sandbox

    async def run(
        self,
        cmd: str,
        envs: dict[str, str] | None = None,
        cwd: str | None = None,
        on_stdout: Callable[[str], Awaitable[None] | None] | None = None,
        on_stderr: Callable[[str], Awaitable[None] | None] | None = None,
        timeout: float | None = 60,
        **kwargs: Any,
    ) -> Any:
        from e2b.sandbox.commands.command_handle import CommandResult
        from e2b.sandbox_async.commands.command import Commands

        _check_call(
            Commands.run,
            {
                "cmd": cmd,
                "envs": envs,
                "cwd": cwd,
                "on_stdout": on_stdout,
                "on_stderr": on_stderr,
                "timeout": timeout,
                **kwargs,
            },
        )
        self.sandbox.ensure_running()
        root = self.sandbox.root
        argv = [
            "bwrap",
            "--unshare-all",
            "--unshare-user",
            "--uid",
            "1000",
            "--gid",
            "1000",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--ro-bind",
            "/etc",
            "/etc",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--bind",
            str(root / "home"),
            "/home",
            "--bind",
            str(root / "tmp"),
            "/tmp",
            "--chdir",
            cwd or "/home/user",
        ]
        for name, value in (envs or {}).items():
            argv += ["--setenv", name, value]
        argv += ["--", "/bin/bash", "-c", cmd]
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            env={"PATH": "/usr/bin:/bin"},
        )
        chunks: dict[str, list[str]] = {"stdout": [], "stderr": []}

        async def pump(stream: asyncio.StreamReader, name: str, callback: Any) -> None:
            while data := await stream.read(4096):
                text = data.decode("utf-8", "replace")
                chunks[name].append(text)
                if callback is not None:
                    result = callback(text)
                    if inspect.isawaitable(result):
                        await result

        assert process.stdout is not None and process.stderr is not None
        pumps = asyncio.gather(
            pump(process.stdout, "stdout", on_stdout), pump(process.stderr, "stderr", on_stderr)
        )
        try:
            await asyncio.wait_for(asyncio.shield(pumps), timeout or None)
        except TimeoutError:
            os.killpg(process.pid, 9)
            await process.wait()
            await pumps
            raise e2b.TimeoutException("context deadline exceeded") from None
        code = await process.wait()
        stdout, stderr = "".join(chunks["stdout"]), "".join(chunks["stderr"])
        if code != 0:
            raise e2b.CommandExitException(stderr, stdout, code, None)
        return CommandResult(stderr, stdout, code, None)


class FakeAsyncSandbox:
    """The subset of ``e2b.AsyncSandbox`` the e2b provider uses, run locally."""

    registry: dict[str, FakeAsyncSandbox] = {}
    created: list[dict[str, Any]] = []

    def __init__(self, kwargs: dict[str, Any]):
        self.sandbox_id = f"fake{next(_ids)}"
        self.kwargs = kwargs
        self.root = Path(tempfile.mkdtemp(prefix="wg-fake-e2b-"))
        (self.root / "home" / "user").mkdir(parents=True)
        (self.root / "tmp").mkdir()
        os.chmod(self.root / "tmp", 0o1777)
        self.running = True
        self.timeouts: list[int] = []
        self.files = _Files(self)
        self.commands = _Commands(self)

    @classmethod
    async def create(cls, **kwargs: Any) -> FakeAsyncSandbox:
        _check_call(e2b.AsyncSandbox.create, kwargs)
        cls.created.append(kwargs)
        key = kwargs.get("idempotency_key")
        for existing in cls.registry.values():
            if key is not None and existing.kwargs.get("idempotency_key") == key:
                return existing
        sandbox = cls(kwargs)
        cls.registry[sandbox.sandbox_id] = sandbox
        return sandbox

    @classmethod
    async def connect(cls, sandbox_id: str, **kwargs: Any) -> FakeAsyncSandbox:
        sandbox = cls.registry.get(sandbox_id)
        if sandbox is None or not sandbox.running:
            raise e2b.SandboxNotFoundException(f"sandbox {sandbox_id} not found")
        return sandbox

    def ensure_running(self) -> None:
        if not self.running:
            raise e2b.SandboxNotFoundException(f"sandbox {self.sandbox_id} not found")

    async def get_info(self) -> Any:
        self.ensure_running()
        return types.SimpleNamespace(metadata=dict(self.kwargs.get("metadata") or {}))

    async def is_running(self) -> bool:
        return self.running

    async def set_timeout(self, timeout: int) -> None:
        _check_call(e2b.AsyncSandbox.set_timeout, {"timeout": timeout})
        self.ensure_running()
        self.timeouts.append(timeout)

    async def kill(self) -> bool:
        was = self.running
        self.running = False
        self.registry.pop(self.sandbox_id, None)
        shutil.rmtree(self.root, ignore_errors=True)
        return was


def install_fake_e2b(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the e2b provider talk to :class:`FakeAsyncSandbox` (real exception classes)."""
    fake = types.SimpleNamespace(**{name: getattr(e2b, name) for name in dir(e2b)})
    fake.AsyncSandbox = FakeAsyncSandbox
    monkeypatch.setattr("writer.sandbox.e2b._sdk", lambda: fake)


@pytest.fixture
async def fake_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    from writer.sandbox.e2b import E2BProvider

    install_fake_e2b(monkeypatch)
    provider = E2BProvider(home=tmp_path / "home", template="writgate-test")
    try:
        yield provider
    finally:
        await provider.aclose()


async def test_create_passes_the_translated_spec_to_the_sdk(
    fake_provider: Any, git_repo: Path
) -> None:
    network = NetworkPolicy(mode="restricted", allowlist=("pypi.org",))
    spec = SandboxSpec(
        repository_url=str(git_repo),
        ref="main",
        network=network,
        keep_warm_seconds=300,
        labels={"runId": "run_e2b"},
        idempotency_key="run_e2b",
    )
    sandbox = await fake_provider.create(spec)
    kwargs = FakeAsyncSandbox.created[-1]
    assert kwargs["template"] == "writgate-test"
    assert kwargs["network"] == {"allow_out": ["pypi.org"], "deny_out": ["0.0.0.0/0"]}
    assert kwargs["lifecycle"] == {"on_timeout": "pause", "auto_resume": True}
    assert kwargs["idempotency_key"] == "run_e2b"
    assert kwargs["metadata"]["runId"] == "run_e2b"
    assert kwargs["metadata"]["writgate.base"] == git(git_repo, "rev-parse", "HEAD").strip()
    assert await sandbox.head() == kwargs["metadata"]["writgate.base"]
    branch = await sandbox.exec(["git", "branch", "--show-current"])
    assert branch.stdout == "main\n"


async def test_another_process_re_attaches_by_id_with_base_and_limits(
    fake_provider: Any, git_repo: Path, tmp_path: Path
) -> None:
    from writer.sandbox import Limits
    from writer.sandbox.e2b import E2BProvider

    spec = SandboxSpec(
        repository_url=str(git_repo),
        ref="main",
        limits=Limits(wall_seconds=0.5),
        labels={"runId": "run_x"},
    )
    sandbox = await fake_provider.create(spec)
    await sandbox.write_file("turn1.txt", b"first turn\n")
    await sandbox.keep_alive(120)
    assert FakeAsyncSandbox.registry[sandbox.id].timeouts == [120]

    other = E2BProvider(home=tmp_path / "other-home")
    again = await other.attach(sandbox.id)
    assert again is not None and again is not sandbox
    assert again.base == sandbox.base
    assert await again.read_file("turn1.txt") == b"first turn\n"
    assert b"turn1.txt" in await again.diff()
    slow = await again.exec(["sleep", "30"])
    assert slow.timed_out  # the wall clock came back from the metadata
    assert await other.attach("fake-nope") is None
