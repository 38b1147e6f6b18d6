"""Checks of a :class:`~writer.sandbox.protocol.SandboxSpec` shared by every provider."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from .egress import Allowlist
from .errors import SandboxSpecError
from .protocol import SandboxSpec

__all__ = ["validate_spec"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODES = ("none", "restricted", "open")


def validate_spec(spec: SandboxSpec) -> None:
    """Raise :class:`SandboxSpecError` naming the first invalid field of ``spec``."""
    if not spec.repository_url.strip():
        raise SandboxSpecError("must not be empty", field="repository_url")
    if not spec.ref.strip() or spec.ref.startswith("-") or any(c in spec.ref for c in " \0\n"):
        raise SandboxSpecError(f"invalid ref {spec.ref!r}", field="ref")
    if spec.network.mode not in _MODES:
        raise SandboxSpecError(
            f"unknown network mode {spec.network.mode!r} (expected none, restricted or open)",
            field="network.mode",
        )
    if spec.network.allowlist and spec.network.mode != "restricted":
        raise SandboxSpecError(
            f"an allowlist needs network mode 'restricted', not {spec.network.mode!r}",
            field="network.allowlist",
        )
    Allowlist(spec.network.allowlist)  # raises naming the bad entry
    limits = spec.limits
    for name in ("cpu_seconds", "memory_mb", "processes"):
        value = getattr(limits, name)
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise SandboxSpecError(
                f"must be a positive integer, not {value!r}", field=f"limits.{name}"
            )
    if limits.wall_seconds is not None and not (
        math.isfinite(limits.wall_seconds) and limits.wall_seconds > 0
    ):
        raise SandboxSpecError("must be a positive number of seconds", field="limits.wall_seconds")
    if not (math.isfinite(spec.keep_warm_seconds) and spec.keep_warm_seconds >= 0):
        raise SandboxSpecError("must be zero or a positive number", field="keep_warm_seconds")
    check_env(spec.env, field="env")


def check_env(env: Mapping[str, str], *, field: str) -> None:
    """Environment names must be identifiers and values plain strings without NUL."""
    for name, value in env.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise SandboxSpecError(f"invalid environment variable name {name!r}", field=field)
        if not isinstance(value, str) or "\0" in value:
            raise SandboxSpecError(f"invalid value for {name}", field=f"{field}.{name}")
