"""A real writgate server (uvicorn) on 127.0.0.1 in a background thread, for forge tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import uvicorn

from writgate.app.database import open_database
from writgate.app.server import create_app
from writgate.auth import KeyStore
from writgate.settings import Settings


def create_api_key(settings: Settings, org: str = "default") -> str:
    """A new API key of ``org`` in the (migrated) database of ``settings``."""

    async def go() -> str:
        database = await open_database(settings)
        try:
            _key, token = await KeyStore(engine=database.engine).create(org)
        finally:
            await database.dispose()
        return token

    return anyio.run(go)


@contextmanager
def running_server(settings: Settings, *, timeout: float = 30.0) -> Iterator[str]:
    """Serve the app for ``settings`` on a free loopback port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the writgate server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
