"""The egress proxy of ``restricted`` sandboxes: the only way out of an empty network namespace.

writgate runs one :class:`EgressProxy` per sandbox on the host, listening on a Unix socket that is
bound into the sandbox (a bridge inside forwards ``127.0.0.1:3128`` to it, and ``HTTP_PROXY`` /
``HTTPS_PROXY`` point there). It understands the two things an HTTP client does with a proxy:

- ``CONNECT host:port`` (https and any TLS): a tunnel, opened only to allowlisted hosts;
- a plain HTTP request in absolute form (``GET http://host/path``) or with a ``Host`` header:
  forwarded to allowlisted hosts as one request per connection (``Connection: close``).

Every decision is reported to ``on_egress(host, port, allowed)`` before it takes effect; when that
callback fails, the connection is denied (an egress that cannot be recorded does not happen).

The allowlist holds exact host names, ``*.`` wildcards (any sub-domain, not the domain itself), IP
literals, and optionally a ``:port`` suffix restricting the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import SandboxSpecError

__all__ = ["Allowlist", "EgressCallback", "EgressProxy"]

log = logging.getLogger(__name__)

EgressCallback = Callable[[str, int, bool], Awaitable[None]]
"""Receives each decision: ``(host, port, allowed)``."""

_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_HOST = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")
_MAX_HEAD = 64 * 1024
_CONNECT_TIMEOUT = 15.0
_CLOSE_SECONDS = 5.0  # how long close() waits for the cancelled tunnels to end


def _normalize(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


@dataclass(frozen=True)
class _Rule:
    host: str
    wildcard: bool
    port: int | None

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host


class Allowlist:
    """Which ``host:port`` pairs a restricted sandbox may reach."""

    def __init__(self, entries: Iterable[str]):
        self.rules: list[_Rule] = []
        for index, entry in enumerate(entries):
            self.rules.append(self._parse(entry, index))

    @staticmethod
    def _parse(entry: str, index: int) -> _Rule:
        field = f"network.allowlist[{index}]"
        text = entry.strip().lower()
        port: int | None = None
        if text.startswith("["):  # [::1]:443
            host, _, rest = text[1:].partition("]")
            if rest.startswith(":"):
                port = _port(rest[1:], field)
            elif rest:
                raise SandboxSpecError(f"invalid allowlist entry {entry!r}", field=field)
        elif text.count(":") == 1:
            host, _, port_text = text.partition(":")
            port = _port(port_text, field)
        else:
            host = text
        host = _normalize(host)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not _HOST.match(host):
                raise SandboxSpecError(
                    f"invalid allowlist entry {entry!r} (expected a host name, '*.domain' or an "
                    "IP address, optionally with ':port')",
                    field=field,
                ) from None
        wildcard = host.startswith("*.")
        return _Rule(host=host[2:] if wildcard else host, wildcard=wildcard, port=port)

    def allows(self, host: str, port: int) -> bool:
        """Whether ``host:port`` is allowlisted."""
        host = _normalize(host)
        return any(rule.matches(host, port) for rule in self.rules)


def _port(text: str, field: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise SandboxSpecError(f"invalid port {text!r}", field=field)
    return int(text)


def _split_host_port(authority: str, default_port: int) -> tuple[str, int] | None:
    authority = authority.strip()
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif authority.count(":") == 1:
        host, _, port_text = authority.partition(":")
    else:
        host, port_text = authority, ""
    if not host:
        return None
    if not port_text:
        return _normalize(host), default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return _normalize(host), int(port_text)


class EgressProxy:
    """An HTTP(S) proxy on a Unix socket that lets through only allowlisted hosts."""

    def __init__(self, *, socket_path: Path, allowlist: Allowlist, on_egress: EgressCallback):
        self.socket_path = socket_path
        self.allowlist = allowlist
        self.on_egress = on_egress
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on the Unix socket."""
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(self.socket_path), limit=_MAX_HEAD
        )
        self.socket_path.chmod(0o666)

    async def close(self) -> None:
        """Stop listening and cut every open tunnel.

        Bounded (``_CLOSE_SECONDS``), and a cancellation of the close itself propagates (it
        used to be swallowed with those of the tunnels, and the caller ran on).
        """
        if self._server is not None:
            self._server.close()
            self._server = None
        tunnels = set(self._tasks)
        try:
            for task in tunnels:
                task.cancel()
            if tunnels:
                await asyncio.wait(tunnels, timeout=_CLOSE_SECONDS)
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except ValueError:  # a malformed chunk size from the client
            pass
        except Exception:  # a bug here must not take the proxy down
            log.exception("egress proxy connection failed")
        finally:
            self._tasks.discard(task)
            if task.cancelling():  # the proxy closes: cut, do not wait for the client to read
                writer.transport.abort()
            else:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

    async def _decide(self, host: str, port: int) -> bool:
        allowed = self.allowlist.allows(host, port)
        try:
            await self.on_egress(host, port, allowed)
        except Exception:
            # An egress that cannot be recorded does not happen (fail closed).
            log.exception("egress callback failed; denying %s:%s", host, port)
            return False
        return allowed

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            await _reply(writer, 431, "Request Header Fields Too Large")
            return
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            await _reply(writer, 400, "Bad Request")
            return
        method, target, version = parts
        headers = [line for line in lines[1:] if line]
        if method.upper() == "CONNECT":
            await self._tunnel(target, reader, writer)
        else:
            await self._forward(method, target, version, headers, reader, writer)

    async def _tunnel(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        address = _split_host_port(target, 443)
        if address is None:
            await _reply(writer, 400, "Bad Request")
            return
        host, port = address
        if not await self._decide(host, port):
            await _reply(writer, 403, "Forbidden")
            return
        upstream = await _open(host, port)
        if upstream is None:
            await _reply(writer, 502, "Bad Gateway")
            return
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await writer.drain()
        await _pipe_both(reader, writer, *upstream)

    async def _forward(
        self,
        method: str,
        target: str,
        version: str,
        headers: list[str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        host_header = next(
            (h.split(":", 1)[1].strip() for h in headers if h.lower().startswith("host:")), None
        )
        if target.lower().startswith("http://"):
            url = urlsplit(target)
            authority = url.netloc.rpartition("@")[2]
            path = url.path or "/"
            if url.query:
                path += "?" + url.query
        elif target.startswith("/") and host_header:
            authority, path = host_header, target
        else:
            await _reply(writer, 400, "Bad Request")
            return
        address = _split_host_port(authority, 80)
        framing = _body_framing(headers)
        if address is None or framing is None:
            await _reply(writer, 400, "Bad Request")
            return
        host, port = address
        if not await self._decide(host, port):
            await _reply(writer, 403, "Forbidden")
            return
        upstream = await _open(host, port)
        if upstream is None:
            await _reply(writer, 502, "Bad Gateway")
            return
        kept = [
            h
            for h in headers
            if not h.lower().startswith(("proxy-", "connection:", "keep-alive:", "host:"))
        ]
        request = [f"{method} {path} {version}", f"Host: {authority}", *kept, "Connection: close"]
        up_reader, up_writer = upstream
        try:
            up_writer.write(("\r\n".join(request) + "\r\n\r\n").encode("latin-1"))
            await _copy_body(reader, up_writer, framing)
            # Exactly one request goes upstream: a second one pipelined behind it (perhaps
            # with another Host header for a shared server) is never read.
            await _pipe(up_reader, writer)
        finally:
            up_writer.close()


def _body_framing(headers: list[str]) -> int | str | None:
    """The request body's length, ``"chunked"``, or None when the framing is ambiguous."""
    lengths = {
        h.split(":", 1)[1].strip() for h in headers if h.lower().startswith("content-length:")
    }
    encodings = [
        h.split(":", 1)[1].strip().lower()
        for h in headers
        if h.lower().startswith("transfer-encoding:")
    ]
    if encodings:
        return "chunked" if encodings == ["chunked"] and not lengths else None
    if not lengths:
        return 0
    if len(lengths) != 1 or not next(iter(lengths)).isdigit():
        return None
    return int(next(iter(lengths)))


async def _copy_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, framing: int | str
) -> None:
    """Copy exactly one request body (fixed length or chunked) from the client upstream."""
    if isinstance(framing, int):
        remaining = framing
        while remaining:
            data = await reader.read(min(remaining, 65536))
            if not data:
                raise asyncio.IncompleteReadError(b"", remaining)
            writer.write(data)
            await writer.drain()
            remaining -= len(data)
        return
    while True:
        line = await reader.readuntil(b"\r\n")
        writer.write(line)
        size = int(line.split(b";", 1)[0].strip() or b"x", 16)
        if size == 0:
            while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                writer.write(trailer)
            writer.write(b"\r\n")
            await writer.drain()
            return
        writer.write(await reader.readexactly(size + 2))
        await writer.drain()


async def _open(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        return await asyncio.wait_for(asyncio.open_connection(host, port), _CONNECT_TIMEOUT)
    except (OSError, TimeoutError):
        return None


async def _reply(writer: asyncio.StreamWriter, status: int, reason: str) -> None:
    body = f"{status} {reason}: blocked or failed by the writgate egress proxy\n".encode()
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _pipe_both(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    try:
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
    finally:
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # the proxy closes: cut the tunnel
            up_writer.transport.abort()
        else:
            up_writer.close()
            with contextlib.suppress(Exception):
                await up_writer.wait_closed()
