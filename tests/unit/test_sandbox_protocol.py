"""The sandbox seam: public API, spec defaults and provider lookup."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import writer.sandbox as sandbox
from writer.sandbox import (
    Limits,
    NetworkPolicy,
    SandboxError,
    SandboxSpec,
    SandboxSpecError,
    provider_for,
)
from writgate.errors import InputError, WritgateError


def test_public_api_is_sorted_and_importable() -> None:
    assert sandbox.__all__ == sorted(sandbox.__all__)
    for name in sandbox.__all__:
        assert hasattr(sandbox, name), name


def test_spec_defaults_are_safe() -> None:
    spec = SandboxSpec(repository_url="/tmp/repo", ref="main")
    assert spec.network == NetworkPolicy(mode="none", allowlist=())
    assert spec.limits == Limits(cpu_seconds=None, memory_mb=2048, processes=256)
    assert dict(spec.env) == {}
    assert spec.keep_warm_seconds == 0
    assert spec.idempotency_key is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.ref = "other"  # type: ignore[misc]


def test_errors_belong_to_the_writgate_tree() -> None:
    assert issubclass(SandboxError, WritgateError)
    assert issubclass(sandbox.SandboxLost, SandboxError)
    error = SandboxSpecError("must be positive", field="limits.memory_mb")
    assert isinstance(error, InputError) and isinstance(error, SandboxError)
    assert str(error) == "limits.memory_mb: must be positive"


def test_unknown_provider_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(SandboxSpecError, match="unknown sandbox provider 'docker'") as info:
        provider_for("docker", home=tmp_path)
    assert info.value.field == "provider"
