"""Settings read from the environment (``WRITGATE_*``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    """Where writgate keeps its state and which database it uses."""

    home: Path
    database_url: str
    org: str = "default"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``WRITGATE_HOME`` (default ``.writgate``) and ``WRITGATE_DATABASE_URL``."""
        env = os.environ if environ is None else environ
        home = Path(env.get("WRITGATE_HOME") or ".writgate").expanduser().absolute()
        url = env.get("WRITGATE_DATABASE_URL") or f"sqlite+aiosqlite:///{home / 'writgate.db'}"
        return cls(home=home, database_url=url, org=env.get("WRITGATE_ORG") or "default")

    @property
    def is_embedded(self) -> bool:
        """True for the embedded default (a SQLite file)."""
        return self.database_url.startswith("sqlite")
