"""Polling with a deadline, for tests that wait on other processes (never sleep-and-hope)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx


def eventually(check: Callable[[], Any], *, timeout: float = 30.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(0.05)


def wait_for_server(
    url: str,
    process: subprocess.Popen[bytes],
    *,
    timeout: float = 60.0,
    describe_exit: Callable[[], str] = lambda: "",
) -> None:
    """Wait until the writgate server at ``url`` answers; fail at once if ``process`` exited."""

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {describe_exit()}")
        try:
            return httpx.get(f"{url}/openapi.json", timeout=2).is_success
        except httpx.HTTPError:
            return False

    eventually(up, timeout=timeout, what="the server to start")
