"""What text writgate can store: anything but the NUL character.

PostgreSQL refuses U+0000 in ``text`` and ``jsonb`` values, so a request carrying one would
fail deep in a store. Request models check their strings with :func:`refuse_nul` instead, so
the caller gets a 422 naming the field on either database.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = ["refuse_nul"]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(item) for item in value)
    if isinstance(value, BaseModel):
        return _has_nul(dict(value))
    return False


def refuse_nul(value: Any) -> Any:
    """``value`` unchanged; ``ValueError`` when it holds a NUL character (at any depth)."""
    if _has_nul(value):
        raise ValueError("must not contain a NUL (\\u0000) character")
    return value
