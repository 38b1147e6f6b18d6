"""Errors the client raises, one class per kind of answer.

::

    WritgateError (writgate.errors)
    ├── ApiError                 the server answered with a problem+json error
    │   ├── ApiAuthError         401: missing or invalid API key
    │   ├── ApiInputError        400/422 (also an ``InputError``): ``field`` names the input
    │   ├── ApiNotFoundError     404 (also a ``NotFoundError``)
    │   ├── ApiConflictError     409 (also a ``ConflictError``): e.g. ``run_busy``
    │   ├── ApiRateLimitError    429 after the client's own retries
    │   └── ApiServerError       5xx after the client's own retries
    ├── ApiConnectionError       no answer: connect/read failures after the retries
    └── WaitTimeout              ``wait`` reached its deadline (also a ``TimeoutError``)

The remote classes also derive from the kernel's local ones, so code (and the CLI) that handles
``NotFoundError`` or ``InputError`` treats a local and a remote failure the same way.
"""

from __future__ import annotations

from typing import Any

import httpx

from writgate.errors import ConflictError, InputError, NotFoundError, WritgateError

__all__ = [
    "ApiAuthError",
    "ApiConflictError",
    "ApiConnectionError",
    "ApiError",
    "ApiInputError",
    "ApiNotFoundError",
    "ApiRateLimitError",
    "ApiServerError",
    "WaitTimeout",
    "error_from_response",
]


class ApiError(WritgateError):
    """The writgate server answered with an error."""

    code = "api_error"

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int,
        code: str | None = None,
        field: str | None = None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        WritgateError.__init__(self, message, code=code)
        self.status = status
        self.field = field
        self.problem: dict[str, Any] = problem or {}
        # InputError's location attributes, so that ApiInputError renders like a local one.
        self.file: str | None = None
        self.line: int | None = None
        self.column: int | None = None

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{where}{self.message} ({self.status} {self.code})"


class ApiAuthError(ApiError):
    """The API key is missing or invalid."""

    code = "unauthorized"


class ApiInputError(ApiError, InputError):
    """The server rejected the request's input."""

    code = "invalid_input"


class ApiNotFoundError(ApiError, NotFoundError):
    """The resource does not exist in the caller's org."""

    code = "not_found"


class ApiConflictError(ApiError, ConflictError):
    """The resource's state does not allow the action."""

    code = "conflict"


class ApiRateLimitError(ApiError):
    """The server asked the client to slow down."""

    code = "rate_limited"

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class ApiServerError(ApiError):
    """The server failed or is unavailable."""

    code = "server_error"


class ApiConnectionError(WritgateError):
    """The server could not be reached, or the connection broke before an answer."""

    code = "connection_failed"


class WaitTimeout(WritgateError, TimeoutError):
    """The run did not reach the awaited state before the deadline."""

    code = "wait_timeout"

    def __init__(self, message: str | None = None, *, last: Any = None) -> None:
        super().__init__(message)
        self.last = last
        """The last status seen before the deadline."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: ApiInputError,
    401: ApiAuthError,
    404: ApiNotFoundError,
    409: ApiConflictError,
    422: ApiInputError,
    429: ApiRateLimitError,
}


def error_from_response(response: httpx.Response, *, retry_after: float | None = None) -> ApiError:
    """The typed error for an error ``response`` (problem+json, or any other body)."""
    problem: dict[str, Any] = {}
    try:
        body = response.json()
        if isinstance(body, dict):
            problem = body
    except ValueError:
        pass
    status = response.status_code
    cls = _BY_STATUS.get(status) or (ApiServerError if status >= 500 else ApiError)
    code = problem.get("code")
    title = problem.get("title") or response.reason_phrase or f"HTTP {status}"
    detail = problem.get("detail")
    message = f"{title} {detail}" if detail and detail not in title else str(title)
    field = problem.get("field")
    kwargs: dict[str, Any] = {
        "status": status,
        "code": str(code) if code else None,
        "field": str(field) if field else None,
        "problem": problem,
    }
    if cls is ApiRateLimitError:
        return ApiRateLimitError(message, retry_after=retry_after, **kwargs)
    return cls(message, **kwargs)
