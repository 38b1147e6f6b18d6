"""A whole writgate installation for crash tests: server and worker processes that a test may
SIGKILL and start again, a webhook receiver that can be down, and a look into the database."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
from sqlalchemy import select

from forge.local import LocalForge
from tests.support.waiting import eventually
from tests.support.webhook_receiver import Received, webhook_receiver
from writgate.app.database import open_database
from writgate.auth import KeyStore
from writgate.db import create_engine
from writgate.ledger import ledger_events
from writgate.settings import Settings

WRITGATE = str(Path(sys.executable).with_name("writgate"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """One ``writgate`` command as a subprocess; ``kill`` is a SIGKILL of that process only,
    like a crash (its sandboxes must die with it)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path):
        self.name = name
        self.argv = argv
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def spawn(self) -> None:
        """Start the process (without waiting for it to be ready)."""
        with self.log.open("ab") as output:
            output.write(f"--- start {self.starts + 1}\n".encode())
            output.flush()
            self.process = subprocess.Popen(
                [WRITGATE, *self.argv],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    def wait_ready(self, ready: Callable[[Process], bool]) -> None:
        def up() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.tail()}")
            return ready(self)

        eventually(up, timeout=90, what=f"{self.name} to start")

    def kill(self) -> None:
        """SIGKILL the process (not its group) and reap it, so its pid is free and dead."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.kills += 1
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """End the process and whatever it left behind (its session)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def http_ready(url: str) -> Callable[[Process], bool]:
    """Whether the server answers HTTP (uvicorn listens once the app's start-up is done)."""

    def ready(_process: Process) -> bool:
        try:
            httpx.get(f"{url}/api/v1/coding-agent/runs", timeout=2)
        except httpx.HTTPError:
            return False
        return True

    return ready


def worker_ready(process: Process) -> bool:
    """Whether the worker's latest start printed ``worker … started``."""
    return len(re.findall(r"^worker \S+ started$", process.tail(10**7), re.M)) >= process.starts


@dataclass
class Delivery:
    """One POST the receiver answered."""

    headers: dict[str, str]
    body: bytes
    status: int


class FlakyReceiver:
    """A webhook receiver on a fixed loopback port that is ``up``, ``refusing`` (not listening)
    or ``failing`` (answers 500); it records every request it answered."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self.mode = "refusing"
        self.seen: list[Delivery] = []
        self.truncated = 0
        self._lock = threading.Lock()
        self._stack: ExitStack | None = None

    def _respond(self, request: Received) -> tuple[int, bytes, float]:
        if len(request.body) != int(request.headers.get("content-length", -1)):
            # The sender died mid-request (SIGKILL): a receiver never sees such a message.
            with self._lock:
                self.truncated += 1
            return 400, b"incomplete body", 0.0
        status = 200 if self.mode == "up" else 500
        with self._lock:
            self.seen.append(Delivery(request.headers, request.body, status))
        return status, b"ok" if status == 200 else b"down", 0.02

    def set(self, mode: str) -> None:
        assert mode in ("up", "refusing", "failing")
        if mode == "refusing" and self._stack is not None:
            self._stack.close()
            self._stack = None
        elif mode != "refusing" and self._stack is None:
            stack = ExitStack()
            stack.enter_context(webhook_receiver(self._respond, port=self.port))
            self._stack = stack
        self.mode = mode

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def snapshot(self) -> list[Delivery]:
        with self._lock:
            return list(self.seen)


@contextmanager
def flaky_receiver() -> Iterator[FlakyReceiver]:
    receiver = FlakyReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


def prepare(settings: Settings, repository: str, seed: Path) -> str:
    """Migrate the database, create an API key of ``settings.org`` and ``repository`` on the
    local forge from ``seed`` — in this process, which is quicker than two CLI commands."""

    async def go() -> str:
        database = await open_database(settings)
        try:
            _key, token = await KeyStore(engine=database.engine).create(settings.org)
            forge = LocalForge(
                engine=database.engine,
                ledger=database.ledger,
                home=settings.home,
                org=settings.org,
            )
            await forge.create_repository(repository, from_dir=seed)
        finally:
            await database.dispose()
        return token

    return anyio.run(go)


@dataclass(frozen=True)
class LedgerRow:
    subject_id: str
    seq: int
    type: str
    data: dict[str, Any]


def read_ledger(database_url: str, org_id: str) -> list[LedgerRow]:
    """Every ledger event of ``org_id``, straight from the database."""

    async def go() -> list[LedgerRow]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                rows = (
                    await conn.execute(
                        select(ledger_events)
                        .where(ledger_events.c.org_id == org_id)
                        .order_by(ledger_events.c.subject_id, ledger_events.c.seq)
                    )
                ).all()
        finally:
            await engine.dispose()
        return [LedgerRow(r.subject_id, r.seq, r.type, dict(r.data)) for r in rows]

    return anyio.run(go)
