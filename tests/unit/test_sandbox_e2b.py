"""The SandboxSpec -> E2B SDK translation (a pure function) and the SDK boundary."""

from __future__ import annotations

import inspect
import sys
import typing
from pathlib import Path

import pytest

from writer.sandbox import Limits, NetworkPolicy, SandboxSpec, SandboxSpecError, provider_for
from writer.sandbox.e2b import ALL_TRAFFIC, WORKDIR, _limits_from, _metadata, sandbox_create_args
from writgate.errors import MissingExtraError


def spec(**changes: object) -> SandboxSpec:
    values: dict[str, object] = {"repository_url": "https://example.invalid/r.git", "ref": "main"}
    values.update(changes)
    return SandboxSpec(**values)  # type: ignore[arg-type]


def test_network_none_denies_all_egress() -> None:
    args = sandbox_create_args(spec(env={"A": "1"}), timeout_seconds=120)
    assert args["network"] == {"deny_out": [ALL_TRAFFIC]}
    assert args["envs"] == {"A": "1"}
    assert args["timeout"] == 120
    assert "template" not in args and "idempotency_key" not in args


def test_restricted_allows_only_the_allowlist() -> None:
    network = NetworkPolicy(mode="restricted", allowlist=("PyPI.org", "*.pythonhosted.org"))
    args = sandbox_create_args(spec(network=network), template="writgate-dev")
    assert args["network"] == {
        "allow_out": ["pypi.org", "*.pythonhosted.org"],
        "deny_out": [ALL_TRAFFIC],
    }
    assert args["template"] == "writgate-dev"


def test_open_network_sets_no_restriction() -> None:
    args = sandbox_create_args(spec(network=NetworkPolicy(mode="open")))
    assert "network" not in args


def test_keep_warm_pauses_on_timeout_with_auto_resume() -> None:
    warm = sandbox_create_args(spec(keep_warm_seconds=600))
    assert warm["lifecycle"] == {"on_timeout": "pause", "auto_resume": True}
    cold = sandbox_create_args(spec(keep_warm_seconds=0))
    assert cold["lifecycle"] == {"on_timeout": "kill"}


def test_labels_base_and_idempotency_key_are_passed_through() -> None:
    args = sandbox_create_args(
        spec(labels={"runId": "run_1", "tags": "ci,nightly"}, idempotency_key="run_1"),
        base="a" * 40,
    )
    assert args["idempotency_key"] == "run_1"
    metadata = args["metadata"]
    assert metadata["runId"] == "run_1" and metadata["tags"] == "ci,nightly"
    assert metadata["writgate.base"] == "a" * 40
    assert metadata["writgate.workdir"] == WORKDIR


def test_limits_survive_the_metadata_round_trip() -> None:
    limits = Limits(cpu_seconds=30, memory_mb=512, processes=64, wall_seconds=90.5)
    assert _limits_from(_metadata(spec(limits=limits), None)) == limits
    unlimited = Limits(cpu_seconds=None, memory_mb=None, processes=None, wall_seconds=None)
    assert _limits_from(_metadata(spec(limits=unlimited), None)) == unlimited
    assert _limits_from({}) == Limits()


def test_ports_in_the_allowlist_are_rejected_for_e2b() -> None:
    network = NetworkPolicy(mode="restricted", allowlist=("pypi.org", "example.com:8443"))
    with pytest.raises(SandboxSpecError) as info:
        sandbox_create_args(spec(network=network))
    assert info.value.field == "network.allowlist[1]"


def test_invalid_specs_are_rejected_before_any_call() -> None:
    with pytest.raises(SandboxSpecError) as info:
        sandbox_create_args(spec(limits=Limits(processes=0)))
    assert info.value.field == "limits.processes"


def _keys(typed_dict: object) -> set[str]:
    return set(typing.get_type_hints(typed_dict).keys())


def test_arguments_match_the_installed_sdk() -> None:
    e2b = pytest.importorskip("e2b", reason="the e2b extra is not installed")
    from e2b.sandbox.sandbox_api import SandboxLifecycle, SandboxNetworkOpts

    parameters = inspect.signature(e2b.AsyncSandbox.create).parameters
    network = NetworkPolicy(mode="restricted", allowlist=("pypi.org",))
    args = sandbox_create_args(
        spec(network=network, keep_warm_seconds=60, idempotency_key="k"), template="t"
    )
    assert set(args) <= set(parameters)
    assert set(args["network"]) <= _keys(SandboxNetworkOpts)
    assert set(args["lifecycle"]) <= _keys(SandboxLifecycle)
    assert e2b.ALL_TRAFFIC == ALL_TRAFFIC


def test_missing_sdk_is_a_missing_extra_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "e2b", None)
    with pytest.raises(MissingExtraError, match=r"writgate\[e2b\]"):
        provider_for("e2b", home=tmp_path)
