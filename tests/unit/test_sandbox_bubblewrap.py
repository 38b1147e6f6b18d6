"""The bubblewrap command line and the egress allowlist (pure functions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from writer.sandbox import SandboxSpecError
from writer.sandbox.bubblewrap import (
    EGRESS_SOCKET,
    HOME,
    WORKDIR,
    BwrapCommand,
    bwrap_argv,
    populate_etc,
    system_binds,
)
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
    assert ["/s/etc", "/etc"] in pairs(argv, "--ro-bind", 2)
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


def test_the_sandbox_etc_holds_only_what_a_toolchain_needs(tmp_path: Path) -> None:
    host = tmp_path / "host"
    (host / "etc" / "ssl" / "certs").mkdir(parents=True)
    (host / "etc" / "ssl" / "private").mkdir()
    (host / "etc" / "ssl" / "private" / "server.key").write_text("SECRET KEY")
    (host / "etc" / "ssl" / "certs" / "ca.pem").write_text("CERT")
    (host / "etc" / "ld.so.cache").write_bytes(b"cache")
    (host / "etc" / "shadow").write_text("root:$6$hash")
    (host / "etc" / "passwd").write_text("alice:x:1001:1001::/home/alice:/bin/bash\n")
    (host / "etc" / "resolv.conf").write_text("nameserver 127.0.0.53\n")
    (host / "etc" / "alternatives").mkdir()
    (host / "etc" / "alternatives" / "python").symlink_to("/usr/bin/python3")

    closed = tmp_path / "closed"
    populate_etc(closed, resolv_conf=False, root=host)
    names = {p.relative_to(closed).as_posix() for p in closed.rglob("*")}
    assert "ssl/certs/ca.pem" in names and "ld.so.cache" in names
    assert not {"ssl/private", "shadow", "resolv.conf"} & names
    assert "alice" not in (closed / "passwd").read_text()
    assert "sandbox:x:1000:1000" in (closed / "passwd").read_text()
    assert (closed / "alternatives" / "python").readlink() == Path("/usr/bin/python3")

    open_network = tmp_path / "open"
    populate_etc(open_network, resolv_conf=True, root=host)
    assert (open_network / "resolv.conf").read_text() == "nameserver 127.0.0.53\n"


def test_system_binds_follow_a_merged_usr(tmp_path: Path) -> None:
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "bin").symlink_to("usr/bin")
    (tmp_path / "lib").mkdir()
    args = system_binds(tmp_path)
    assert args[:3] == ["--ro-bind", str(tmp_path / "usr"), "/usr"]
    assert ["usr/bin", "/bin"] in pairs(args, "--symlink", 2)
    assert [str(tmp_path / "lib"), "/lib"] in pairs(args, "--ro-bind", 2)


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
