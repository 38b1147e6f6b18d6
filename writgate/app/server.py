"""The HTTP server: the FastAPI app factory, problem+json errors and router mounting."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from writgate import errors
from writgate.app.dashboard.sessions import SESSION_COOKIE, SessionManager, load_session_secret
from writgate.app.database import open_database
from writgate.app.nul_guard import NulGuard
from writgate.app.openapi import install_openapi
from writgate.app.services import build_services
from writgate.auth import KeyStore, Unauthorized
from writgate.redact import redact
from writgate.settings import Settings
from writgate.web import AppState
from writgate.webhooks.api import install_payload_docs

__all__ = ["ROUTERS", "create_app", "problem"]

# (module, attribute) of every router the app mounts.
ROUTERS: tuple[tuple[str, str], ...] = (
    ("writer.api", "router"),
    ("forge.api", "router"),
    ("forge.api", "github_router"),
    ("pipelines.api", "router"),
    ("judge.api", "review_router"),
    ("judge.api", "gate_router"),
    ("writgate.app.passports_api", "router"),
    ("writgate.webhooks.api", "router"),
    ("writgate.app.dashboard", "router"),
)

# Domain errors -> HTTP status. Subclasses inherit their parent's status.
_STATUS: dict[type[errors.WritgateError], int] = {
    Unauthorized: 401,
    errors.BadRequestError: 400,
    errors.InputError: 422,
    errors.NotFoundError: 404,
    errors.ConflictError: 409,
    errors.ConfigError: 500,
    errors.StoreError: 503,
}

PROBLEM_JSON = "application/problem+json"


def problem(
    status: int, code: str, title: str, detail: str | None = None, **extra: Any
) -> JSONResponse:
    """An RFC 9457 problem+json response with a stable ``code`` (never carrying a secret: an
    error may quote a value, a git or forge message, or the request itself)."""
    body: dict[str, Any] = {
        "type": f"https://writgate.dev/problems/{code}",
        "title": title,
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(_redacted(body), status_code=status, media_type=PROBLEM_JSON)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):  # a lone surrogate quoted from the request cannot be UTF-8
        return redact(value).encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _status_for(exc: errors.WritgateError) -> int:
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]  # type: ignore[index]
    return 500


def _pointer(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return "/" + "/".join(parts)


async def _on_writgate_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.WritgateError)
    status = _status_for(exc)
    field = getattr(exc, "field", None)
    extra: dict[str, Any] = {
        k: v for k, v in exc.details.items() if isinstance(v, (str, int, list, dict, bool))
    }
    extra["field"] = field
    return problem(status, exc.code, exc.message, None, **extra)


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        fields.append(
            {
                "field": _pointer(loc),
                "message": str(err.get("msg", "invalid")),
                "in": str(loc[0]) if loc else "body",
            }
        )
    first = fields[0] if fields else {"field": "/", "message": "invalid request"}
    return problem(
        422,
        "validation_failed",
        "The request is invalid.",
        f"{first['field']}: {first['message']}",
        field=first["field"],
        errors=fields,
    )


async def _on_http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(
        exc.status_code, f"http_{exc.status_code}"
    )
    return problem(exc.status_code, code, str(exc.detail))


async def _on_unexpected(_request: Request, _exc: Exception) -> JSONResponse:
    return problem(500, "internal_error", "Internal server error.")


def create_app(
    settings: Settings | None = None,
    *,
    authenticate: Callable[[Request], Awaitable[str]] | None = None,
) -> FastAPI:
    """The writgate HTTP app for ``settings`` (from the environment by default)."""
    settings = settings or Settings.from_env()

    async def default_authenticate(request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            cookie = request.cookies.get(SESSION_COOKIE)
            # A dashboard session may read the API; changes need the key itself (no CSRF).
            if cookie and request.method in ("GET", "HEAD"):
                sessions: SessionManager = request.app.state.writgate.services["dashboard.sessions"]
                return (await sessions.verify(cookie)).org
            raise Unauthorized("send an API key: Authorization: Bearer wg_…")
        keys: KeyStore = request.app.state.writgate.services["keys"]
        return await keys.authenticate(token.strip())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = await open_database(settings)
        app.state.writgate = AppState(
            settings=settings,
            engine=database.engine,
            ledger=database.ledger,
            authenticate=authenticate or default_authenticate,
        )
        app.state.writgate.services["keys"] = KeyStore(engine=database.engine)
        app.state.writgate.services["dashboard.sessions"] = SessionManager(
            secret=load_session_secret(settings.home), keys=app.state.writgate.services["keys"]
        )
        build_services(app.state.writgate)
        try:
            async with anyio.create_task_group() as tg:
                for task in app.state.writgate.background:
                    await tg.start(task)
                yield
                tg.cancel_scope.cancel()
        finally:
            await database.dispose()

    app = FastAPI(
        title="writgate",
        version="0.1.0",
        lifespan=lifespan,
        description="Supervisor/judge pipelines around coding agents.",
    )
    app.add_exception_handler(errors.WritgateError, _on_writgate_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
    app.add_middleware(NulGuard, problem=problem)
    for module, attribute in ROUTERS:
        app.include_router(getattr(importlib.import_module(module), attribute))
    install_openapi(app)
    install_payload_docs(app)  # last: it wraps the document builder
    return app
