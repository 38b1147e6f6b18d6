"""The egress proxy on its Unix socket, driven directly (every upstream is on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from writer.sandbox.egress import Allowlist, EgressProxy

pytestmark = pytest.mark.anyio


class Upstream:
    """An HTTP server on 127.0.0.1 that echoes the request head it received."""

    def __init__(self) -> None:
        self.heads: list[str] = []
        self.bodies: list[bytes] = []
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            self.heads.append(head)
            if "Content-Length: " in head:
                length = int(head.split("Content-Length: ")[1].split("\r\n")[0])
                self.bodies.append(await reader.readexactly(length))
            elif "Transfer-Encoding: chunked" in head:
                self.bodies.append(await reader.readuntil(b"0\r\n\r\n"))
            body = b"upstream says hi"
            writer.write(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = Upstream()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


Decision = tuple[str, int, bool]


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[EgressProxy, list[Decision]]]:
    decisions: list[Decision] = []

    async def on_egress(host: str, port: int, allowed: bool) -> None:
        decisions.append((host, port, allowed))

    with tempfile.TemporaryDirectory(prefix="wgt-") as directory:
        proxy = EgressProxy(
            socket_path=Path(directory) / "egress.sock",
            allowlist=Allowlist(["localhost", "*.localhost"]),
            on_egress=on_egress,
        )
        await proxy.start()
        try:
            yield proxy, decisions
        finally:
            await proxy.close()
        assert not (Path(directory) / "egress.sock").exists()


async def ask(proxy: EgressProxy, request: bytes) -> bytes:
    reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data


async def test_absolute_form_is_forwarded_in_origin_form(
    proxy: tuple[EgressProxy, list[Decision]], upstream: Upstream
) -> None:
    server, decisions = proxy
    reply = await ask(
        server,
        f"GET http://localhost:{upstream.port}/path?q=1 HTTP/1.1\r\n"
        f"Host: localhost:{upstream.port}\r\nProxy-Authorization: Basic c2VjcmV0\r\n"
        "Proxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n".encode(),
    )
    assert reply.startswith(b"HTTP/1.1 200 OK")
    assert reply.endswith(b"upstream says hi")
    head = upstream.heads[0]
    assert head.startswith("GET /path?q=1 HTTP/1.1\r\n")
    assert "Proxy-" not in head  # proxy credentials never go upstream
    assert "Accept: */*" in head and "Connection: close" in head
    assert decisions == [("localhost", upstream.port, True)]


async def test_origin_form_uses_the_host_header(
    proxy: tuple[EgressProxy, list[Decision]], upstream: Upstream
) -> None:
    server, decisions = proxy
    reply = await ask(server, f"GET / HTTP/1.1\r\nHost: localhost:{upstream.port}\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 200 OK")
    denied = await ask(
        server, f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{upstream.port}\r\n\r\n".encode()
    )
    assert denied.startswith(b"HTTP/1.1 403 Forbidden")
    assert decisions == [("localhost", upstream.port, True), ("127.0.0.1", upstream.port, False)]
    assert len(upstream.heads) == 1


async def test_connect_tunnels_only_to_allowlisted_hosts(
    proxy: tuple[EgressProxy, list[Decision]], upstream: Upstream
) -> None:
    server, decisions = proxy
    reader, writer = await asyncio.open_unix_connection(str(server.socket_path))
    writer.write(f"CONNECT localhost:{upstream.port} HTTP/1.1\r\n\r\n".encode())
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    writer.write(b"GET /tunnelled HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(reader.read(), 10)).endswith(b"upstream says hi")
    writer.close()
    assert upstream.heads[0].startswith("GET /tunnelled ")
    denied = await ask(server, b"CONNECT example.com:443 HTTP/1.1\r\n\r\n")
    assert denied.startswith(b"HTTP/1.1 403")
    assert decisions == [("localhost", upstream.port, True), ("example.com", 443, False)]


async def test_bad_requests_and_unreachable_upstreams(
    proxy: tuple[EgressProxy, list[Decision]],
) -> None:
    server, decisions = proxy
    assert (await ask(server, b"NONSENSE\r\n\r\n")).startswith(b"HTTP/1.1 400")
    assert (await ask(server, b"GET /no-host HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 400")
    huge = b"GET http://localhost/ HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n"
    assert (await ask(server, huge)).startswith(b"HTTP/1.1 431")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    reply = await ask(server, f"CONNECT localhost:{closed_port} HTTP/1.1\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 502")
    assert decisions == [("localhost", closed_port, True)]


async def test_an_egress_that_cannot_be_recorded_is_denied(upstream: Upstream) -> None:
    async def broken(host: str, port: int, allowed: bool) -> None:
        raise RuntimeError("ledger down")

    with tempfile.TemporaryDirectory(prefix="wgt-") as directory:
        proxy = EgressProxy(
            socket_path=Path(directory) / "e.sock",
            allowlist=Allowlist(["localhost"]),
            on_egress=broken,
        )
        await proxy.start()
        try:
            reply = await ask(proxy, f"CONNECT localhost:{upstream.port} HTTP/1.1\r\n\r\n".encode())
            assert reply.startswith(b"HTTP/1.1 403")
            assert upstream.heads == []
        finally:
            await proxy.close()


async def test_exactly_one_request_with_its_body_goes_upstream(
    proxy: tuple[EgressProxy, list[Decision]], upstream: Upstream
) -> None:
    server, _ = proxy
    target = f"http://localhost:{upstream.port}"
    smuggled = b"GET /second HTTP/1.1\r\nHost: not-allowlisted.example\r\n\r\n"
    reply = await ask(
        server,
        f"POST {target}/form HTTP/1.1\r\nContent-Length: 5\r\n\r\n".encode() + b"hello" + smuggled,
    )
    assert reply.endswith(b"upstream says hi")
    reply = await ask(
        server,
        f"POST {target}/chunks HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n"
        + smuggled,
    )
    assert reply.endswith(b"upstream says hi")
    assert [head.split("\r\n")[0] for head in upstream.heads] == [
        "POST /form HTTP/1.1",
        "POST /chunks HTTP/1.1",
    ]
    assert upstream.bodies == [b"hello", b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n"]


@pytest.mark.parametrize(
    "headers",
    [
        "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
        "Content-Length: 3\r\nContent-Length: 4\r\n",
        "Transfer-Encoding: gzip, chunked\r\n",
        "Content-Length: -1\r\n",
    ],
)
async def test_ambiguous_request_framing_is_refused(
    proxy: tuple[EgressProxy, list[Decision]], upstream: Upstream, headers: str
) -> None:
    server, decisions = proxy
    reply = await ask(
        server, f"POST http://localhost:{upstream.port}/ HTTP/1.1\r\n{headers}\r\nabc".encode()
    )
    assert reply.startswith(b"HTTP/1.1 400")
    assert upstream.heads == [] and decisions == []
