"""The bubblewrap command line and the egress allowlist (pure functions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from writer.sandbox import SandboxSpecError
from writer.sandbox.bubblewrap import EGRESS_SOCKET, HOME, WORKDIR, BwrapCommand, bwrap_argv
from writer.sandbox.egress import Allowlist
from writer.sandbox.limits import prlimit_prefix
from writer.sandbox.protocol import Limits


def command(**changes: object) -> BwrapCommand:
    values: dict[str, object] = {
        "argv": ["echo", "hi"],
        "workspace": Path("/s/workspace"),
        "tmp": Path("/s/tmp"),
        "home": Path("/s/home"),
        "etc": Path("/s/etc"),
        "env": {"PATH": "/usr/bin", "TOKEN_FREE": "yes"},
        "system": ["--ro-bind", "/usr", "/usr"],
    }
    values.update(changes)
    return BwrapCommand(**values)  # type: ignore[arg-type]


def pairs(argv: list[str], option: str, width: int) -> list[list[str]]:
    return [argv[i + 1 : i + 1 + width] for i, arg in enumerate(argv) if arg == option]


def test_isolation_flags_and_binds() -> None:
    argv = bwrap_argv(command())
    for flag in ("--unshare-all", "--die-with-parent", "--new-session", "--clearenv"):
        assert flag in argv
    assert "--share-net" not in argv
    assert argv[argv.index("--uid") + 1] == "1000"
    assert ["/s/workspace", WORKDIR] in pairs(argv, "--bind", 2)
    assert ["/s/tmp", "/tmp"] in pairs(argv, "--bind", 2)
    assert ["/s/home", HOME] in pairs(argv, "--bind", 2)
    assert pairs(argv, "--remount-ro", 1) == [["/"]]
    assert pairs(argv, "--setenv", 2) == [["PATH", "/usr/bin"], ["TOKEN_FREE", "yes"]]
    assert argv[-3:] == ["--", "echo", "hi"]
    assert argv[argv.index("--chdir") + 1] == WORKDIR


def test_network_modes() -> None:
    assert "--share-net" in bwrap_argv(command(network="open"))
    restricted = bwrap_argv(command(network="restricted", egress_socket=Path("/x/e.sock")))
    assert "--share-net" not in restricted
    assert ["/x/e.sock", EGRESS_SOCKET] in pairs(restricted, "--bind", 2)


def test_the_read_only_root_comes_after_every_mount() -> None:
    argv = bwrap_argv(command(read_only={Path("/m/mirror.git"): "/mirror.git"}))
    last_mount = max(i for i, arg in enumerate(argv) if arg in ("--bind", "--ro-bind"))
    assert argv.index("--remount-ro") > last_mount
    assert ["/m/mirror.git", "/mirror.git"] in pairs(argv, "--ro-bind", 2)


def test_prlimit_prefix() -> None:
    limits = Limits(cpu_seconds=5, memory_mb=64, processes=10)
    assert prlimit_prefix(limits, with_process_limits=False) == ["prlimit", "--cpu=5", "--"]
    assert prlimit_prefix(limits, with_process_limits=True) == [
        "prlimit",
        "--cpu=5",
        "--nproc=10",
        f"--as={64 * 1024 * 1024}",
        "--",
    ]
    assert prlimit_prefix(Limits(memory_mb=None, processes=None), with_process_limits=True) == []


@pytest.mark.parametrize(
    ("entry", "host", "port", "allowed"),
    [
        ("pypi.org", "pypi.org", 443, True),
        ("pypi.org", "PyPI.org.", 80, True),
        ("pypi.org", "evil-pypi.org", 443, False),
        ("pypi.org", "pypi.org.evil.com", 443, False),
        ("*.pythonhosted.org", "files.pythonhosted.org", 443, True),
        ("*.pythonhosted.org", "a.b.pythonhosted.org", 443, True),
        ("*.pythonhosted.org", "pythonhosted.org", 443, False),
        ("*.pythonhosted.org", "evilpythonhosted.org", 443, False),
        ("localhost:8080", "localhost", 8080, True),
        ("localhost:8080", "localhost", 8081, False),
        ("127.0.0.1", "127.0.0.1", 5000, True),
        ("[::1]:443", "::1", 443, True),
        ("[::1]:443", "[::1]", 80, False),
    ],
)
def test_allowlist_matching(entry: str, host: str, port: int, allowed: bool) -> None:
    assert Allowlist([entry]).allows(host, port) is allowed


def test_an_empty_allowlist_allows_nothing() -> None:
    assert not Allowlist([]).allows("localhost", 80)


@pytest.mark.parametrize("entry", ["", "bad host", "*", "*.", "a..b", "-a.com", "x.com:0", "x:y"])
def test_invalid_allowlist_entries_name_their_index(entry: str) -> None:
    with pytest.raises(SandboxSpecError) as info:
        Allowlist(["ok.example", entry])
    assert info.value.field == "network.allowlist[1]"
