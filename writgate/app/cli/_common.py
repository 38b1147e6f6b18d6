"""Helpers shared by the command modules."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from writgate.app.database import Database, open_database
from writgate.settings import Settings

__all__ = ["print_json", "run_async", "with_database"]

T = TypeVar("T")


def run_async(func: Callable[[], Awaitable[T]]) -> T:
    """Run an async function to completion from a synchronous command handler."""
    return anyio.run(func)


async def with_database(func: Callable[[Database, Settings], Awaitable[T]]) -> T:
    """Open the configured database (migrating it), call ``func``, close the database."""
    settings = Settings.from_env()
    database = await open_database(settings)
    try:
        return await func(database, settings)
    finally:
        await database.dispose()


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    json.dump(value, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")
