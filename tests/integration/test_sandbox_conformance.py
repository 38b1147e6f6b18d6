"""The conformance suite every sandbox provider passes (local always; e2b with E2B_API_KEY).

Real sandboxes: bubblewrap on this machine, E2B cloud sandboxes when a key is configured.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from tests.conftest import git
from writer.sandbox import (
    Limits,
    Sandbox,
    SandboxEvent,
    SandboxFileNotFound,
    SandboxLost,
    SandboxProvider,
    SandboxSpec,
    SandboxSpecError,
    provider_for,
)

pytestmark = pytest.mark.anyio

BINARY = bytes(range(256)) * 4


class Events:
    """Collects the sandbox events a provider reports."""

    def __init__(self) -> None:
        self.items: list[SandboxEvent] = []

    async def __call__(self, event: SandboxEvent) -> None:
        self.items.append(event)

    def of(self, type: str) -> list[SandboxEvent]:
        return [event for event in self.items if event.type == type]


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture(params=["local", "e2b-fake", "e2b"])
async def provider(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    events: Events,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[SandboxProvider]:
    """Each provider, started the way the writer starts it (``provider_for``).

    ``e2b-fake`` is the e2b provider talking to a local stand-in for the E2B cloud (see
    test_sandbox_fake_e2b.py); ``e2b`` is the real thing and needs ``E2B_API_KEY``.
    """
    name = request.param
    if name == "e2b" and not os.environ.get("E2B_API_KEY"):
        pytest.skip("E2B_API_KEY is not set: the e2b conformance run needs an E2B account")
    if name == "e2b-fake":
        from tests.integration.test_sandbox_fake_e2b import install_fake_e2b

        install_fake_e2b(monkeypatch)
        name = "e2b"
    provider = provider_for(name, home=tmp_path / "home", on_event=events)
    try:
        yield provider
    finally:
        await provider.aclose()  # type: ignore[attr-defined]


@pytest.fixture
def repo(git_repo: Path) -> Path:
    """A repository with a text file, a binary file and a sub-directory on ``main``."""
    (git_repo / "src").mkdir()
    (git_repo / "src" / "app.py").write_text("print('hello')\n")
    (git_repo / "data.bin").write_bytes(BINARY)
    (git_repo / "gone.txt").write_text("to be deleted\n")
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "files")
    return git_repo


def spec_for(repo: Path, **changes: object) -> SandboxSpec:
    values: dict[str, object] = {"repository_url": str(repo), "ref": "main"}
    values.update(changes)
    return SandboxSpec(**values)  # type: ignore[arg-type]


@pytest.fixture
async def sandbox(provider: SandboxProvider, repo: Path) -> AsyncIterator[Sandbox]:
    sandbox = await provider.create(spec_for(repo, env={"GREETING": "bonjour"}))
    try:
        yield sandbox
    finally:
        await sandbox.close()


async def test_exec_reports_exit_code_output_env_and_cwd(sandbox: Sandbox, repo: Path) -> None:
    result = await sandbox.exec(
        ["sh", "-c", 'echo "$GREETING $EXTRA"; pwd; echo oops >&2; exit 3'],
        env={"EXTRA": "monde"},
        cwd="src",
    )
    assert result.exit_code == 3
    assert result.stdout.splitlines() == ["bonjour monde", f"{sandbox.workdir}/src"]
    assert result.stderr == "oops\n"
    assert not result.timed_out
    assert result.duration_seconds > 0
    listing = await sandbox.exec(["ls"], cwd=sandbox.workdir)
    assert set(listing.stdout.split()) == {"README.md", "data.bin", "gone.txt", "src"}
    assert await sandbox.head() == git(repo, "rev-parse", "HEAD").strip()


async def test_exec_passes_stdin(sandbox: Sandbox) -> None:
    result = await sandbox.exec(["sh", "-c", "tr a-z A-Z"], stdin=b"shout\n")
    assert result.stdout == "SHOUT\n"


async def test_output_is_streamed_while_the_command_runs(sandbox: Sandbox) -> None:
    """The command waits for a file the test writes only after seeing its first line."""
    seen: list[tuple[str, str]] = []

    async def on_output(stream: str, line: str) -> None:
        seen.append((stream, line))
        if line == "waiting":
            await sandbox.write_file("/tmp/go", b"")

    script = "echo waiting; echo note >&2; while [ ! -f /tmp/go ]; do sleep 0.02; done; echo done"
    result = await sandbox.exec(["sh", "-c", script], on_output=on_output, timeout=30)
    assert not result.timed_out, "the first line was not streamed before the command ended"
    assert result.exit_code == 0
    assert ("stdout", "waiting") in seen and ("stdout", "done") in seen
    assert ("stderr", "note") in seen
    assert seen.index(("stdout", "waiting")) < seen.index(("stdout", "done"))


async def test_files_round_trip(sandbox: Sandbox) -> None:
    await sandbox.write_file("notes/deep/a.txt", b"alpha\n")
    await sandbox.write_file(f"{sandbox.workdir}/blob.bin", BINARY)
    assert await sandbox.read_file("notes/deep/a.txt") == b"alpha\n"
    assert await sandbox.read_file("blob.bin") == BINARY
    seen_inside = await sandbox.exec(["cat", "notes/deep/a.txt"])
    assert seen_inside.stdout == "alpha\n"
    await sandbox.write_file("notes/deep/a.txt", b"replaced")
    assert await sandbox.read_file(f"{sandbox.workdir}/notes/deep/a.txt") == b"replaced"
    with pytest.raises(SandboxFileNotFound):
        await sandbox.read_file("no/such/file")


async def test_diff_includes_untracked_files_and_applies_to_a_clean_checkout(
    sandbox: Sandbox, repo: Path, tmp_path: Path
) -> None:
    await sandbox.write_file("README.md", b"hello\nworld\n")
    await sandbox.write_file("src/new_module.py", b"VALUE = 1\n")
    await sandbox.write_file("new.bin", BINARY[::-1])
    removed = await sandbox.exec(["rm", "gone.txt"])
    assert removed.exit_code == 0
    patch = await sandbox.diff()
    assert b"diff --git a/src/new_module.py b/src/new_module.py" in patch
    assert b"GIT binary patch" in patch
    # The workspace's own index is untouched: the new file is still untracked.
    status = await sandbox.exec(["git", "status", "--porcelain"])
    assert "?? src/new_module.py" in status.stdout.splitlines()

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(clone, "apply", "--index", input=patch)
    assert (clone / "README.md").read_text() == "hello\nworld\n"
    assert (clone / "src" / "new_module.py").read_text() == "VALUE = 1\n"
    assert (clone / "new.bin").read_bytes() == BINARY[::-1]
    assert not (clone / "gone.txt").exists()


async def test_diff_against_an_explicit_base_sees_commits_made_inside(
    sandbox: Sandbox, repo: Path
) -> None:
    base = await sandbox.head()
    await sandbox.write_file("committed.txt", b"one\n")
    commit = await sandbox.exec(["sh", "-c", "git add -A && git commit -qm inside"])
    assert commit.exit_code == 0, commit.stderr
    assert await sandbox.head() != base
    assert await sandbox.diff() == await sandbox.diff(base)
    assert b"committed.txt" in await sandbox.diff(base)
    assert await sandbox.diff(await sandbox.head()) == b""


async def test_a_commit_id_can_be_checked_out(provider: SandboxProvider, repo: Path) -> None:
    first = git(repo, "rev-list", "--max-parents=0", "HEAD").strip()
    sandbox = await provider.create(spec_for(repo, ref=first))
    try:
        assert await sandbox.head() == first
        listing = await sandbox.exec(["ls"])
        assert listing.stdout.split() == ["README.md"]
    finally:
        await sandbox.close()


async def test_exec_timeout_kills_the_command(sandbox: Sandbox) -> None:
    started = time.monotonic()
    result = await sandbox.exec(["sh", "-c", "echo started; sleep 60"], timeout=0.5)
    assert result.timed_out
    assert result.exit_code != 0
    assert result.stdout == "started\n"
    assert time.monotonic() - started < 10
    after = await sandbox.exec(["echo", "still usable"])
    assert after.stdout == "still usable\n"


async def test_wall_seconds_limit_applies_to_every_exec(
    provider: SandboxProvider, repo: Path
) -> None:
    sandbox = await provider.create(spec_for(repo, limits=Limits(wall_seconds=0.5)))
    try:
        result = await sandbox.exec(["sleep", "60"])
        assert result.timed_out and result.duration_seconds < 10
        # A larger per-call timeout does not lift the sandbox's wall clock.
        result = await sandbox.exec(["sleep", "60"], timeout=30)
        assert result.timed_out and result.duration_seconds < 10
    finally:
        await sandbox.close()


async def test_keep_alive_and_attach_return_the_same_warm_sandbox(
    provider: SandboxProvider, sandbox: Sandbox
) -> None:
    await sandbox.write_file("turn1.txt", b"first turn\n")
    await sandbox.keep_alive(60)
    started = time.perf_counter()
    again = await provider.attach(sandbox.id)
    if provider.name == "local":  # in-process; a cloud provider asks its API
        assert time.perf_counter() - started < 0.05
    assert again is not None and again.id == sandbox.id
    assert await again.read_file("turn1.txt") == b"first turn\n"
    assert await provider.attach("sbx_01aaaaaaaaaaaaaaaaaaaaaaaa") is None


async def test_expiry_closes_the_sandbox_on_time(
    provider: SandboxProvider, repo: Path, events: Events
) -> None:
    sandbox = await provider.create(spec_for(repo, labels={"runId": "run_test"}))
    await sandbox.keep_alive(0.3)
    assert await sandbox.is_alive()
    started = time.monotonic()
    with anyio.fail_after(20):
        while True:
            if not await sandbox.is_alive():
                break
            await anyio.sleep(0.02)
    assert time.monotonic() - started >= 0.25
    assert await provider.attach(sandbox.id) is None
    expired = events.of("sandbox.expired")
    assert [e.sandbox_id for e in expired] == [sandbox.id]
    assert expired[0].labels["runId"] == "run_test"
    with pytest.raises(SandboxLost):
        await sandbox.exec(["true"])


async def test_expiry_waits_for_a_running_command(provider: SandboxProvider, repo: Path) -> None:
    sandbox = await provider.create(spec_for(repo))
    try:
        await sandbox.keep_alive(0.1)
        result = await sandbox.exec(["sh", "-c", "sleep 0.6; echo finished"])
        assert result.stdout == "finished\n" and result.exit_code == 0
    finally:
        await sandbox.close()


async def test_close_is_final_and_idempotent(provider: SandboxProvider, repo: Path) -> None:
    sandbox = await provider.create(spec_for(repo))
    assert await sandbox.is_alive()
    await sandbox.close()
    await sandbox.close()
    assert not await sandbox.is_alive()
    assert await provider.attach(sandbox.id) is None
    with pytest.raises(SandboxLost):
        await sandbox.exec(["true"])
    with pytest.raises(SandboxLost):
        await sandbox.diff()


async def test_idempotency_key_returns_the_same_sandbox(
    provider: SandboxProvider, repo: Path
) -> None:
    first = await provider.create(spec_for(repo, idempotency_key="run_abc"))
    try:
        second = await provider.create(spec_for(repo, idempotency_key="run_abc"))
        assert second.id == first.id
        other = await provider.create(spec_for(repo, idempotency_key="run_other"))
        assert other.id != first.id
        await other.close()
    finally:
        await first.close()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"network": {"mode": "bogus"}}, "network.mode"),
        ({"network": {"mode": "none", "allowlist": ("pypi.org",)}}, "network.allowlist"),
        ({"network": {"mode": "restricted", "allowlist": ("bad host",)}}, "network.allowlist[0]"),
        ({"limits": {"memory_mb": 0}}, "limits.memory_mb"),
        ({"limits": {"wall_seconds": -1.0}}, "limits.wall_seconds"),
        ({"env": {"BAD-NAME": "x"}}, "env"),
        ({"ref": "--upload-pack=evil"}, "ref"),
    ],
)
async def test_invalid_specs_are_rejected_naming_the_field(
    provider: SandboxProvider, repo: Path, changes: dict[str, object], field: str
) -> None:
    from writer.sandbox import NetworkPolicy

    values: dict[str, object] = {}
    for key, value in changes.items():
        if key == "network":
            values[key] = NetworkPolicy(**value)  # type: ignore[arg-type]
        elif key == "limits":
            values[key] = Limits(**value)  # type: ignore[arg-type]
        else:
            values[key] = value
    with pytest.raises(SandboxSpecError) as info:
        await provider.create(spec_for(repo, **values))
    assert info.value.field == field


async def test_concurrent_creates_on_one_repository_share_a_sound_mirror(
    provider: SandboxProvider, repo: Path
) -> None:
    sandboxes: list[Sandbox] = []

    async def create() -> None:
        sandboxes.append(await provider.create(spec_for(repo)))

    async with anyio.create_task_group() as group:
        for _ in range(6):
            group.start_soon(create)
    try:
        heads = {await sandbox.head() for sandbox in sandboxes}
        assert heads == {git(repo, "rev-parse", "HEAD").strip()}
        for index, sandbox in enumerate(sandboxes):
            await sandbox.write_file("who.txt", str(index).encode())
        contents = [await sandbox.read_file("who.txt") for sandbox in sandboxes]
        assert contents == [str(i).encode() for i in range(6)]
    finally:
        for sandbox in sandboxes:
            await sandbox.close()
    if provider.name == "local":
        mirrors = [p async for p in anyio.Path(provider.mirrors).glob("*.git")]  # type: ignore[attr-defined]
        assert len(mirrors) == 1
        fsck = await anyio.run_process(["git", "-C", str(mirrors[0]), "fsck"], check=False)
        assert fsck.returncode == 0, fsck.stderr


async def test_writgates_own_operations_are_not_bound_by_the_agents_wall_clock(
    provider: SandboxProvider, repo: Path
) -> None:
    sandbox = await provider.create(spec_for(repo, limits=Limits(wall_seconds=0.001)))
    # No sandboxed process starts within 1 ms: each of these would be cut short if bound.
    await sandbox.write_file("a.txt", b"x" * 1_000_000)
    assert len(await sandbox.read_file("a.txt")) == 1_000_000
    assert b"a.txt" in await sandbox.diff()
    assert len(await sandbox.head()) == 40
    slow = await sandbox.exec(["sleep", "5"])
    assert slow.timed_out
    await sandbox.close()
