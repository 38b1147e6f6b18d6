"""A ``writgate serve`` subprocess on a free loopback port, with an API key, for benchmarks."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

WRITGATE = str(Path(sys.executable).with_name("writgate"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served(**env: str) -> Iterator[tuple[str, str, Path]]:
    """Yields ``(base_url, api_key, home)`` of a fresh embedded-default server."""
    home = Path(tempfile.mkdtemp(prefix="writgate-bench-"))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WRITGATE_")}
    environment.update({"WRITGATE_HOME": str(home), **env})
    key = subprocess.run(
        [WRITGATE, "keys", "create", "--org", "bench"],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    port = _free_port()
    # The server's output goes to a file: an unread pipe would fill up and stall the server.
    log = open(home / "server.log", "wb")  # noqa: SIM115 (closed in the finally below)
    process = subprocess.Popen(
        [WRITGATE, "serve", "--port", str(port), "--log-level", "warning"],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/openapi.json", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    text = (home / "server.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError("server did not start: " + text) from None
                time.sleep(0.1)
        yield url, key, home
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(home, ignore_errors=True)
