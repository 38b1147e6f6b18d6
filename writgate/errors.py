"""The error tree shared by every writgate package.

::

    WritgateError                  root; ``code`` is a stable machine-readable string
    ├── ConfigError                bad settings, database URL, missing extra
    │   └── MissingExtraError      an optional extra is not installed
    ├── InputError                 bad user input (a file, a field); carries where
    │   └── BadRequestError        malformed protocol input (a header), HTTP 400
    ├── NotFoundError              the resource does not exist (or is another org's)
    ├── ConflictError              the resource is in a state that forbids the action
    └── StoreError                 the database failed in an unexpected way

Each domain package derives its own root (``WriterError``, ``PolicyError``, …) from
``WritgateError`` or one of the classes above. The docstring of a class is its default message.
HTTP status codes are not known here; the server maps these classes to problem+json.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BadRequestError",
    "ConfigError",
    "ConflictError",
    "InputError",
    "MissingExtraError",
    "NotFoundError",
    "StoreError",
    "WritgateError",
]


class WritgateError(Exception):
    """Something went wrong in writgate."""

    code = "writgate_error"

    def __init__(self, message: str | None = None, *, code: str | None = None, **details: Any):
        doc = (type(self).__doc__ or "").strip().splitlines()
        self.message = message or (doc[0] if doc else type(self).__name__)
        if code is not None:
            self.code = code
        self.details = details
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class ConfigError(WritgateError):
    """The configuration is invalid."""

    code = "config_error"


class MissingExtraError(ConfigError):
    """An optional extra is not installed."""

    code = "missing_extra"

    def __init__(self, extra: str, module: str):
        super().__init__(
            f"this feature needs the '{extra}' extra: pip install 'writgate[{extra}]' "
            f"(module {module!r} is missing)",
            extra=extra,
        )


class InputError(WritgateError):
    """The input is invalid."""

    code = "invalid_input"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
        **details: Any,
    ):
        self.file, self.line, self.column, self.field = file, line, column, field
        super().__init__(message, code=code, **details)

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        if self.field:
            where += f"{self.field}: "
        return where + self.message


class BadRequestError(InputError):
    """The request is malformed."""

    code = "bad_request"


class NotFoundError(WritgateError):
    """The resource was not found."""

    code = "not_found"


class ConflictError(WritgateError):
    """The resource is in a state that does not allow this action."""

    code = "conflict"


class StoreError(WritgateError):
    """The database failed."""

    code = "store_error"
