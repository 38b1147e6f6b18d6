"""The bubblewrap command line of one sandboxed process (a pure function of its inputs).

Every ``exec`` of the local provider is one ``bwrap`` process: a fresh mount, PID, IPC, UTS,
cgroup and user namespace (and network namespace unless the policy is ``open``), a read-only
system, the workspace bound writable at :data:`WORKDIR`, a private ``/tmp`` and home that persist
between the execs of one sandbox, and an environment built only from what the caller passed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULT_ENV",
    "EGRESS_SOCKET",
    "HOME",
    "PROXY_PORT",
    "SANDBOX_GID",
    "SANDBOX_UID",
    "WORKDIR",
    "BwrapCommand",
    "bwrap_argv",
    "system_binds",
]

WORKDIR = "/workspace"
HOME = "/home/sandbox"
EGRESS_SOCKET = "/run/writgate/egress.sock"
PROXY_PORT = 3128
SANDBOX_UID = 1000
SANDBOX_GID = 1000
DEFAULT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": HOME,
    "LANG": "C.UTF-8",
    "USER": "sandbox",
    "TMPDIR": "/tmp",
}

# /etc entries a toolchain needs; everything else in /etc (shadow, ssh keys, host config) stays
# out. passwd, group and hosts are generated per sandbox instead.
_ETC_ENTRIES = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "debian_version",
    "gai.conf",
    "host.conf",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "protocols",
    "services",
    "ssl",
    "timezone",
)
_TOP_LEVEL = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def system_binds(root: Path = Path("/")) -> list[str]:
    """bwrap arguments binding the host's system directories read-only (merged-/usr aware)."""
    args = ["--ro-bind", str(root / "usr"), "/usr"]
    for name in _TOP_LEVEL:
        path = root / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            args += ["--ro-bind", str(path), f"/{name}"]
    for name in _ETC_ENTRIES:
        path = root / "etc" / name
        if path.exists():
            args += ["--ro-bind", str(path), f"/etc/{name}"]
    return args


@dataclass(frozen=True)
class BwrapCommand:
    """What one sandboxed process gets; :func:`bwrap_argv` turns it into a command line."""

    argv: Sequence[str]
    workspace: Path
    """Host directory bound writable at :data:`WORKDIR`."""
    tmp: Path
    """Host directory bound writable at ``/tmp`` (private to the sandbox)."""
    home: Path
    """Host directory bound writable at :data:`HOME`."""
    etc: Path
    """Host directory holding the generated ``passwd``, ``group`` and ``hosts``."""
    env: Mapping[str, str]
    network: str = "none"
    cwd: str = WORKDIR
    read_only: Mapping[Path, str] = field(default_factory=dict)
    """Extra host paths bound read-only: host path -> path inside (the repository mirror)."""
    egress_socket: Path | None = None
    """Host path of the egress proxy socket (``restricted`` only)."""
    resolv_conf: Path | None = None
    """Host ``resolv.conf`` to bind (``open`` only)."""
    system: Sequence[str] = field(default_factory=system_binds)
    bwrap: str = "bwrap"


def bwrap_argv(command: BwrapCommand) -> list[str]:
    """The full ``bwrap …`` command line for ``command``."""
    args = [
        command.bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_GID),
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
    ]
    if command.network == "open":
        args.append("--share-net")
    args += list(command.system)
    args += ["--proc", "/proc", "--dev", "/dev"]
    for name in ("passwd", "group", "hosts"):
        args += ["--ro-bind", str(command.etc / name), f"/etc/{name}"]
    if command.resolv_conf is not None:
        args += ["--ro-bind", str(command.resolv_conf), "/etc/resolv.conf"]
    for host_path, inside in command.read_only.items():
        args += ["--ro-bind", str(host_path), inside]
    args += ["--bind", str(command.tmp), "/tmp"]
    args += ["--bind", str(command.home), HOME]
    args += ["--bind", str(command.workspace), WORKDIR]
    if command.egress_socket is not None:
        args += ["--bind", str(command.egress_socket), EGRESS_SOCKET]
    # The root (and /etc, /run…) is bwrap's own tmpfs: read-only once the binds are in place.
    args += ["--remount-ro", "/"]
    for name, value in command.env.items():
        args += ["--setenv", name, value]
    args += ["--chdir", command.cwd, "--", *command.argv]
    return args
