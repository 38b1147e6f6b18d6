"""The local provider: bubblewrap sandboxes on this machine (the embedded default).

A sandbox is a directory ``<home>/sandboxes/<id>/`` holding the workspace (a checkout from the
repository's mirror, see :mod:`.workspace`), a private ``tmp`` and ``home``, and the generated
``/etc`` files; plus, per sandbox, a cgroup with its limits and, for ``restricted`` networking, an
egress proxy. Every ``exec`` is one ``bwrap`` process in fresh namespaces (:mod:`.bubblewrap`);
only the directories persist between execs. ``diff``, ``head`` and file access run *inside* the
sandbox too, so writgate never lets git or a path lookup on the host act on files an untrusted
process controlled (a crafted ``.git/config`` or a symlink to a host file).

Warm sessions: :meth:`LocalSandbox.keep_alive` arms an expiry task in the provider's event loop;
:meth:`LocalProvider.attach` finds a warm sandbox of this process again in microseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from writgate.ids import new_id

from .bridge import bridge_prefix, proxy_env
from .bubblewrap import DEFAULT_ENV, WORKDIR, BwrapCommand, bwrap_argv, populate_etc
from .egress import Allowlist, EgressProxy
from .errors import (
    SandboxError,
    SandboxFileNotFound,
    SandboxLost,
    SandboxSpecError,
    SandboxTimeout,
    SandboxUnavailable,
)
from .limits import Cgroup, cgroup_support, prlimit_prefix
from .protocol import ExecResult, OutputSink, SandboxEvent, SandboxEventSink, SandboxSpec
from .spawner import SpawnedProcess, Spawner
from .validation import check_env, validate_spec
from .workspace import DIFF_SCRIPT, MIRROR, Checkout, check_out, release

__all__ = ["LocalProvider", "LocalSandbox"]

log = logging.getLogger(__name__)

_BWRAP_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
_MAX_CAPTURE = 16 * 1024 * 1024  # bytes of stdout/stderr kept in an ExecResult, per stream
_TRUNCATED = b"\n[writgate: output truncated after 16 MiB; on_output saw all of it]\n"
_INTERNAL_SECONDS = 600.0  # file access, diff and head
_DRAIN_SECONDS = 5.0  # how long to wait for output after the sandbox was killed
_GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}


class LocalProvider:
    """Creates bubblewrap sandboxes under ``<home>/sandboxes`` (the embedded default)."""

    name = "local"

    def __init__(
        self,
        *,
        home: Path,
        on_event: SandboxEventSink | None = None,
        mirrors: Path | None = None,
        bwrap: str | None = None,
    ):
        self.root = Path(home) / "sandboxes"
        self.mirrors = Path(mirrors) if mirrors is not None else Path(home) / "mirrors"
        self.on_event = on_event
        found = bwrap or shutil.which("bwrap")
        if found is None:
            raise SandboxUnavailable(
                "bubblewrap is not installed (apt-get install bubblewrap; scripts/test does it)"
            )
        self.bwrap = found
        self._sandboxes: dict[str, LocalSandbox] = {}
        self._by_idempotency_key: dict[str, str] = {}
        self._creating: dict[str, asyncio.Lock] = {}
        self._pruned = False
        self._etc_dirs: dict[bool, Path] = {}
        self._etc_lock = asyncio.Lock()

    async def create(self, spec: SandboxSpec) -> LocalSandbox:
        """A new sandbox with ``spec.ref`` of ``spec.repository_url`` checked out.

        With ``spec.idempotency_key``, a second create with the same key returns the same warm
        sandbox while it lives.
        """
        validate_spec(spec)
        if not self._pruned:  # once per provider: what a crashed process left behind
            self._pruned = True
            removed = await self.prune_orphans()
            if removed:
                log.info("removed %d sandbox(es) left by a stopped process", len(removed))
        key = spec.idempotency_key
        if key is None:
            return await self._create(spec)
        lock = self._creating.setdefault(key, asyncio.Lock())
        async with lock:
            existing = self._sandboxes.get(self._by_idempotency_key.get(key, ""))
            if existing is not None and await existing.is_alive():
                return existing
            sandbox = await self._create(spec)
            self._by_idempotency_key[key] = sandbox.id
            return sandbox

    async def attach(self, sandbox_id: str) -> LocalSandbox | None:
        """The warm sandbox ``sandbox_id`` (its keep-warm window restarts), or ``None``."""
        sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is None or not await sandbox.is_alive():
            return None
        sandbox.rearm()
        return sandbox

    async def aclose(self) -> None:
        """Close every sandbox of this provider (at shutdown)."""
        for sandbox in list(self._sandboxes.values()):
            await sandbox.close()

    async def prune_orphans(self) -> list[str]:
        """Remove the sandboxes whose owning process is gone (after a crash); their ids.

        Several writgate processes may share one home: a sandbox is only removed when the process
        that created it (pid and start time, recorded in ``<sandbox>/owner``) no longer runs.
        """
        removed: list[str] = []
        directories = sorted(self.root.iterdir()) if self.root.is_dir() else []
        for directory in directories:
            sandbox_id = directory.name.lstrip(".")
            if sandbox_id in self._sandboxes or _owner_alive(directory / "owner"):
                continue
            await _remove_leftovers(directory, sandbox_id)
            removed.append(sandbox_id)
        await asyncio.to_thread(_remove_stale_etc, self.root.parent / "sandbox-etc")
        await asyncio.to_thread(Cgroup.sweep_empty, "writgate-sbx_", older_than=300)
        return removed

    async def _etc_for(self, host_network: bool) -> Path:
        """The read-only ``/etc`` shared by this process's sandboxes (built on first use)."""
        async with self._etc_lock:
            if host_network not in self._etc_dirs:
                base = self.root.parent / "sandbox-etc"
                name = f"{'open' if host_network else 'closed'}-{_owner_stamp(os.getpid())}"
                target = base / name.strip().replace(" ", "-")
                if not target.is_dir():
                    staging = base / f".{target.name}.{new_id('tmp')}"
                    await asyncio.to_thread(populate_etc, staging, resolv_conf=host_network)
                    try:
                        staging.rename(target)
                    except OSError:  # built meanwhile by another provider of this process
                        await asyncio.to_thread(shutil.rmtree, staging, True)
                self._etc_dirs[host_network] = target
            return self._etc_dirs[host_network]

    async def _create(self, spec: SandboxSpec) -> LocalSandbox:
        limited = spec.limits.processes is not None or spec.limits.memory_mb is not None
        if limited and os.geteuid() == 0 and not cgroup_support():
            # As root the sandbox keeps kernel uid 0, for which RLIMIT_NPROC is ignored.
            raise SandboxUnavailable(
                "cannot enforce the sandbox process/memory limits: running as root needs "
                "writable cgroups (pids and memory controllers)"
            )
        if spec.network.mode == "restricted" and shutil.which("python3", path="/usr/bin") is None:
            raise SandboxUnavailable("restricted networking needs /usr/bin/python3 for its bridge")
        sandbox_id = new_id("sbx")
        directory = self.root / sandbox_id
        sandbox = LocalSandbox(provider=self, sandbox_id=sandbox_id, spec=spec, directory=directory)
        try:
            await sandbox.start()
        except BaseException:
            await sandbox.close(emit=False)
            raise
        self._sandboxes[sandbox_id] = sandbox
        return sandbox

    def _forget(self, sandbox_id: str) -> None:
        self._sandboxes.pop(sandbox_id, None)

    async def _emit(self, event: SandboxEvent) -> None:
        if self.on_event is None:
            return
        try:
            await self.on_event(event)
        except Exception:
            log.exception("sandbox event callback failed for %s", event.type)


