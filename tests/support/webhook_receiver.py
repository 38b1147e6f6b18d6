"""A real HTTP webhook receiver on 127.0.0.1 for tests: records every request it gets."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One POST as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int


# An answer: (status, body), (status, body, delay seconds) or (status, body, delay, headers).
Responder = Callable[[Received], "tuple[Any, ...]"]


def always_ok(_request: Received) -> tuple[int, bytes]:
    return 200, b"ok"


@dataclass
class Receiver:
    """The receiver's record; ``respond`` chooses each answer (status, body[, delay])."""

    port: int
    respond: Responder = always_ok
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.requests)

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], *, timeout: float = 20.0
    ) -> list[Received]:
        """Poll the record until ``predicate`` holds (or fail after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.snapshot()
            if predicate(seen):
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: condition not met after {timeout}s: {seen!r}")
            time.sleep(0.02)


@contextmanager
def webhook_receiver(respond: Responder = always_ok, *, port: int = 0) -> Iterator[Receiver]:
    """Serve a :class:`Receiver` on 127.0.0.1 (``port`` 0: a free one) in a thread."""
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            receiver = holder["receiver"]
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            request = Received(
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                status=0,
            )
            answer: Any = receiver.respond(request)
            status, payload = answer[0], answer[1]
            if len(answer) > 2 and answer[2]:
                time.sleep(answer[2])
            request.status = status
            with receiver.lock:
                receiver.requests.append(request)
            try:
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(payload)))
                for name, value in (answer[3] if len(answer) > 3 else {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the sender gave up (timeout): nothing to answer

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            # A sender that went away mid-request (timeout, SIGKILL in crash tests) is not an
            # error of the receiver; anything else is printed as usual.
            if not isinstance(sys.exc_info()[1], ConnectionError):
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    receiver = Receiver(port=server.server_address[1], respond=respond)
    holder["receiver"] = receiver
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
