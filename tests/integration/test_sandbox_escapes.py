"""Escapes that must fail, and the network paths that must work, on real bubblewrap sandboxes.

Every network target is a server this test runs on the host's 127.0.0.1 (never another address).
"""

from __future__ import annotations

import asyncio
import os
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from tests.conftest import git
from writer.sandbox import Limits, NetworkPolicy, SandboxEvent, SandboxLost, SandboxSpec
from writer.sandbox.local import LocalProvider, LocalSandbox

pytestmark = pytest.mark.anyio

PAGE = "hello from the host loopback"


class LoopbackServer:
    """A tiny HTTP server on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            body = PAGE.encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def server() -> AsyncIterator[LoopbackServer]:
    server = LoopbackServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class Events:
    def __init__(self) -> None:
        self.items: list[SandboxEvent] = []

    async def __call__(self, event: SandboxEvent) -> None:
        self.items.append(event)

    def egress(self) -> list[tuple[str, int, bool]]:
        return [
            (e.data["host"], e.data["port"], e.data["allowed"])
            for e in self.items
            if e.type == "sandbox.egress"
        ]


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
async def provider(tmp_path: Path, events: Events) -> AsyncIterator[LocalProvider]:
    provider = LocalProvider(home=tmp_path / "home", on_event=events)
    try:
        yield provider
    finally:
        await provider.aclose()


def spec(repo: Path, **changes: object) -> SandboxSpec:
    values: dict[str, object] = {"repository_url": str(repo), "ref": "main"}
    values.update(changes)
    return SandboxSpec(**values)  # type: ignore[arg-type]


async def python(sandbox: LocalSandbox, source: str, **kwargs: object) -> tuple[int, str]:
    """Run a Python program with the sandbox's system python3; (exit code, stdout+stderr)."""
    result = await sandbox.exec(
        ["python3", "-c", textwrap.dedent(source)],
        **kwargs,  # type: ignore[arg-type]
    )
    return result.exit_code, result.stdout + result.stderr


# ------------------------------------------------------------------ filesystem and environment


