"""The e2b provider: the sandbox protocol on E2B cloud sandboxes (``pip install 'writgate[e2b]'``).

How a :class:`SandboxSpec` maps onto E2B (:func:`sandbox_create_args`, a pure function):

- network ``none`` -> ``network={"deny_out": ["0.0.0.0/0"]}``; ``restricted`` ->
  ``network={"allow_out": [allowlist…], "deny_out": ["0.0.0.0/0"]}`` (everything else denied);
  ``open`` -> no network restriction;
- ``keep_warm_seconds > 0`` -> ``lifecycle={"on_timeout": "pause", "auto_resume": True}``: a warm
  sandbox pauses when its timeout passes instead of dying, and wakes on the next use — also from
  another writgate process, which finds it again by id (:meth:`E2BProvider.attach`);
- labels (run id, tags…) -> ``metadata``, plus the base commit and workspace path writgate needs
  to re-attach; ``idempotency_key`` -> ``idempotency_key``;
- limits: ``wall_seconds`` is each command's timeout; processes, memory and CPU time are rlimits
  set with ``prlimit`` in front of each command (the VM size itself is the template's).

The workspace is built without giving the sandbox any credential or network: writgate fetches the
repository into its host mirror, uploads a git bundle of the ref through the E2B files API, and the
sandbox clones from that file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from writgate.errors import MissingExtraError
from writgate.git import GitError, run_git

from .bubblewrap import DEFAULT_ENV
from .errors import (
    SandboxError,
    SandboxFileNotFound,
    SandboxLost,
    SandboxSetupError,
    SandboxSpecError,
    SandboxTimeout,
    SandboxUnavailable,
)
from .limits import prlimit_prefix
from .protocol import ExecResult, Limits, OutputSink, SandboxEvent, SandboxEventSink, SandboxSpec
from .validation import check_env, validate_spec
from .workspace import DIFF_SCRIPT, fetch_ref

__all__ = ["E2BProvider", "E2BSandbox", "sandbox_create_args"]

log = logging.getLogger(__name__)

ALL_TRAFFIC = "0.0.0.0/0"
WORKDIR = "/home/user/workspace"
_BUNDLE = "/tmp/writgate-workspace.bundle"
_INTERNAL_SECONDS = 600.0  # checkout, diff and head
_DEFAULT_LIFETIME = 3600  # seconds an E2B sandbox lives before its first keep_alive
_META_BASE = "writgate.base"
_META_WORKDIR = "writgate.workdir"
_META_LIMITS = "writgate.limits"
_GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


def _sdk() -> Any:
    try:
        import e2b
    except ImportError as exc:
        raise MissingExtraError("e2b", "e2b") from exc
    return e2b


def sandbox_create_args(
    spec: SandboxSpec,
    *,
    template: str | None = None,
    timeout_seconds: int = _DEFAULT_LIFETIME,
    base: str | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``e2b.AsyncSandbox.create`` for ``spec`` (no SDK needed)."""
    validate_spec(spec)
    args: dict[str, Any] = {
        "timeout": max(1, int(timeout_seconds)),
        "metadata": _metadata(spec, base),
        "envs": dict(spec.env),
    }
    if template is not None:
        args["template"] = template
    network = spec.network
    if network.mode == "none":
        args["network"] = {"deny_out": [ALL_TRAFFIC]}
    elif network.mode == "restricted":
        for index, entry in enumerate(network.allowlist):
            if ":" in entry.strip("[]") and not entry.startswith("["):
                raise SandboxSpecError(
                    "e2b allowlists take hosts, not ports", field=f"network.allowlist[{index}]"
                )
        args["network"] = {
            "allow_out": [entry.strip().lower() for entry in network.allowlist],
            "deny_out": [ALL_TRAFFIC],
        }
    if spec.keep_warm_seconds > 0:
        args["lifecycle"] = {"on_timeout": "pause", "auto_resume": True}
    else:
        args["lifecycle"] = {"on_timeout": "kill"}
    if spec.idempotency_key is not None:
        args["idempotency_key"] = spec.idempotency_key
    return args


def _metadata(spec: SandboxSpec, base: str | None) -> dict[str, str]:
    metadata = {str(key): str(value) for key, value in spec.labels.items()}
    metadata[_META_WORKDIR] = WORKDIR
    limits = spec.limits
    metadata[_META_LIMITS] = ",".join(
        "" if value is None else str(value)
        for value in (limits.cpu_seconds, limits.memory_mb, limits.processes, limits.wall_seconds)
    )
    if base is not None:
        metadata[_META_BASE] = base
    return metadata


