"""A TCP proxy on 127.0.0.1 that loses answers on purpose, for client retry and resume tests.

Each accepted connection is relayed to the upstream server. A *rule* may apply to a connection
whose first request line starts with a given prefix (``POST /api/v1/coding-agent/runs ``):

- ``drop_answer``: forward the request, wait for the server's first answer bytes (so the
  server has done the work and committed), then close the client's socket without relaying
  anything — the client sees the connection die with the answer lost;
- ``cut_after``: relay the answer but close after a number of bytes (a dropped SSE stream);
- ``answer``: do not contact the server; send a canned HTTP response instead.

``requests`` records the head (request line and headers) of every request that arrived.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


@dataclass
class Rule:
    """What to do with the next ``times`` connections whose first request starts with ``prefix``."""

    prefix: bytes
    times: int
    drop_answer: bool = False
    cut_after: Callable[[], int] | None = None
    answer: bytes | None = None


@dataclass
class LossyProxy:
    upstream: tuple[str, int]
    rules: list[Rule] = field(default_factory=list)
    requests: list[bytes] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _rule_for(self, head: bytes) -> Rule | None:
        with self._lock:
            self.requests.append(head.split(b"\r\n\r\n", 1)[0])
            for rule in self.rules:
                if rule.times > 0 and head.startswith(rule.prefix):
                    rule.times -= 1
                    return rule
        return None

    def handle(self, client: socket.socket) -> None:
        with contextlib.ExitStack() as stack:
            stack.enter_context(client)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            rule = self._rule_for(head)
            if rule is not None and rule.answer is not None:
                self.applied.append("answer")
                client.sendall(rule.answer)
                return
            upstream = stack.enter_context(socket.create_connection(self.upstream))
            upstream.sendall(head)
            # Client -> server: everything else the client sends (bodies, later requests).
            pump = threading.Thread(target=_pump, args=(client, upstream), daemon=True)
            pump.start()
            limit = None
            if rule is not None and rule.drop_answer:
                first = upstream.recv(65536)  # the server answered: its work is done
                self.applied.append(f"drop_answer ({len(first)} bytes lost)")
                client.shutdown(socket.SHUT_RDWR)
                return
            if rule is not None and rule.cut_after is not None:
                limit = rule.cut_after()
                self.applied.append(f"cut_after {limit}")
            sent = 0
            while True:
                try:
                    chunk = upstream.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                if limit is not None and sent + len(chunk) >= limit:
                    with contextlib.suppress(OSError):  # the client may have hung up already
                        client.sendall(chunk[: limit - sent])
                        client.shutdown(socket.SHUT_RDWR)
                    return
                try:
                    client.sendall(chunk)
                except OSError:
                    return
                sent += len(chunk)


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def lossy_proxy(base_url: str) -> Iterator[tuple[str, LossyProxy]]:
    """A proxy in front of ``base_url`` (http://127.0.0.1:PORT); yields its URL and itself."""
    host, port = base_url.removeprefix("http://").split(":")
    proxy = LossyProxy(upstream=(host, int(port)))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=proxy.handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", proxy
    finally:
        stop.set()
        listener.close()
        thread.join(5)