class LocalSandbox:
    """One bubblewrap sandbox; see the module docstring."""

    provider = "local"
    workdir = WORKDIR

    def __init__(
        self, *, provider: LocalProvider, sandbox_id: str, spec: SandboxSpec, directory: Path
    ):
        self.id = sandbox_id
        self.spec = spec
        self.directory = directory
        self._provider = provider
        self._checkout: Checkout | None = None
        self._etc = Path("/nonexistent")
        self._cgroup: Cgroup | None = None
        self._proxy: EgressProxy | None = None
        self._socket_dir: Path | None = None
        self._processes: set[_Process] = set()
        self._busy = 0
        self._spawner: Spawner | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._closing: asyncio.Task[None] | None = None
        self._expires_at: float | None = None
        self._keep_warm_seconds = spec.keep_warm_seconds
        self._expiry: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Check the workspace out and set up limits and networking."""
        # The directory appears with its owner already recorded, so a concurrent prune by another
        # process never mistakes a sandbox being created for an orphan.
        staging = self.directory.with_name(f".{self.id}")
        staging.mkdir(parents=True)
        (staging / "owner").write_text(_owner_stamp(os.getpid()))
        staging.rename(self.directory)
        for name in ("tmp", "home"):
            (self.directory / name).mkdir()
        os.chmod(self.directory / "tmp", 0o1777)
        self._etc = await self._provider._etc_for(self.spec.network.mode == "open")
        self._checkout = await check_out(
            mirrors=self._provider.mirrors,
            url=self.spec.repository_url,
            ref=self.spec.ref,
            workspace=self.directory / "workspace",
            sandbox_id=self.id,
        )
        if cgroup_support():
            self._cgroup = await asyncio.to_thread(Cgroup, f"writgate-{self.id}", self.spec.limits)
            self._spawner = Spawner()
            await self._spawner.start(preexec_fn=self._join_cgroup())
        if self.spec.network.mode == "restricted":
            # A Unix socket path must stay under 108 bytes: a short private directory.
            self._socket_dir = Path(tempfile.mkdtemp(prefix="wgx-"))
            (self.directory / "socket-dir").write_text(str(self._socket_dir))
            self._proxy = EgressProxy(
                socket_path=self._socket_dir / "egress.sock",
                allowlist=Allowlist(self.spec.network.allowlist),
                on_egress=self._on_egress,
            )
            await self._proxy.start()

    async def close(self, *, emit: bool = False, reason: str = "closed") -> None:
        """Stop every process, the proxy and the cgroup, and delete the sandbox directory.

        The teardown runs in its own task: a caller that is cancelled meanwhile does not leave
        half a sandbox behind, and a second ``close`` (or the provider's ``aclose``) waits for it.
        """
        if self._closing is None:
            self._closed = True
            self._closing = asyncio.get_running_loop().create_task(self._teardown(emit, reason))
        await asyncio.shield(self._closing)

    async def _teardown(self, emit: bool, reason: str) -> None:
        try:
            if emit:
                await self._emit(f"sandbox.{reason}", {})
            if self._expiry is not None:
                self._expiry.cancel()
            for process in list(self._processes):
                _kill(process)
            if self._spawner is not None:
                await self._spawner.close()
            if self._cgroup is not None:
                await asyncio.to_thread(self._cgroup.kill_all)
            if self._proxy is not None:
                await self._proxy.close()
            if self._socket_dir is not None:
                shutil.rmtree(self._socket_dir, ignore_errors=True)
            if self._checkout is not None:
                await release(self._checkout.mirror, self.id)
            await asyncio.to_thread(shutil.rmtree, self.directory, True)
            if self._cgroup is not None:
                await _remove_cgroup(self._cgroup)
        finally:
            self._provider._forget(self.id)

    async def is_alive(self) -> bool:
        """Whether the sandbox is open and its workspace still exists."""
        return not self._closed and (self.directory / "workspace").is_dir()

    async def keep_alive(self, seconds: float) -> None:
        """Keep the sandbox for ``seconds`` more; then it is closed (``sandbox.expired``).

        A command still running at that time delays the expiry until it ends.
        """
        self._ensure_open()
        if not seconds >= 0:
            raise SandboxSpecError("must be zero or a positive number", field="seconds")
        self._keep_warm_seconds = seconds
        self._expires_at = time.monotonic() + seconds
        if self._expiry is None or self._expiry.done():
            self._expiry = asyncio.get_running_loop().create_task(self._expire())

    def rearm(self) -> None:
        """Restart the keep-warm window (on attach), if one was set."""
        if self._expires_at is not None:
            self._expires_at = time.monotonic() + self._keep_warm_seconds

    async def _expire(self) -> None:
        while not self._closed and self._expires_at is not None:
            remaining = self._expires_at - time.monotonic()
            if remaining > 0:
                await asyncio.sleep(remaining)
                continue
            if not self._idle.is_set():
                await self._idle.wait()
                continue
            await self.close(emit=True, reason="expired")
            return

    # ---------------------------------------------------------------- commands

    async def exec(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        on_output: OutputSink | None = None,
        stdin: bytes | None = None,
    ) -> ExecResult:
        """Run ``argv`` in the sandbox; see :meth:`writer.sandbox.protocol.Sandbox.exec`."""
        if not argv or not all(isinstance(arg, str) and "\0" not in arg for arg in argv):
            raise SandboxSpecError("must be a non-empty list of strings", field="argv")
        if env:
            check_env(env, field="env")
        if cwd is not None and (not cwd or "\0" in cwd):
            raise SandboxSpecError(f"invalid working directory {cwd!r}", field="cwd")
        code, out, err, timed_out, duration = await self._run(
            argv, env=env, cwd=cwd, timeout=timeout, on_output=on_output, stdin=stdin
        )
        return ExecResult(
            exit_code=code,
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            timed_out=timed_out,
            duration_seconds=duration,
        )

    async def read_file(self, path: str) -> bytes:
        """The bytes of ``path`` (read inside the sandbox, so symlinks cannot reach the host)."""
        _check_path(path)
        code, out, err, timed_out, _ = await self._run(
            [
                "sh",
                "-c",
                'test -f "$1" && exec cat -- "$1"; echo "missing: $1" >&2; exit 66',
                "sh",
                path,
            ],
            capture_limit=None,
            internal=True,
        )
        if timed_out:
            raise SandboxTimeout(f"reading {path} took too long", path=path)
        if code == 66:
            raise SandboxFileNotFound(f"no such file in the sandbox: {path}", path=path)
        if code != 0:
            raise SandboxError(f"cannot read {path}: {_last_line(err)}", path=path)
        return out

    async def write_file(self, path: str, data: bytes) -> None:
        """Create or replace ``path`` (parent directories are created)."""
        _check_path(path)
        code, _, err, timed_out, _ = await self._run(
            ["sh", "-c", 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1"', "sh", path],
            stdin=data,
            internal=True,
        )
        if timed_out:
            raise SandboxTimeout(f"writing {path} took too long", path=path)
        if code != 0:
            raise SandboxError(f"cannot write {path}: {_last_line(err)}", path=path)

    async def diff(self, base: str | None = None) -> bytes:
        """``git diff --binary`` of the workspace (untracked files included) against ``base``."""
        self._ensure_open()
        assert self._checkout is not None
        base = base or self._checkout.base
        if base.startswith("-") or not base.strip() or "\0" in base:
            raise SandboxSpecError(f"invalid base {base!r}", field="base")
        code, out, err, timed_out, _ = await self._run(
            ["sh", "-c", DIFF_SCRIPT, "sh", base],
            env=_GIT_ENV,
            capture_limit=None,
            internal=True,
        )
        if timed_out:
            raise SandboxTimeout("git diff took too long in the sandbox")
        if code != 0:
            raise SandboxError(f"git diff failed in the sandbox: {_last_line(err)}")
        return out

    async def head(self) -> str:
        """The commit the workspace is at."""
        code, out, err, timed_out, _ = await self._run(
            ["git", "rev-parse", "HEAD"], env=_GIT_ENV, internal=True
        )
        if timed_out:
            raise SandboxTimeout("git rev-parse took too long in the sandbox")
        if code != 0:
            raise SandboxError(f"git rev-parse failed in the sandbox: {_last_line(err)}")
        return out.decode().strip()

    @property
    def base(self) -> str:
        """The commit the workspace was created at."""
        assert self._checkout is not None
        return self._checkout.base

    # ---------------------------------------------------------------- internals

    def _ensure_open(self) -> None:
        if self._closed:
            raise SandboxLost(f"sandbox {self.id} is closed", sandbox_id=self.id)

    async def _check_alive(self) -> None:
        self._ensure_open()
        if not (self.directory / "workspace").is_dir():
            await self.close(emit=True, reason="lost")
            raise SandboxLost(f"sandbox {self.id} lost its workspace", sandbox_id=self.id)

    def _command(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None,
        cwd: str | None,
        *,
        internal: bool = False,
    ) -> list[str]:
        """The bwrap command line; ``internal`` commands (git, file access) need no network."""
        spec = self.spec
        full_env = dict(DEFAULT_ENV)
        if spec.network.mode == "restricted":
            full_env.update(proxy_env())
        full_env.update(spec.env)
        full_env.update(env or {})
        inner = prlimit_prefix(spec.limits, with_process_limits=self._cgroup is None)
        if spec.network.mode == "restricted" and not internal:
            inner += bridge_prefix()
        if cwd is None:
            cwd = WORKDIR
        elif not cwd.startswith("/"):
            cwd = f"{WORKDIR}/{cwd}"
        assert self._checkout is not None
        command = BwrapCommand(
            argv=[*inner, *argv],
            workspace=self._checkout.workspace,
            tmp=self.directory / "tmp",
            home=self.directory / "home",
            etc=self._etc,
            env=full_env,
            network=spec.network.mode,
            cwd=cwd,
            read_only={self._checkout.mirror: MIRROR},
            egress_socket=self._proxy.socket_path if self._proxy is not None else None,
            bwrap=self._provider.bwrap,
        )
        return bwrap_argv(command)

    async def _run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        on_output: OutputSink | None = None,
        stdin: bytes | None = None,
        capture_limit: int | None = _MAX_CAPTURE,
        internal: bool = False,
    ) -> tuple[int, bytes, bytes, bool, float]:
        await self._check_alive()
        deadline: float | None
        if internal:  # writgate's own git and file operations are not the agent's wall clock
            deadline = timeout or _INTERNAL_SECONDS
        else:
            limits = [t for t in (timeout, self.spec.limits.wall_seconds) if t is not None]
            deadline = min(limits) if limits else None
        command = self._command(argv, env, cwd, internal=internal)
        # Busy from now on: an expiry due meanwhile waits until this command has ended.
        self._busy += 1
        self._idle.clear()
        try:
            started = time.monotonic()
            try:
                process = await self._start(command, with_stdin=stdin is not None)
            except SandboxError as exc:
                if self._closed:
                    raise SandboxLost(f"sandbox {self.id} was closed", sandbox_id=self.id) from exc
                raise
            code, out, err, timed_out = await self._supervise(
                process, deadline, on_output, stdin, capture_limit
            )
            return code, out, err, timed_out, time.monotonic() - started
        finally:
            self._busy -= 1
            if self._busy == 0:
                self._idle.set()

    async def _supervise(
        self,
        process: _Process,
        deadline: float | None,
        on_output: OutputSink | None,
        stdin: bytes | None,
        capture_limit: int | None,
    ) -> tuple[int, bytes, bytes, bool]:
        """Stream the output of a started process, enforce its deadline, reap it."""
        self._processes.add(process)
        timed_out = False
        assert process.stdout is not None and process.stderr is not None
        out = _Capture("stdout", on_output, capture_limit)
        err = _Capture("stderr", on_output, _MAX_CAPTURE)
        readers = asyncio.gather(
            out.consume(process.stdout), err.consume(process.stderr), _feed(process, stdin)
        )
        try:
            # asyncio.wait, never wait_for: on Python 3.11, wait_for returns the result of an
            # awaitable that completes as the task is cancelled, and the cancellation is lost.
            if not (await asyncio.wait({readers}, timeout=deadline))[0]:
                timed_out = True
                _kill(process)
                await asyncio.wait({readers}, timeout=_DRAIN_SECONDS)
            if readers.done():
                readers.result()  # a failing output sink fails the exec
            lost = SandboxLost(f"sandbox {self.id} was closed while the command ran")
            try:
                code = await process.wait()
            except SandboxError as exc:  # the spawner went away with the sandbox
                if self._closed:
                    raise lost from exc
                raise
            if self._closed:
                raise lost
        finally:
            try:
                if process.returncode is None:
                    _kill(process)
                if not readers.done():
                    readers.cancel()
                    # Bounded; a cancellation of this task meanwhile is not swallowed: it
                    # propagates once the pipes are closed below.
                    await asyncio.wait({readers}, timeout=_DRAIN_SECONDS)
                if readers.done() and not readers.cancelled():
                    readers.exception()  # retrieved (raised above when it mattered)
            finally:
                if isinstance(process, SpawnedProcess):
                    process.close_pipes()
                self._processes.discard(process)
        return code, out.data(), err.data(), timed_out

    async def _start(self, command: list[str], *, with_stdin: bool) -> _Process:
        """Start ``bwrap …``: through the spawner inside the cgroup, or directly."""
        if self._spawner is not None:
            if not self._spawner.alive:  # it died (OOM-killed with a hog?): start another
                await self._spawner.close()
                self._spawner = Spawner()
                await self._spawner.start(preexec_fn=self._join_cgroup())
            # bwrap's own PID 1 inside the sandbox keeps bwrap's environment (its
            # /proc/1/environ is readable there): it must not inherit writgate's.
            return await self._spawner.spawn(command, _BWRAP_ENV, with_stdin=with_stdin)
        try:
            return await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE if with_stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                preexec_fn=self._join_cgroup(),
                env=_BWRAP_ENV,
            )
        except OSError as exc:
            raise SandboxError(f"cannot start the sandbox process: {exc}") from exc

    def _join_cgroup(self) -> Callable[[], None] | None:
        return self._cgroup.join_function() if self._cgroup is not None else None

    async def _on_egress(self, host: str, port: int, allowed: bool) -> None:
        await self._emit("sandbox.egress", {"host": host, "port": port, "allowed": allowed})

    async def _emit(self, type: str, data: dict[str, Any]) -> None:
        await self._provider._emit(
            SandboxEvent(
                type=type,
                sandbox_id=self.id,
                provider=self.provider,
                labels=dict(self.spec.labels),
                data=data,
            )
        )

    def __repr__(self) -> str:
        return f"<LocalSandbox {self.id} network={self.spec.network.mode}>"


class _Capture:
    """Collects one output stream and hands complete lines to the sink as they come.

    ``limit`` bounds what is kept (``None``: everything, for diffs and file reads); what is cut
    is marked, never dropped silently.
    """

    def __init__(self, stream: str, sink: OutputSink | None, limit: int | None):
        self.stream = stream
        self.sink = sink
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False
        self.pending = b""

    async def consume(self, reader: asyncio.StreamReader) -> None:
        while chunk := await reader.read(65536):
            if self.limit is None or self.size + len(chunk) <= self.limit:
                self.chunks.append(chunk)
                self.size += len(chunk)
            elif not self.truncated:
                self.chunks.append(chunk[: self.limit - self.size])
                self.size = self.limit
                self.truncated = True
            if self.sink is not None:
                lines = (self.pending + chunk).split(b"\n")
                self.pending = lines.pop()
                for line in lines:
                    await self.sink(self.stream, line.decode("utf-8", "replace"))
        if self.sink is not None and self.pending:
            await self.sink(self.stream, self.pending.decode("utf-8", "replace"))
            self.pending = b""

    def data(self) -> bytes:
        return b"".join(self.chunks) + (_TRUNCATED if self.truncated else b"")


_Process = asyncio.subprocess.Process | SpawnedProcess


async def _feed(process: _Process, data: bytes | None) -> None:
    if data is None or process.stdin is None:
        return
    try:
        process.stdin.write(data)
        await process.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        process.stdin.close()


def _kill(process: _Process) -> None:
    """SIGKILL the bwrap process group; --die-with-parent then takes the PID namespace down."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()


async def _remove_cgroup(cgroup: Cgroup) -> None:
    """Remove the cgroup once its last process is gone (exit is asynchronous after SIGKILL,
    and a killed process still pins the cgroup until it is reaped)."""
    deadline = time.monotonic() + 10
    while True:
        if cgroup.pids():
            await asyncio.to_thread(cgroup.kill_all)
        else:
            cgroup.remove()
            if not any(directory.exists() for directory in cgroup.directories):
                return
        if time.monotonic() > deadline:
            log.warning("could not remove the sandbox cgroup %s", cgroup.directories[0].name)
            return
        await asyncio.sleep(0.02)


def _process_start(pid: int) -> str | None:
    """The start time of ``pid`` (clock ticks since boot), which tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _owner_stamp(pid: int) -> str:
    return f"{pid} {_process_start(pid)}\n"


def _owner_alive(owner: Path) -> bool:
    try:
        pid_text, start = owner.read_text().split()
    except (OSError, ValueError):
        return False
    return _process_start(int(pid_text)) == start


def _remove_stale_etc(base: Path) -> None:
    """Remove the ``/etc`` templates (``<variant>-<pid>-<start>``) of stopped processes."""
    if not base.is_dir():
        return
    for directory in base.iterdir():
        parts = directory.name.lstrip(".").split(".")[0].split("-")
        if len(parts) == 3 and parts[1].isdigit() and _process_start(int(parts[1])) == parts[2]:
            continue
        shutil.rmtree(directory, ignore_errors=True)


async def _remove_leftovers(directory: Path, sandbox_id: str) -> None:
    """Everything a crashed process left of one sandbox: processes, cgroup, socket, mirror ref."""
    cgroup = Cgroup.existing(f"writgate-{sandbox_id}")
    if cgroup is not None:
        await asyncio.to_thread(cgroup.kill_all)
        await _remove_cgroup(cgroup)
    with contextlib.suppress(OSError):
        socket_dir = Path((directory / "socket-dir").read_text().strip())
        if socket_dir.parent == Path(tempfile.gettempdir()) and socket_dir.name.startswith("wgx-"):
            shutil.rmtree(socket_dir, ignore_errors=True)
    mirror = directory / "mirror.git"
    if mirror.is_symlink() and mirror.resolve().is_dir():
        await release(mirror.resolve(), sandbox_id)
    await asyncio.to_thread(shutil.rmtree, directory, True)


def _check_path(path: str) -> None:
    if not path or "\0" in path:
        raise SandboxSpecError(f"invalid path {path!r}", field="path")


def _last_line(data: bytes) -> str:
    lines = data.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else "no output"