def _limits_from(metadata: Mapping[str, str]) -> Limits:
    parts = metadata.get(_META_LIMITS, "").split(",")
    if len(parts) != 4:
        return Limits()
    cpu, memory, processes, wall = (part or None for part in parts)
    return Limits(
        cpu_seconds=int(cpu) if cpu else None,
        memory_mb=int(memory) if memory else None,
        processes=int(processes) if processes else None,
        wall_seconds=float(wall) if wall else None,
    )


@contextlib.asynccontextmanager
async def _translated(action: str, sandbox_id: str | None = None) -> AsyncIterator[None]:
    """Turn E2B SDK exceptions into sandbox errors (the one place that knows them)."""
    e2b = _sdk()
    try:
        yield
    except (e2b.SandboxNotFoundException, e2b.SandboxNotRunningException) as exc:
        raise SandboxLost(f"{action}: the E2B sandbox is gone", sandbox_id=sandbox_id) from exc
    except e2b.AuthenticationException as exc:
        raise SandboxUnavailable(f"{action}: E2B rejected the API key") from exc
    except e2b.TimeoutException as exc:
        raise SandboxTimeout(f"{action}: E2B did not answer in time") from exc
    except e2b.SandboxException as exc:
        raise SandboxError(f"{action}: {type(exc).__name__}: {exc}") from exc


class E2BProvider:
    """Creates E2B sandboxes; finds warm (running or paused) ones again by id."""

    name = "e2b"

    def __init__(
        self,
        *,
        home: Path,
        on_event: SandboxEventSink | None = None,
        template: str | None = None,
        api_key: str | None = None,
        lifetime_seconds: int = _DEFAULT_LIFETIME,
        mirrors: Path | None = None,
    ):
        self._e2b = _sdk()
        self.home = Path(home)
        self.mirrors = Path(mirrors) if mirrors is not None else self.home / "mirrors"
        self.on_event = on_event
        self.template = template
        self.lifetime_seconds = lifetime_seconds
        self._api: dict[str, Any] = {"api_key": api_key} if api_key else {}
        self._sandboxes: dict[str, E2BSandbox] = {}

    async def create(self, spec: SandboxSpec) -> E2BSandbox:
        """A new E2B sandbox with ``spec.ref`` checked out at :data:`WORKDIR`."""
        validate_spec(spec)
        mirror_path, base, branch = await fetch_ref(self.mirrors, spec.repository_url, spec.ref)
        args = sandbox_create_args(
            spec, template=self.template, timeout_seconds=self.lifetime_seconds, base=base
        )
        async with _translated("create the E2B sandbox"):
            remote = await self._e2b.AsyncSandbox.create(**args, **self._api)
        known = self._sandboxes.get(remote.sandbox_id)
        if known is not None:  # the idempotency key named a sandbox this process already has
            return known
        sandbox = E2BSandbox(
            provider=self,
            remote=remote,
            base=base,
            limits=spec.limits,
            labels=spec.labels,
            env=spec.env,
        )
        try:
            await sandbox.check_out(mirror_path, base, branch)
        except BaseException:
            await sandbox.close()
            raise
        self._sandboxes[sandbox.id] = sandbox
        return sandbox

    async def attach(self, sandbox_id: str) -> E2BSandbox | None:
        """The sandbox ``sandbox_id`` (resumed if it was paused), or ``None`` if it is gone."""
        known = self._sandboxes.get(sandbox_id)
        if known is not None and await known.is_alive():
            known.rearm()
            return known
        try:
            async with _translated("attach to the E2B sandbox", sandbox_id):
                remote = await self._e2b.AsyncSandbox.connect(sandbox_id, **self._api)
                info = await remote.get_info()
        except SandboxLost:
            return None
        metadata = dict(getattr(info, "metadata", None) or {})
        base = metadata.get(_META_BASE)
        if base is None:  # not a writgate sandbox
            return None
        labels = {k: v for k, v in metadata.items() if not k.startswith("writgate.")}
        sandbox = E2BSandbox(
            provider=self,
            remote=remote,
            base=base,
            limits=_limits_from(metadata),
            labels=labels,
            env={},
        )
        self._sandboxes[sandbox_id] = sandbox
        return sandbox

    async def aclose(self) -> None:
        """Kill every sandbox this provider created or attached to."""
        for sandbox in list(self._sandboxes.values()):
            await sandbox.close()

    def _forget(self, sandbox_id: str) -> None:
        self._sandboxes.pop(sandbox_id, None)

    async def _emit(self, event: SandboxEvent) -> None:
        if self.on_event is None:
            return
        try:
            await self.on_event(event)
        except Exception:
            log.exception("sandbox event callback failed for %s", event.type)


