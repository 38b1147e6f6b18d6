"""Alembic migrations over every package's tables.

Each package that owns tables keeps its revisions in its own ``migrations/`` folder as an Alembic
branch labelled with the package name; :func:`upgrade` applies all heads. The kernel does not know
the domain packages: the application passes their folders and metadata in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from .errors import ConfigError, StoreError

__all__ = ["current_heads", "schema_differences", "upgrade"]

_SCRIPT_LOCATION = Path(__file__).parent / "migrations"
_LOCK_KEY = 0x77726974  # "writ": the advisory lock that serializes concurrent upgrades


def _config(version_locations: Sequence[Path], connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPT_LOCATION))
    locations = [str(_SCRIPT_LOCATION / "versions"), *(str(p) for p in version_locations)]
    config.set_main_option("version_locations", " ".join(locations))
    config.set_main_option("path_separator", "space")
    config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, version_locations: Iterable[Path] = ()) -> None:
    """Apply every pending revision of the kernel and of ``version_locations``."""
    locations = list(version_locations)

    def run(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        command.upgrade(_config(locations, connection), "heads")

    try:
        async with engine.connect() as probe:
            await probe.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error here means "cannot reach the database"
        where = engine.url.render_as_string(hide_password=True)
        raise ConfigError(f"cannot open the database {where}: {_first_line(exc)}") from exc
    try:
        async with engine.begin() as conn:
            await conn.run_sync(run)
    except Exception as exc:  # the driver's own errors are not for users
        raise StoreError(f"database migration failed: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    origin = getattr(exc, "orig", None) or exc
    text_ = str(origin).strip().splitlines()
    return f"{type(origin).__name__}: {text_[0] if text_ else ''}".rstrip(": ")


async def current_heads(engine: AsyncEngine) -> set[str]:
    """The revisions the database is at."""

    def run(connection: Connection) -> set[str]:
        return set(MigrationContext.configure(connection).get_current_heads())

    async with engine.connect() as conn:
        return await conn.run_sync(run)


async def schema_differences(engine: AsyncEngine, metadatas: Iterable[MetaData]) -> list[Any]:
    """Differences between the migrated schema and the table models (empty when they match)."""
    combined = MetaData()
    for metadata in metadatas:
        for table in metadata.tables.values():
            table.to_metadata(combined)

    def run(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs = compare_metadata(context, combined)
        return [
            d
            for d in diffs
            if not (
                isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "alembic_version"
            )
        ]

    async with engine.connect() as conn:
        return await conn.run_sync(run)
