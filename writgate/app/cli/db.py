"""``writgate db upgrade``: apply the migrations of every package."""

from __future__ import annotations

import argparse
from typing import Any

from writgate.app.database import open_database
from writgate.migrate import current_heads
from writgate.settings import Settings

from ._common import run_async


def register(commands: Any) -> None:
    parser = commands.add_parser("db", help="database maintenance")
    actions = parser.add_subparsers(dest="db_command", metavar="ACTION")
    actions.required = True
    upgrade = actions.add_parser("upgrade", help="apply every pending migration")
    upgrade.set_defaults(handler=_upgrade)


def _upgrade(args: argparse.Namespace) -> int:
    async def go() -> set[str]:
        database = await open_database(Settings.from_env())
        try:
            return await current_heads(database.engine)
        finally:
            await database.dispose()

    heads = run_async(go)
    print("database is up to date: " + ", ".join(sorted(heads)))
    return 0
