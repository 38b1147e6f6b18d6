"""A per-sandbox process that starts the sandbox's commands from *inside* its cgroup.

Moving a new process into a cgroup (a write to ``cgroup.procs``) waits for an RCU grace period
on cgroup v1, and a ``preexec_fn`` forces a full ``fork`` of writgate; together they cost more
than bubblewrap itself. So each sandbox gets one small helper, moved into the cgroup once when the
sandbox is created: it receives ``(argv, env)`` and the three standard-stream pipes over a Unix
socket (``SCM_RIGHTS``), ``posix_spawn``s the command (which inherits the cgroup for free) and
reports its pid and exit status. It dies with writgate (``PR_SET_PDEATHSIG``) and kills what it
started when writgate closes the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import SandboxError

__all__ = ["SPAWNER_SOURCE", "SpawnedProcess", "Spawner"]

SPAWNER_SOURCE = r"""
import ctypes, json, os, signal, socket, sys, threading

parent = os.getppid()
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
if os.getppid() != parent:
    os._exit(1)
control = socket.socket(fileno=int(sys.argv[1]))
control.set_inheritable(False)
lock = threading.Lock()
children = {}  # pid -> request id
spawned = threading.Event()


def send(message):
    control.send(json.dumps(message).encode())


def reap():
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            spawned.wait()
            spawned.clear()
            continue
        with lock:
            request = children.pop(pid, None)
            if request is not None:
                send({"id": request, "exit": os.waitstatus_to_exitcode(status)})


threading.Thread(target=reap, daemon=True).start()
while True:
    try:
        data, fds, _, _ = socket.recv_fds(control, 1 << 20, 3)
    except OSError:
        data, fds = b"", []
    if not data:
        for pid in list(children):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        os._exit(0)
    for fd in fds:
        os.set_inheritable(fd, False)
    request = json.loads(data)
    with lock:
        try:
            actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(fds)]
            pid = os.posix_spawnp(
                request["argv"][0], request["argv"], request["env"],
                file_actions=actions, setsid=True,
            )
        except OSError as exc:
            send({"id": request["id"], "error": "%s: %s" % (request["argv"][0], exc.strerror)})
        else:
            children[pid] = request["id"]
            send({"id": request["id"], "pid": pid})
            spawned.set()
        finally:
            for fd in fds:
                os.close(fd)
"""


class SpawnedProcess:
    """A command the spawner started: the parts of ``asyncio.subprocess.Process`` writgate uses."""

    def __init__(
        self,
        pid: int,
        stdin: asyncio.StreamWriter | None,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
        exit_code: asyncio.Future[int],
        transports: Sequence[asyncio.BaseTransport],
    ):
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self._exit_code = exit_code
        self._transports = transports

    def close_pipes(self) -> None:
        """Close writgate's ends of the pipes (after the output was read, or on failure)."""
        for transport in self._transports:
            transport.close()

    @property
    def returncode(self) -> int | None:
        future = self._exit_code
        if future.done() and not future.cancelled() and future.exception() is None:
            return future.result()
        return None

    async def wait(self) -> int:
        return await asyncio.shield(self._exit_code)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


