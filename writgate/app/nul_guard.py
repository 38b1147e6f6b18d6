"""Refuse NUL characters at the edge of the HTTP API.

No id, filter or stored text of writgate may hold U+0000 (PostgreSQL refuses it in ``text`` and
``jsonb``), so a request that carries one in its path, a query parameter or a string of its JSON
body is refused here with a 422 naming the field, instead of failing deep inside a store with a
500 on PostgreSQL and succeeding on SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["NulGuard", "nul_field"]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_MESSAGE = "must not contain a NUL (\\u0000) character"


def _pointer_of_nul(value: Any, pointer: str = "") -> str | None:
    if isinstance(value, str):
        return (pointer or "/") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            escaped = str(key).replace("~", "~0").replace("/", "~1")
            if "\x00" in str(key):
                return f"{pointer}/{escaped}"
            found = _pointer_of_nul(item, f"{pointer}/{escaped}")
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _pointer_of_nul(item, f"{pointer}/{index}")
            if found is not None:
                return found
    return None


def nul_field(path: str, query_string: bytes, body: bytes | None = None) -> tuple[str, str] | None:
    """Where a NUL is, if anywhere: (field, location) with the field ``path``, ``/<query
    parameter>`` or a JSON pointer into the body, and the location ``path|query|body``."""
    if "\x00" in path:
        return "path", "path"
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return "/" + name.replace("\x00", ""), "query"
    if body and (b"\\u0000" in body or b"\x00" in body):
        try:
            pointer = _pointer_of_nul(json.loads(body))
        except (ValueError, RecursionError):
            return None  # not JSON (or too deep): the route's own parsing reports it
        return (pointer, "body") if pointer is not None else None
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return b"json" in value.lower()
    return False


class NulGuard:
    """ASGI middleware: a 422 problem for a request with a NUL in its path, query or JSON body."""

    def __init__(self, app: ASGIApp, *, problem: Callable[..., Response]):
        self.app = app
        self.problem = problem

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body: bytes | None = None
        if scope["method"] in _BODY_METHODS and _is_json(scope):
            messages, body = await _read_body(receive)
            receive = _replay(messages, receive)
        found = nul_field(scope["path"], scope["query_string"], body)
        if found is None:
            await self.app(scope, receive, send)
            return
        field, location = found
        response = self.problem(
            422,
            "validation_failed",
            "The request is invalid.",
            f"{field}: {_MESSAGE}",
            field=field,
            errors=[{"field": field, "message": _MESSAGE, "in": location}],
        )
        await response(scope, receive, send)


async def _read_body(receive: Receive) -> tuple[list[Message], bytes]:
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return messages, b"".join(chunks)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
