"""The local provider run by an unprivileged user (a developer machine): rlimits, no cgroups.

As root the tests drop to uid 65534 in a child process that imports this checkout with the system
``python3``; that process cannot write cgroups, so the provider must fall back to ``prlimit``
inside the sandbox's user namespace — and that must still contain a fork bomb and a memory hog.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

NOBODY = 65534
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import asyncio, json, os
from pathlib import Path
from writer.sandbox import Limits, SandboxSpec, provider_for
from writer.sandbox.limits import cgroup_support

FORKS = '''
import os, time
n = 0
try:
    for _ in range(200):
        if os.fork() == 0:
            time.sleep(20)
            os._exit(0)
        n += 1
except OSError:
    pass
print(n)
'''

async def main():
    base = Path(os.environ["WORK"])
    provider = provider_for("local", home=base / "home")
    limits = Limits(processes=20, memory_mb=200, cpu_seconds=5)
    spec = SandboxSpec(repository_url=str(base / "repo"), ref="main", limits=limits)
    sandbox = await provider.create(spec)
    try:
        forks = await sandbox.exec(["python3", "-c", FORKS], timeout=60)
        hog = await sandbox.exec(
            ["python3", "-c", "x = [b'x' * 10_000_000 for _ in range(100)]; print('ALLOCATED')"],
            timeout=60,
        )
        await sandbox.write_file("new.txt", b"from an unprivileged host user\\n")
        diff = await sandbox.diff()
        ident = await sandbox.exec(["id", "-u"])
    finally:
        await sandbox.close()
    print(json.dumps({
        "host_uid": os.getuid(),
        "cgroups": cgroup_support(),
        "forks": int(forks.stdout.strip() or -1),
        "hog_exit": hog.exit_code,
        "hog_output": hog.stdout,
        "diff_has_file": b"new.txt" in diff,
        "sandbox_uid": ident.stdout.strip(),
    }))

asyncio.run(main())
"""


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory the unprivileged user can reach (pytest's tmp_path is private to root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a child process as an unprivileged user")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    system_python = shutil.which("python3", path="/usr/bin")
    if system_python is None:
        pytest.skip("no /usr/bin/python3 to run the unprivileged child")
    version = subprocess.run(
        [system_python, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if version != str(sys.version_info[:2]):
        pytest.skip(
            f"/usr/bin/python3 is {version}, the test environment is {sys.version_info[:2]}"
        )
    directory = Path(tempfile.mkdtemp(prefix="writgate-unprivileged-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_rlimits_contain_an_unprivileged_users_sandbox(workdir: Path) -> None:
    from tests.conftest import git

    repo = workdir / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("hello\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "initial")
    (workdir / "home").mkdir()
    for path in (workdir, *workdir.rglob("*")):
        os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    site_packages = next((ROOT / ".venv" / "lib").glob("python3.*/site-packages"), None)
    if site_packages is None:
        pytest.skip("no .venv site-packages to import the dependencies from")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(workdir),
        "WORK": str(workdir),
        "PYTHONPATH": f"{ROOT}:{site_packages}",
    }
    result = subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            textwrap.dedent(SCRIPT),
        ],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["host_uid"] == NOBODY
    assert report["cgroups"] is False
    assert 0 <= report["forks"] < 20
    assert report["hog_exit"] != 0 and "ALLOCATED" not in report["hog_output"]
    assert report["diff_has_file"] is True
    assert report["sandbox_uid"] == "1000"
