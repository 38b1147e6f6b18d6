"""The bubblewrap command line of one sandboxed process (a pure function of its inputs).

Every ``exec`` of the local provider is one ``bwrap`` process: a fresh mount, PID, IPC, UTS,
cgroup and user namespace (and network namespace unless the policy is ``open``), a read-only
system, the workspace bound writable at :data:`WORKDIR`, a private ``/tmp`` and home that persist
between the execs of one sandbox, and an environment built only from what the caller passed.
"""

from __future__ import annotations

import os
import shutil
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
    "populate_etc",
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
# out. passwd, group and hosts are generated per sandbox instead (see populate_etc).
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
    return args


def populate_etc(target: Path, *, resolv_conf: bool, root: Path = Path("/")) -> None:
    """Fill the sandbox's own ``/etc`` (bound read-only as a whole: one mount, not twenty).

    It holds copies of the few host entries a toolchain needs (never ``ssl/private``), generated
    ``passwd``/``group``/``hosts`` naming only the sandbox user, and the host's ``resolv.conf``
    when the sandbox has the host network.
    """
    target.mkdir(parents=True, exist_ok=True)
    for name in _ETC_ENTRIES:
        source = root / "etc" / name
        destination = target / name
        if source.is_symlink():
            os.symlink(os.readlink(source), destination)
        elif source.is_dir():
            shutil.copytree(
                source, destination, symlinks=True, ignore=shutil.ignore_patterns("private")
            )
        elif source.is_file():
            shutil.copyfile(source, destination)
    (target / "passwd").write_text(
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"sandbox:x:{SANDBOX_UID}:{SANDBOX_GID}:sandbox:{HOME}:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    (target / "group").write_text(f"root:x:0:\nsandbox:x:{SANDBOX_GID}:\nnobody:x:65534:\n")
    (target / "hosts").write_text("127.0.0.1\tlocalhost sandbox\n::1\tlocalhost\n")
    resolv = root / "etc" / "resolv.conf"
    if resolv_conf and resolv.exists():
        shutil.copyfile(resolv, target / "resolv.conf")


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
    """Host directory bound read-only as ``/etc`` (see :func:`populate_etc`)."""
    env: Mapping[str, str]
    network: str = "none"
    cwd: str = WORKDIR
    read_only: Mapping[Path, str] = field(default_factory=dict)
    """Extra host paths bound read-only: host path -> path inside (the repository mirror)."""
    egress_socket: Path | None = None
    """Host path of the egress proxy socket (``restricted`` only)."""
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
    args += ["--ro-bind", str(command.etc), "/etc"]
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
