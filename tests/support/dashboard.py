"""A real server with seeded orgs and Debian's headless Chromium driven by Playwright."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright

from forge.local import LocalForge
from tests.integration.forge_server import create_api_key, running_server
from writgate.app.database import open_database
from writgate.settings import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ORGS = ("org-a", "org-b")
REPO = "acme/app"


def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a fresh thread: Playwright's sync API keeps an event loop in this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args).result()


@dataclass
class Dashboard:
    """A running server: its URL, settings and one API key per org."""

    url: str
    settings: Settings
    keys: dict[str, str]

    def api(self, org: str = "org-a") -> httpx.Client:
        """An API client of ``org``."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.keys[org]}"}, timeout=60
        )

    def forge(self, org: str = "org-a") -> Callable[[Callable[[LocalForge], Any]], Any]:
        """Run ``fn(forge)`` (async) against the server's database, from the test thread."""

        def call(fn: Callable[[LocalForge], Any]) -> Any:
            async def go() -> Any:
                database = await open_database(self.settings)
                try:
                    forge = LocalForge(
                        engine=database.engine,
                        ledger=database.ledger,
                        home=self.settings.home,
                        org=org,
                    )
                    return await fn(forge)
                finally:
                    await database.dispose()

            return in_thread(anyio.run, go)

        return call


@contextmanager
def dashboard_server(home: Path) -> Iterator[Dashboard]:
    """Migrate a SQLite database under ``home``, seed ``acme/app`` in two orgs, serve it."""
    home.mkdir(parents=True, exist_ok=True)
    settings = Settings(home=home, database_url=f"sqlite+aiosqlite:///{home / 'writgate.db'}")
    keys = {org: in_thread(create_api_key, settings, org) for org in ORGS}
    source = home / "seed"
    source.mkdir(exist_ok=True)
    (source / "README.md").write_text("hello\n")
    (source / "app.py").write_text("def answer():\n    return 41\n")

    async def seed() -> None:
        database = await open_database(settings)
        try:
            for org in ORGS:
                forge = LocalForge(
                    engine=database.engine, ledger=database.ledger, home=home, org=org
                )
                await forge.create_repository(REPO, from_dir=source)
        finally:
            await database.dispose()

    in_thread(anyio.run, seed)
    with running_server(settings) as url:
        yield Dashboard(url=url, settings=settings, keys=keys)


@contextmanager
def chromium(user_data_dir: Path, *, javascript: bool = True) -> Iterator[BrowserContext]:
    """Debian's Chromium, headless, with a fresh profile in ``user_data_dir``.

    Missing Chromium fails in CI (``scripts/test`` installs it) and skips on a developer machine.
    """
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
            java_script_enabled=javascript,
        )
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


def login(page: Page, url: str, key: str) -> None:
    """Log in through the form (clears any previous session first)."""
    page.context.clear_cookies()
    page.goto(f"{url}/login")
    page.fill("#key", key)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(re.compile(r".*/$"))


def wait_for(
    predicate: Callable[[], Any],
    *,
    timeout: float = 60.0,
    message: str = "",
    page: Page | None = None,
) -> Any:
    """Poll ``predicate`` until it returns something truthy (else fail after ``timeout``).

    With ``page``, waits through Playwright so that its route handlers keep running.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting: {message}")
        if page is not None:
            page.wait_for_timeout(100)
        else:
            time.sleep(0.1)