async def test_writes_outside_the_workspace_never_reach_the_host(
    provider: LocalProvider, git_repo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    sandbox = await provider.create(spec(git_repo))
    try:
        mirror = sandbox.directory / "mirror.git"
        mirror_files_before = sorted(p.name for p in mirror.resolve().iterdir())
        script = f"""
            for target in /usr/pwned /etc/pwned /etc/passwd /mirror.git/pwned \
                          /mirror.git/objects/pwned; do
                if echo pwned > "$target" 2>/dev/null; then echo "WROTE $target"; fi
            done
            mkdir -p {outside} && echo pwned > {outside}/pwned
            ln -s {outside}/via-link link
            echo done
        """
        result = await sandbox.exec(["sh", "-c", script])
        assert "WROTE" not in result.stdout, result.stdout
        assert result.stdout.strip().endswith("done")
        # The host path only existed in the sandbox's own throw-away root.
        assert not (outside / "pwned").exists()
        # File access from the host side follows the symlink inside the sandbox, not on the host.
        await sandbox.write_file("link", b"through the link")
        assert not (outside / "via-link").exists()
        assert not await anyio.Path("/usr/pwned").exists()
        assert sorted(p.name for p in mirror.resolve().iterdir()) == mirror_files_before
        assert "pwned" not in (sandbox._etc / "passwd").read_text()
        assert not (sandbox._etc / "pwned").exists()
    finally:
        await sandbox.close()


async def test_host_home_files_and_parent_secrets_are_invisible(
    provider: LocalProvider, git_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s3cr3t-token-value-1234"
    monkeypatch.setenv("WRITGATE_SECRET_TOKEN", secret)
    monkeypatch.setenv("GITHUB_TOKEN", secret)
    secret_file = tmp_path / "host-secret.txt"
    secret_file.write_text(secret)
    sandbox = await provider.create(spec(git_repo, env={"ALLOWED": "yes"}))
    try:
        host_home = str(await anyio.Path.home())
        script = f"""
            env
            cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'
            cat {secret_file} 2>&1
            ls -a {host_home} 2>&1
            ls /etc
        """
        result = await sandbox.exec(["sh", "-c", script])
        output = result.stdout + result.stderr
        assert "ALLOWED=yes" in output
        assert secret not in output
        assert "WRITGATE_" not in output
        assert "No such file or directory" in output  # the host file and home are not there
        # Its own PID namespace: bwrap's init is PID 1 and no host process is visible.
        processes = await sandbox.exec(
            ["sh", "-c", "cat /proc/1/comm; ls /proc | grep -c '^[0-9]'"]
        )
        comm, count = processes.stdout.split()
        assert comm == "bwrap" and int(count) <= 6
        assert len([p for p in os.listdir("/proc") if p.isdigit()]) > int(count)
        assert "shadow" not in result.stdout.split()
    finally:
        await sandbox.close()


# ------------------------------------------------------------------ network


@pytest.mark.parametrize("mode", ["none", "restricted"])
async def test_direct_tcp_to_the_host_loopback_is_impossible(
    provider: LocalProvider, git_repo: Path, server: LoopbackServer, mode: str
) -> None:
    network = NetworkPolicy(mode=mode, allowlist=("localhost",) if mode == "restricted" else ())  # type: ignore[arg-type]
    sandbox = await provider.create(spec(git_repo, network=network))
    try:
        code, output = await python(
            sandbox,
            f"""
            import socket
            for host in ("127.0.0.1", "::1"):
                try:
                    socket.create_connection((host, {server.port}), timeout=3).close()
                    print("CONNECTED", host)
                except OSError as exc:
                    print("refused", host, exc)
            """,
        )
        assert code == 0, output
        assert "CONNECTED" not in output
        assert [line.split()[:2] for line in output.splitlines()] == [
            ["refused", "127.0.0.1"],
            ["refused", "::1"],
        ]
        assert server.connections == 0
    finally:
        await sandbox.close()


PROXY_EVERYTHING = {"NO_PROXY": "", "no_proxy": ""}

PROXIED_GET = """
import os, urllib.request, urllib.error
try:
    with urllib.request.urlopen("http://{host}:{port}/", timeout=10) as response:
        print("STATUS", response.status, response.read().decode())
except urllib.error.HTTPError as exc:
    print("STATUS", exc.code)
"""

CONNECT_TUNNEL = """
import socket
proxy = socket.create_connection(("127.0.0.1", 3128), timeout=10)
proxy.sendall(b"CONNECT {host}:{port} HTTP/1.1\\r\\nHost: {host}:{port}\\r\\n\\r\\n")
reply = proxy.recv(4096).decode()
print("CONNECT", reply.split("\\r\\n")[0])
if " 200 " in reply:
    proxy.sendall(b"GET / HTTP/1.1\\r\\nHost: tunnel\\r\\n\\r\\n")
    data = b""
    while chunk := proxy.recv(4096):
        data += chunk
    print("TUNNEL", data.decode().split("\\r\\n\\r\\n", 1)[1])
"""


async def test_allowlisted_host_is_reachable_through_the_proxy(
    provider: LocalProvider, git_repo: Path, server: LoopbackServer, events: Events
) -> None:
    network = NetworkPolicy(mode="restricted", allowlist=("localhost",))
    sandbox = await provider.create(spec(git_repo, network=network))
    try:
        # Inside the sandbox "localhost" is the sandbox itself (NO_PROXY keeps it local); here
        # the test's host server is the allowlisted "localhost", so the client is told to proxy it.
        code, output = await python(
            sandbox, PROXIED_GET.format(host="localhost", port=server.port), env=PROXY_EVERYTHING
        )
        assert code == 0, output
        assert f"STATUS 200 {PAGE}" in output
        code, output = await python(
            sandbox, CONNECT_TUNNEL.format(host="localhost", port=server.port)
        )
        assert code == 0, output
        assert "CONNECT HTTP/1.1 200 Connection Established" in output
        assert f"TUNNEL {PAGE}" in output
        assert server.connections == 2
        assert events.egress() == [
            ("localhost", server.port, True),
            ("localhost", server.port, True),
        ]
        assert all(e.sandbox_id == sandbox.id for e in events.items)
    finally:
        await sandbox.close()


async def test_a_host_off_the_allowlist_is_denied_by_the_proxy(
    provider: LocalProvider, git_repo: Path, server: LoopbackServer, events: Events
) -> None:
    network = NetworkPolicy(mode="restricted", allowlist=("localhost",))
    sandbox = await provider.create(spec(git_repo, network=network, labels={"runId": "run_x"}))
    try:
        code, output = await python(
            sandbox, PROXIED_GET.format(host="127.0.0.1", port=server.port), env=PROXY_EVERYTHING
        )
        assert code == 0, output
        assert "STATUS 403" in output
        code, output = await python(
            sandbox, CONNECT_TUNNEL.format(host="127.0.0.1", port=server.port)
        )
        assert "CONNECT HTTP/1.1 403 Forbidden" in output
        assert "TUNNEL" not in output
        assert server.connections == 0
        assert events.egress() == [
            ("127.0.0.1", server.port, False),
            ("127.0.0.1", server.port, False),
        ]
        assert events.items[0].labels == {"runId": "run_x"}
    finally:
        await sandbox.close()


async def test_open_network_reaches_the_host_loopback(
    provider: LocalProvider, git_repo: Path, server: LoopbackServer
) -> None:
    sandbox = await provider.create(spec(git_repo, network=NetworkPolicy(mode="open")))
    try:
        code, output = await python(sandbox, PROXIED_GET.format(host="127.0.0.1", port=server.port))
        assert code == 0, output
        assert f"STATUS 200 {PAGE}" in output
        assert server.connections == 1
    finally:
        await sandbox.close()


async def test_the_sandbox_loopback_stays_local_in_restricted_mode(
    provider: LocalProvider, git_repo: Path, events: Events
) -> None:
    """A server the sandbox runs on its own 127.0.0.1 is reached directly, not via the proxy."""
    sandbox = await provider.create(spec(git_repo, network=NetworkPolicy(mode="restricted")))
    try:
        code, output = await python(
            sandbox,
            """
            import http.server, threading, urllib.request
            server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            with urllib.request.urlopen(f"http://localhost:{server.server_port}/", timeout=10) as r:
                print("LOCAL", r.status)
            """,
        )
        assert code == 0, output
        assert "LOCAL 200" in output
        assert events.egress() == []
    finally:
        await sandbox.close()


# ------------------------------------------------------------------ resources and time


async def test_a_fork_bomb_is_contained_and_the_host_is_unaffected(
    provider: LocalProvider, git_repo: Path
) -> None:
    sandbox = await provider.create(spec(git_repo, limits=Limits(processes=32)))
    try:
        _, output = await python(
            sandbox,
            """
            import os, time
            forked = 0
            try:
                for _ in range(500):
                    if os.fork() == 0:
                        time.sleep(30)
                        os._exit(0)
                    forked += 1
            except OSError as exc:
                print("fork refused after", forked, exc.strerror)
            else:
                print("forked", forked)
            """,
            timeout=30,
        )
        assert "fork refused after" in output, output
        assert int(output.split("after")[1].split()[0]) < 32
        started = time.monotonic()
        # The shell stays for a second while the bomb grows; then its exit (or the timeout)
        # takes the whole PID namespace down.
        result = await sandbox.exec(
            ["sh", "-c", "bomb() { bomb | bomb & }; bomb; sleep 1"], timeout=10
        )
        assert "Cannot fork" in result.stderr  # it hit the process limit
        assert time.monotonic() - started < 15
        # The host still forks, and the sandbox keeps working after the bomb was killed.
        assert (await anyio.run_process(["true"])).returncode == 0
        after = await sandbox.exec(["echo", "alive"])
        assert after.stdout == "alive\n"
    finally:
        await sandbox.close()


async def test_a_memory_hog_is_killed_and_the_host_is_unaffected(
    provider: LocalProvider, git_repo: Path
) -> None:
    sandbox = await provider.create(spec(git_repo, limits=Limits(memory_mb=128)))
    try:
        started = time.monotonic()
        code, output = await python(
            sandbox,
            """
            blocks = []
            for i in range(200):
                blocks.append(b"x" * (10 * 1024 * 1024))
            print("ALLOCATED 2 GB")
            """,
            timeout=60,
        )
        assert code != 0
        assert "ALLOCATED" not in output
        assert time.monotonic() - started < 30
        after = await sandbox.exec(["echo", "alive"])
        assert after.stdout == "alive\n"
    finally:
        await sandbox.close()


async def test_cpu_seconds_limit_stops_a_busy_loop(provider: LocalProvider, git_repo: Path) -> None:
    sandbox = await provider.create(spec(git_repo, limits=Limits(cpu_seconds=1)))
    try:
        result = await sandbox.exec(["python3", "-c", "while True: pass"], timeout=30)
        assert not result.timed_out
        assert result.exit_code != 0
        assert result.duration_seconds < 20
    finally:
        await sandbox.close()


async def _ticks(sandbox: LocalSandbox) -> int:
    return len(await sandbox.read_file("ticks"))


async def test_a_background_process_dies_with_its_command(
    provider: LocalProvider, git_repo: Path
) -> None:
    sandbox = await provider.create(spec(git_repo))
    try:
        script = """
            ( trap '' HUP TERM; while true; do echo tick >> /workspace/ticks; sleep 0.02; done ) &
            setsid sh -c 'while true; do echo tick >> /workspace/ticks; sleep 0.02; done' &
            sleep 1
            echo parent-exits
        """
        result = await sandbox.exec(["sh", "-c", script], timeout=30)
        assert result.stdout == "parent-exits\n"
        assert result.duration_seconds < 10
        first = await _ticks(sandbox)
        assert first > 0
        await anyio.sleep(0.5)  # the writers would have added ~50 lines by now
        assert await _ticks(sandbox) == first
    finally:
        await sandbox.close()


async def test_a_process_outliving_the_wall_clock_is_killed(
    provider: LocalProvider, git_repo: Path
) -> None:
    sandbox = await provider.create(spec(git_repo, limits=Limits(wall_seconds=1.5)))
    try:
        script = """
            ( trap '' HUP TERM INT; while true; do echo tick >> ticks; sleep 0.02; done ) &
            trap '' HUP TERM INT
            wait
        """
        result = await sandbox.exec(["sh", "-c", script])
        assert result.timed_out
        assert result.duration_seconds < 10
        first = await _ticks(sandbox)
        assert first > 0
        await anyio.sleep(0.5)
        assert await _ticks(sandbox) == first
    finally:
        await sandbox.close()


async def test_close_kills_running_commands_and_removes_everything(
    provider: LocalProvider, git_repo: Path
) -> None:
    sandbox = await provider.create(spec(git_repo, network=NetworkPolicy(mode="restricted")))
    directory = sandbox.directory
    assert directory.is_dir()
    results: list[object] = []

    async def run() -> None:
        try:
            await sandbox.exec(["sleep", "60"])
        except SandboxLost as exc:
            results.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        with anyio.fail_after(10):
            while True:
                if sandbox._processes:
                    break
                await anyio.sleep(0.01)
        started = time.monotonic()
        await sandbox.close()
    assert time.monotonic() - started < 10
    assert [type(r) for r in results] == [SandboxLost]
    assert not directory.exists()
    mirror = next((provider.mirrors).glob("*.git"))
    assert git(mirror, "for-each-ref", "refs/writgate/") == ""
