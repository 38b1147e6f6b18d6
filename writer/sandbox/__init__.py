"""Sandboxes for coding agents (DESIGN.md §6): the protocol, its errors and the providers.

``provider_for("local", home=…)`` is the embedded default (bubblewrap on this machine, see
:mod:`writer.sandbox.local`); ``provider_for("e2b", home=…)`` runs the same protocol on E2B cloud
sandboxes (:mod:`writer.sandbox.e2b`). Both report what a sandbox does on its own
(``sandbox.egress``, ``sandbox.expired``, ``sandbox.lost``) to ``on_event``; both pass the
conformance suite in ``tests/integration/test_sandbox_conformance.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import (
    SandboxError,
    SandboxFileNotFound,
    SandboxLost,
    SandboxSetupError,
    SandboxSpecError,
    SandboxTimeout,
    SandboxUnavailable,
)
from .protocol import (
    ExecResult,
    Limits,
    NetworkMode,
    NetworkPolicy,
    OutputSink,
    Sandbox,
    SandboxEvent,
    SandboxEventSink,
    SandboxProvider,
    SandboxSpec,
)

__all__ = [
    "ExecResult",
    "Limits",
    "NetworkMode",
    "NetworkPolicy",
    "OutputSink",
    "Sandbox",
    "SandboxError",
    "SandboxEvent",
    "SandboxEventSink",
    "SandboxFileNotFound",
    "SandboxLost",
    "SandboxProvider",
    "SandboxSetupError",
    "SandboxSpec",
    "SandboxSpecError",
    "SandboxTimeout",
    "SandboxUnavailable",
    "provider_for",
]

_PROVIDERS = ("e2b", "local")


def provider_for(name: str, *, home: Path, **options: Any) -> SandboxProvider:
    """The sandbox provider called ``name`` ("local" or "e2b").

    ``home`` is writgate's home directory (the local provider keeps its mirrors and workspaces
    under ``<home>/sandboxes``). ``options`` go to the provider's constructor; both accept
    ``on_event`` (a :data:`SandboxEventSink` receiving ``sandbox.egress``/``sandbox.expired``/
    ``sandbox.lost`` events).
    """
    if name == "local":
        from .local import LocalProvider  # type: ignore

        return LocalProvider(home=home, **options)  # type: ignore[no-any-return]
    if name == "e2b":
        from .e2b import E2BProvider  # type: ignore

        return E2BProvider(home=home, **options)  # type: ignore[no-any-return]
    raise SandboxSpecError(
        f"unknown sandbox provider {name!r} (expected one of: {', '.join(_PROVIDERS)})",
        field="provider",
    )
