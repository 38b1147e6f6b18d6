"""A wired writer (local forge, bubblewrap sandbox, executor) over a test database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

from forge.local import LocalForge
from writer.service import WriterService
from writgate.app.database import Database
from writgate.app.services import Services, make_services
from writgate.settings import Settings


@dataclass
class WriterEnv:
    settings: Settings
    database: Database
    services: Services
    forge: LocalForge

    @property
    def writer(self) -> WriterService:
        return self.services.writer


@asynccontextmanager
async def writer_env(
    settings: Settings, database: Database, *, repo_files: dict[str, str] | None = None
) -> AsyncIterator[WriterEnv]:
    """Services with the executor serving in the background and a repository ``acme/app``."""
    services = make_services(settings, database.engine, database.ledger)
    services.executor.expiry_interval = 0.1
    forge = services.forge_for(settings.org)
    assert isinstance(forge, LocalForge)
    source = settings.home / "seed"
    source.mkdir(parents=True, exist_ok=True)
    for name, text in (repo_files or {"README.md": "hello\n", "app.py": "X = 1\n"}).items():
        path = source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    await forge.create_repository("acme/app", from_dir=Path(source))
    async with anyio.create_task_group() as tg:
        await tg.start(services.executor.serve)
        try:
            yield WriterEnv(settings=settings, database=database, services=services, forge=forge)
        finally:
            tg.cancel_scope.cancel()
