"""writgate: supervisor/judge pipelines around coding agents (the shared kernel)."""

from __future__ import annotations

from .errors import (
    ConfigError,
    ConflictError,
    InputError,
    MissingExtraError,
    NotFoundError,
    StoreError,
    WritgateError,
)
from .ids import new_id
from .ledger import Event, Ledger
from .settings import Settings

__all__ = [
    "ConfigError",
    "ConflictError",
    "Event",
    "InputError",
    "Ledger",
    "MissingExtraError",
    "NotFoundError",
    "Settings",
    "StoreError",
    "WritgateError",
    "new_id",
]

__version__ = "0.1.0"