class Spawner:
    """The writgate side of one sandbox's spawner process."""

    EXIT_SECONDS = 5.0
    """How long :meth:`close` waits for the helper to exit, and again after killing it."""

    def __init__(self) -> None:
        self._socket: socket.socket | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._next_id = 0
        self._started: dict[int, asyncio.Future[int]] = {}
        self._exited: dict[int, asyncio.Future[int]] = {}

    async def start(self, *, preexec_fn: Callable[[], None] | None) -> None:
        """Start the helper (``preexec_fn`` moves it into the sandbox's cgroup)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-S",
                "-c",
                SPAWNER_SOURCE,
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                preexec_fn=preexec_fn,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        self._socket = ours
        asyncio.get_running_loop().add_reader(ours.fileno(), self._receive)

    @property
    def alive(self) -> bool:
        return (
            self._socket is not None
            and self._process is not None
            and self._process.returncode is None
        )

    def _receive(self) -> None:
        assert self._socket is not None
        while True:
            try:
                data = self._socket.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._fail_all("the sandbox spawner stopped")
                self._detach()
                return
            message: dict[str, Any] = json.loads(data)
            request = int(message["id"])
            if "pid" in message:
                _resolve(self._started.pop(request, None), int(message["pid"]))
            elif "exit" in message:
                _resolve(self._exited.pop(request, None), int(message["exit"]))
            else:
                error = SandboxError(f"cannot start the command: {message.get('error')}")
                started = self._started.pop(request, None)
                if started is not None and not started.done():
                    started.set_exception(error)
                self._exited.pop(request, None)

    def _fail_all(self, reason: str) -> None:
        for future in [*self._started.values(), *self._exited.values()]:
            if not future.done():
                future.set_exception(SandboxError(reason))
                # Nobody may await it any more (its exec was cancelled and killed the
                # process): mark the exception retrieved so asyncio does not report it.
                future.exception()
        self._started.clear()
        self._exited.clear()

    def _detach(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._socket.fileno())
            self._socket.close()
            self._socket = None

    async def spawn(
        self, argv: Sequence[str], env: Mapping[str, str], *, with_stdin: bool
    ) -> SpawnedProcess:
        """Start ``argv`` through the helper, with fresh pipes for its standard streams."""
        if not self.alive:
            raise SandboxError("the sandbox spawner is not running")
        assert self._socket is not None
        loop = asyncio.get_running_loop()
        out_read, out_write = os.pipe()  # close-on-exec on our side
        err_read, err_write = os.pipe()
        if with_stdin:
            in_read, in_write = os.pipe()
        else:
            in_read, in_write = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), -1
        child_fds = [in_read, out_write, err_write]
        request = self._next_id = self._next_id + 1
        started: asyncio.Future[int] = loop.create_future()
        exited: asyncio.Future[int] = loop.create_future()
        self._started[request] = started
        self._exited[request] = exited
        try:
            payload = json.dumps({"id": request, "argv": list(argv), "env": dict(env)}).encode()
            await _send_fds(self._socket, payload, child_fds)
        except OSError as exc:
            self._started.pop(request, None)
            self._exited.pop(request, None)
            for fd in (in_write, out_read, err_read):
                if fd >= 0:
                    os.close(fd)
            raise SandboxError(f"cannot reach the sandbox spawner: {exc}") from exc
        finally:
            for fd in child_fds:
                os.close(fd)
        transports: list[asyncio.BaseTransport] = []
        try:
            stdout = await _reader(loop, out_read, transports)
            stderr = await _reader(loop, err_read, transports)
            stdin = await _writer(loop, in_write, transports) if with_stdin else None
            pid = await started
        except BaseException:
            for transport in transports:
                transport.close()
            raise
        return SpawnedProcess(pid, stdin, stdout, stderr, exited, transports)

    async def close(self) -> None:
        """Stop the helper; it kills whatever it started that still runs.

        Bounded: the helper gets ``EXIT_SECONDS`` to exit, then is killed and waited for as long
        again; a helper that is still not gone is left to the sandbox's cgroup kill.
        """
        self._detach()
        self._fail_all("the sandbox was closed while the command ran")
        process = self._process
        if process is None or process.returncode is not None:
            return
        # asyncio.wait, not wait_for: on Python 3.11 wait_for may swallow a cancellation.
        exited = asyncio.ensure_future(process.wait())
        try:
            if not (await asyncio.wait({exited}, timeout=self.EXIT_SECONDS))[0]:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await asyncio.wait({exited}, timeout=self.EXIT_SECONDS)
        finally:
            if not exited.done():
                exited.cancel()


def _resolve(future: asyncio.Future[int] | None, value: int) -> None:
    if future is not None and not future.done():
        future.set_result(value)


async def _send_fds(sock: socket.socket, payload: bytes, fds: list[int]) -> None:
    """Send one message with file descriptors on the non-blocking socket (it rarely waits)."""
    for _ in range(1000):
        try:
            socket.send_fds(sock, [payload], fds)
            return
        except BlockingIOError:
            await asyncio.sleep(0.005)
    raise OSError("the sandbox spawner does not read its socket")


async def _reader(
    loop: asyncio.AbstractEventLoop, fd: int, transports: list[asyncio.BaseTransport]
) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=1 << 20)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    transports.append(transport)
    return reader


async def _writer(
    loop: asyncio.AbstractEventLoop, fd: int, transports: list[asyncio.BaseTransport]
) -> asyncio.StreamWriter:
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(fd, "wb", buffering=0)
    )
    transports.append(transport)
    return asyncio.StreamWriter(transport, protocol, None, loop)
