"""Stage kinds: a registry mapping ``uses:`` to an async handler ``(StageContext) -> outputs``.

``command`` and ``python`` ship here. ``writer``, ``review``, ``passport`` and ``gate`` adapt the
writer and judge packages and register themselves when those packages are importable.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..context import StageContext

__all__ = ["Handler", "handler_for", "register", "registered_kinds"]

log = logging.getLogger(__name__)

Handler = Callable[[StageContext], Awaitable[Mapping[str, Any]]]

_HANDLERS: dict[str, Handler] = {}
_BUILTIN_MODULES = ("command", "python", "writer", "review", "passport", "gate")
_loaded = False


def register(kind: str, handler: Handler, *, replace: bool = False) -> None:
    """Make ``uses: kind`` run ``handler``; registering a kind twice needs ``replace=True``."""
    if kind in _HANDLERS and not replace and _HANDLERS[kind] is not handler:
        raise ValueError(f"stage kind {kind!r} is already registered")
    _HANDLERS[kind] = handler


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for name in _BUILTIN_MODULES:
        importlib.import_module(f"{__name__}.{name}")


def handler_for(kind: str) -> Handler | None:
    """The handler of ``kind`` or ``None`` when no such kind is available."""
    _load_builtins()
    return _HANDLERS.get(kind)


def registered_kinds() -> list[str]:
    """Every kind with a handler, sorted."""
    _load_builtins()
    return sorted(_HANDLERS)
