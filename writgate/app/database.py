"""Opening the database for the application: engine, migrations over every package, ledger."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from writgate import auth, db, ledger, migrate
from writgate.settings import Settings
from writgate.webhooks import attach as attach_webhooks
from writgate.webhooks import tables as webhook_tables

__all__ = ["DOMAIN_PACKAGES", "Database", "all_metadata", "migration_locations", "open_database"]

# Packages that own tables, in dependency order. Each keeps ``tables.py`` (its ``metadata``) and
# a ``migrations/`` folder holding an Alembic branch labelled with the package name.
DOMAIN_PACKAGES = ("forge", "passport", "judge", "writer", "pipelines")


def migration_locations() -> Iterator[Path]:
    """The ``migrations/`` folder of every domain package that has one."""
    for name in DOMAIN_PACKAGES:
        module = importlib.import_module(name)
        folder = Path(module.__file__ or "").parent / "migrations"
        if folder.is_dir():
            yield folder


def all_metadata() -> list[MetaData]:
    """The table models of the kernel and of every domain package."""
    found = [ledger.metadata, auth.metadata, webhook_tables.metadata]
    for name in DOMAIN_PACKAGES:
        if importlib.util.find_spec(f"{name}.tables") is not None:
            found.append(importlib.import_module(f"{name}.tables").metadata)
    return found


@dataclass
class Database:
    """An engine with its ledger; close it with :meth:`dispose`."""

    engine: AsyncEngine
    ledger: ledger.Ledger

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


async def open_database(settings: Settings, *, migrate_schema: bool = True) -> Database:
    """Create the engine for ``settings`` and bring the schema up to date."""
    engine = db.create_engine(settings.database_url)
    if migrate_schema:
        try:
            await migrate.upgrade(engine, migration_locations())
        except BaseException:
            await engine.dispose()
            raise
    events = ledger.Ledger(engine=engine)
    attach_webhooks(events, home=settings.home)  # every event can feed the webhook outbox
    return Database(engine=engine, ledger=events)
