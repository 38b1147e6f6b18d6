"""The sandbox seam (DESIGN.md §6, CONTRACTS.md §5): a spec, a sandbox, a provider.

A provider turns a :class:`SandboxSpec` into a running :class:`Sandbox` whose workspace is a
checkout of ``spec.repository_url`` at ``spec.ref``. Everything the writer does inside it goes
through these few methods, so the local (bubblewrap) and the cloud (E2B) providers are
interchangeable and are held to one conformance suite.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "ExecResult",
    "Limits",
    "NetworkMode",
    "NetworkPolicy",
    "OutputSink",
    "Sandbox",
    "SandboxEvent",
    "SandboxEventSink",
    "SandboxProvider",
    "SandboxSpec",
]

NetworkMode = Literal["none", "restricted", "open"]


@dataclass(frozen=True)
class NetworkPolicy:
    """What the sandbox may reach: nothing, allowlisted hosts through a proxy, or everything.

    ``allowlist`` holds host names (``pypi.org``) and wildcards (``*.pythonhosted.org``, which
    matches any sub-domain but not the bare domain); it is only meaningful for ``restricted``.
    """

    mode: NetworkMode = "none"
    allowlist: tuple[str, ...] = ()


@dataclass(frozen=True)
class Limits:
    """Resource limits of every process in the sandbox; ``None`` means no limit."""

    cpu_seconds: int | None = None
    memory_mb: int | None = 2048
    processes: int | None = 256
    wall_seconds: float | None = None


@dataclass(frozen=True)
class SandboxSpec:
    """Everything a provider needs to create a sandbox."""

    repository_url: str
    """A path, ``file://`` URL or https URL git can clone (never with credentials in it)."""
    ref: str
    """The branch name or commit id to check out."""
    env: Mapping[str, str] = field(default_factory=dict)
    """The ONLY environment variables the sandbox sees (plus safe defaults: PATH, HOME, LANG)."""
    network: NetworkPolicy = NetworkPolicy()
    limits: Limits = Limits()
    keep_warm_seconds: float = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    """Run id, tags…: metadata for the providers that keep it, and echoed in events."""
    idempotency_key: str | None = None


@dataclass(frozen=True)
class ExecResult:
    """How a command inside the sandbox ended."""

    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool
    duration_seconds: float


OutputSink = Callable[[str, str], Awaitable[None]]
"""Receives output as it comes: ``(stream, line)`` with stream ``"stdout"`` or ``"stderr"``."""


@dataclass(frozen=True)
class SandboxEvent:
    """Something a sandbox did on its own that the writer records in the run's ledger.

    ``type`` is the ledger event type: ``sandbox.egress`` (``data``: host, port, allowed),
    ``sandbox.expired`` (the keep-warm window ended and the sandbox was closed) or
    ``sandbox.lost`` (the sandbox died without being closed). ``labels`` are the spec's labels,
    so the receiver can find the run.
    """

    type: str
    sandbox_id: str
    provider: str
    labels: Mapping[str, str]
    data: Mapping[str, Any] = field(default_factory=dict)


SandboxEventSink = Callable[[SandboxEvent], Awaitable[None]]


@runtime_checkable
class Sandbox(Protocol):
    """An isolated workspace that runs commands."""

    id: str
    provider: str
    workdir: str
    """The workspace path as seen INSIDE the sandbox."""

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
        """Run ``argv``; stream lines to ``on_output``; a timeout kills the whole process tree."""
        ...

    async def read_file(self, path: str) -> bytes:
        """The content of ``path`` (relative to the workspace, or absolute inside the sandbox)."""
        ...

    async def write_file(self, path: str, data: bytes) -> None:
        """Create or replace ``path`` (relative to the workspace, or absolute inside it)."""
        ...

    async def diff(self, base: str | None = None) -> bytes:
        """``git diff --binary`` of the workspace against ``base`` (default: the checked-out
        commit), untracked files included."""
        ...

    async def head(self) -> str:
        """The commit id the workspace is at."""
        ...

    async def keep_alive(self, seconds: float) -> None:
        """Keep the sandbox warm for ``seconds`` from now; it is closed when that time ends."""
        ...

    async def is_alive(self) -> bool:
        """Whether the sandbox still exists and can run commands."""
        ...

    async def close(self) -> None:
        """Stop every process and delete the workspace; closing twice is harmless."""
        ...


@runtime_checkable
class SandboxProvider(Protocol):
    """Creates sandboxes and finds the warm ones again."""

    name: str

    async def create(self, spec: SandboxSpec) -> Sandbox:
        """A new sandbox with a checkout of ``spec.repository_url`` at ``spec.ref``."""
        ...

    async def attach(self, sandbox_id: str) -> Sandbox | None:
        """The warm sandbox ``sandbox_id`` of this process, or ``None`` when it is gone."""
        ...