class E2BSandbox:
    """One E2B sandbox seen through the sandbox protocol."""

    provider = "e2b"
    workdir = WORKDIR

    def __init__(
        self,
        *,
        provider: E2BProvider,
        remote: Any,
        base: str,
        limits: Limits,
        labels: Mapping[str, str],
        env: Mapping[str, str],
    ):
        self.id: str = remote.sandbox_id
        self.base = base
        self._provider = provider
        self._remote = remote
        self._limits = limits
        self._labels = dict(labels)
        self._env = dict(env)
        self._closed = False
        self._expires_at: float | None = None
        self._keep_warm_seconds = 0.0
        self._expiry: asyncio.Task[None] | None = None
        self._running = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def check_out(self, mirror_path: Path, base: str, branch: str | None) -> None:
        """Upload a bundle of ``base`` from the host mirror and clone it in the sandbox."""
        bundle_ref = f"refs/writgate/bundles/{self.id}"
        with tempfile.TemporaryDirectory(prefix="wg-e2b-") as scratch:
            bundle = Path(scratch) / "workspace.bundle"
            try:
                await run_git(["update-ref", bundle_ref, base], cwd=mirror_path)
                await run_git(["bundle", "create", str(bundle), bundle_ref], cwd=mirror_path)
            except GitError as exc:
                raise SandboxSetupError(f"cannot bundle the repository: {exc}") from exc
            finally:
                await run_git(["update-ref", "-d", bundle_ref], cwd=mirror_path, check=False)
            async with _translated("upload the workspace", self.id):
                await self._remote.files.write(_BUNDLE, bundle.read_bytes())
        # An idempotent create may hand back a sandbox that already has its workspace.
        script = """set -e
if [ -d "$1/.git" ]; then rm -f "$2"; exit 0; fi
git init -q "$1"
cd "$1"
git fetch -q "$2" "$3:refs/remotes/origin/base"
if [ -n "$5" ]; then git checkout -q -B "$5" "$4"; else git checkout -q --detach "$4"; fi
git config user.name "writgate sandbox"
git config user.email sandbox@writgate.invalid
rm -f "$2"
"""
        result = await self._run_shell(
            ["sh", "-c", script, "sh", WORKDIR, _BUNDLE, bundle_ref, base, branch or ""],
            cwd="/",
            internal=True,
        )
        if result.exit_code != 0:
            raise SandboxSetupError(f"cannot check the workspace out: {result.stderr.strip()}")

    # ------------------------------------------------------------------ lifecycle

    async def is_alive(self) -> bool:
        """Whether the E2B sandbox is still running (a paused one resumes on use)."""
        if self._closed:
            return False
        try:
            async with _translated("check the E2B sandbox", self.id):
                return bool(await self._remote.is_running())
        except SandboxError:
            return False

    async def keep_alive(self, seconds: float) -> None:
        """Keep the sandbox for ``seconds``: E2B pauses it when idle, writgate kills it then."""
        self._ensure_open()
        if not seconds >= 0:
            raise SandboxSpecError("must be zero or a positive number", field="seconds")
        self._keep_warm_seconds = seconds
        self._expires_at = time.monotonic() + seconds
        async with _translated("extend the E2B sandbox", self.id):
            await self._remote.set_timeout(max(1, int(seconds)))
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
            await self._close(expired=True)
            return

    async def close(self) -> None:
        """Kill the E2B sandbox; closing twice is harmless."""
        await self._close(expired=False)

    async def _close(self, *, expired: bool) -> None:
        if self._closed:
            return
        self._closed = True
        self._provider._forget(self.id)
        if expired:
            await self._provider._emit(
                SandboxEvent(
                    type="sandbox.expired",
                    sandbox_id=self.id,
                    provider=self.provider,
                    labels=self._labels,
                )
            )
        if self._expiry is not None and self._expiry is not asyncio.current_task():
            self._expiry.cancel()
        try:
            async with _translated("kill the E2B sandbox", self.id):
                await self._remote.kill()
        except SandboxError as exc:
            log.warning("closing E2B sandbox %s: %s", self.id, exc)

    def _ensure_open(self) -> None:
        if self._closed:
            raise SandboxLost(f"sandbox {self.id} is closed", sandbox_id=self.id)

    # ------------------------------------------------------------------ commands

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
        self._ensure_open()
        if not argv or not all(isinstance(arg, str) and "\0" not in arg for arg in argv):
            raise SandboxSpecError("must be a non-empty list of strings", field="argv")
        if env:
            check_env(env, field="env")
        command = [*prlimit_prefix(self._limits, with_process_limits=True), *argv]
        return await self._run_shell(
            command, env=env, cwd=cwd, timeout=timeout, on_output=on_output, stdin=stdin
        )  # the agent's command: bound by the sandbox's wall clock

    async def _run_shell(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        on_output: OutputSink | None = None,
        stdin: bytes | None = None,
        internal: bool = False,
    ) -> ExecResult:
        e2b = _sdk()
        deadline: float | None
        if internal:  # writgate's own git and file operations are not the agent's wall clock
            deadline = timeout or _INTERNAL_SECONDS
        else:
            limits = [t for t in (timeout, self._limits.wall_seconds) if t is not None]
            deadline = min(limits) if limits else None
        line = shlex.join(argv)
        if stdin is not None:
            path = f"/tmp/writgate-stdin-{time.monotonic_ns()}"
            async with _translated("upload stdin", self.id):
                await self._remote.files.write(path, stdin)
            line = f"{line} < {shlex.quote(path)}"
        if cwd is None:
            cwd = WORKDIR
        elif not cwd.startswith("/"):
            cwd = f"{WORKDIR}/{cwd}"
        out = _Lines("stdout", on_output)
        err = _Lines("stderr", on_output)
        full_env = {**DEFAULT_ENV, "HOME": "/home/user", **self._env, **(env or {})}
        started = time.monotonic()
        timed_out = False
        self._running += 1
        self._idle.clear()
        try:
            async with _translated("run a command", self.id):
                try:
                    result = await self._remote.commands.run(
                        line,
                        envs=full_env,
                        cwd=cwd,
                        on_stdout=out.feed,
                        on_stderr=err.feed,
                        timeout=deadline if deadline is not None else 0,
                    )
                    code = int(result.exit_code)
                except e2b.CommandExitException as exc:
                    code = int(exc.exit_code)
                except e2b.TimeoutException:
                    timed_out, code = True, -9
        finally:
            self._running -= 1
            if self._running == 0:
                self._idle.set()
        await out.flush()
        await err.flush()
        return ExecResult(
            exit_code=code,
            stdout=out.text(),
            stderr=err.text(),
            timed_out=timed_out,
            duration_seconds=time.monotonic() - started,
        )

    async def read_file(self, path: str) -> bytes:
        """The bytes of ``path`` (relative to the workspace, or absolute)."""
        self._ensure_open()
        e2b = _sdk()
        try:
            async with _translated("read a file", self.id):
                data = await self._remote.files.read(self._path(path), format="bytes")
        except SandboxError as exc:
            if isinstance(exc.__cause__, e2b.FileNotFoundException | e2b.NotFoundException):
                raise SandboxFileNotFound(f"no such file in the sandbox: {path}") from exc
            raise
        return bytes(data)

    async def write_file(self, path: str, data: bytes) -> None:
        """Create or replace ``path`` (parent directories are created)."""
        self._ensure_open()
        async with _translated("write a file", self.id):
            await self._remote.files.write(self._path(path), data)

    async def diff(self, base: str | None = None) -> bytes:
        """``git diff --binary`` of the workspace (untracked files included) against ``base``."""
        self._ensure_open()
        base = base or self.base
        if base.startswith("-") or not base.strip():
            raise SandboxSpecError(f"invalid base {base!r}", field="base")
        output = f"/tmp/writgate-diff-{time.monotonic_ns()}"
        result = await self._run_shell(
            ["sh", "-c", f'{{\n{DIFF_SCRIPT}\n}} > "$2"', "sh", base, output],
            env=_GIT_ENV,
            internal=True,
        )
        if result.exit_code != 0:
            raise SandboxError(f"git diff failed in the sandbox: {result.stderr.strip()}")
        data = await self.read_file(output)
        await self._run_shell(["rm", "-f", output], internal=True)
        return data

    async def head(self) -> str:
        """The commit the workspace is at."""
        result = await self._run_shell(["git", "rev-parse", "HEAD"], env=_GIT_ENV, internal=True)
        if result.exit_code != 0:
            raise SandboxError(f"git rev-parse failed in the sandbox: {result.stderr.strip()}")
        return result.stdout.strip()

    def _path(self, path: str) -> str:
        return path if path.startswith("/") else f"{WORKDIR}/{path}"


class _Lines:
    """Turns the SDK's output chunks into lines for the sink, and keeps the whole text."""

    def __init__(self, stream: str, sink: OutputSink | None):
        self.stream = stream
        self.sink = sink
        self.parts: list[str] = []
        self.pending = ""

    async def feed(self, chunk: str) -> None:
        self.parts.append(chunk)
        if self.sink is None:
            return
        lines = (self.pending + chunk).split("\n")
        self.pending = lines.pop()
        for line in lines:
            await self.sink(self.stream, line)

    async def flush(self) -> None:
        if self.sink is not None and self.pending:
            await self.sink(self.stream, self.pending)
        self.pending = ""

    def text(self) -> str:
        return "".join(self.parts)
