"""HTTP glue shared by the domain routers: the per-app state, the caller's org, problem details.

Domain packages define FastAPI routers and depend on :func:`request_org` and :func:`service`;
the application (``writgate.app``) builds the app, authenticates callers and registers the
services. HTTP status codes for domain errors are chosen in one place, ``writgate.app.server``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine

from .ledger import Ledger
from .settings import Settings

__all__ = ["AppState", "app_state", "request_org", "service"]


@dataclass
class AppState:
    """What a running server holds: settings, database, ledger and named services."""

    settings: Settings
    engine: AsyncEngine
    ledger: Ledger
    authenticate: Callable[[Request], Awaitable[str]]
    services: dict[str, Any] = field(default_factory=dict)
    background: list[Callable[..., Awaitable[None]]] = field(default_factory=list)
    """Long-running tasks started with the server (``await task(task_status=…)`` style)."""


def app_state(request: Request) -> AppState:
    """The :class:`AppState` of the app serving ``request``."""
    state: AppState = request.app.state.writgate
    return state


async def request_org(request: Request) -> str:
    """The org of the authenticated caller (raises the app's auth error otherwise)."""
    return await app_state(request).authenticate(request)


def service(name: str) -> Callable[[Request], Any]:
    """A dependency returning the service registered under ``name``."""

    def get(request: Request) -> Any:
        return app_state(request).services[name]

    get.__name__ = f"service_{name.replace('.', '_')}"
    return get
