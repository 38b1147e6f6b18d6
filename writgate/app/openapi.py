"""The OpenAPI document of the app: FastAPI's, plus what generated clients need.

FastAPI describes routes and models; this module adds, once for every router:

- a ``Problem`` component (RFC 9457 problem+json with the stable ``code``) as the body of every
  4xx/5xx response, replacing FastAPI's ``HTTPValidationError`` (the server never sends it);
- ``401`` on every route that needs an API key, ``500`` everywhere, and a ``bearer`` security
  scheme so that generators produce an authenticated client;
- a check that every operation has an explicit, unique ``operationId`` (generators name methods
  after it, so it must not change when a Python function is renamed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from writgate.web import request_org

__all__ = [
    "PROBLEM_JSON",
    "Problem",
    "ProblemFieldError",
    "api_routes",
    "build_openapi",
    "install_openapi",
]

PROBLEM_JSON = "application/problem+json"
_REF = "#/components/schemas/{model}"


class ProblemFieldError(BaseModel):
    """One invalid input of a ``validation_failed`` problem."""

    model_config = ConfigDict(populate_by_name=True)

    field: str = Field(description="JSON pointer of the input, e.g. /tags/3.")
    message: str = Field(description="What is wrong with it.")
    in_: str = Field(alias="in", description="Where the input is: body, query, path or header.")


class Problem(BaseModel):
    """An RFC 9457 problem detail: every error answer of the API has this body."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI naming the problem type (ends with the code).")
    title: str = Field(description="A short human-readable summary.")
    status: int = Field(description="The HTTP status code.")
    code: str = Field(
        description="Stable machine-readable code, e.g. not_found, validation_failed, "
        "idempotency_key_reused, run_busy, session_not_warm, unauthorized."
    )
    detail: str | None = Field(default=None, description="Human-readable detail of this case.")
    field: str | None = Field(
        default=None, description="The offending input: a JSON pointer, a parameter or a header."
    )
    errors: list[ProblemFieldError] | None = Field(
        default=None, description="validation_failed: every invalid input."
    )
    next_actions: list[str] | None = Field(
        default=None,
        alias="nextActions",
        description="What the client may do instead (e.g. on session_not_warm).",
    )


def _depends_on(dependant: Dependant, target: Any) -> bool:
    return any(dep.call is target or _depends_on(dep, target) for dep in dependant.dependencies)


def api_routes(app: FastAPI) -> list[Any]:
    """The app's API routes, flattened (each has ``path``, ``methods``, ``dependant`` and
    ``operation_id``) — newer FastAPI keeps included routers as nested objects."""
    iterate = getattr(routing, "iter_route_contexts", None)
    if iterate is None:  # FastAPI before included routers were kept nested
        return [route for route in app.routes if isinstance(route, APIRoute)]
    return [
        context for context in iterate(app.routes) if isinstance(context.original_route, APIRoute)
    ]


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                yield path, method, operation


def _referenced(document: dict[str, Any], name: str) -> bool:
    needle = f'"#/components/schemas/{name}"'
    return needle in json.dumps({k: v for k, v in document.items() if k != "components"}) or any(
        needle in json.dumps(schema)
        for other, schema in document.get("components", {}).get("schemas", {}).items()
        if other != name
    )


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI 3.1 document."""
    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (ProblemFieldError, Problem):
        schema = model.model_json_schema(ref_template=_REF, by_alias=True)
        schema.pop("$defs", None)
        schemas[model.__name__] = schema
    document["components"]["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (wg_…) from `writgate keys create --org NAME`.",
        }
    }
    authenticated = {
        (route.path, method.lower())
        for route in api_routes(app)
        if _depends_on(route.dependant, request_org)
        for method in route.methods or ()
    }
    seen: dict[str, str] = {}
    problem = {PROBLEM_JSON: {"schema": {"$ref": _REF.format(model="Problem")}}}
    for path, method, operation in _operations(document):
        operation_id = operation.get("operationId", "")
        if operation_id in seen:
            raise RuntimeError(
                f"operationId {operation_id!r} of {method.upper()} {path} is already used by "
                f"{seen[operation_id]}"
            )
        seen[operation_id] = f"{method.upper()} {path}"
        responses: dict[str, Any] = operation["responses"]
        if (path, method) in authenticated:
            operation["security"] = [{"bearer": []}]
            responses.setdefault("401", {"description": "Missing or invalid API key."})
        responses.setdefault("500", {"description": "Unexpected server error."})
        if "422" in responses and responses["422"].get("description") == "Validation Error":
            responses["422"]["description"] = (
                "Invalid request; `field` names the offending input, `errors` lists every one."
            )
        for status, response in responses.items():
            if status.isdigit() and int(status) >= 400:
                response["content"] = problem
    for name in ("HTTPValidationError", "ValidationError"):
        if name in schemas and not _referenced(document, name):
            del schemas[name]
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve :func:`build_openapi` at ``/openapi.json`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
