"""Errors of the forge package.

::

    WritgateError
    └── ForgeError                       root of every forge failure
        ├── ForgeInputError (InputError)     a bad repository name, branch, state, field
        │   └── GitHubValidationError         GitHub answered 422 (its message is kept)
        ├── ForgeNotFound (NotFoundError)    no such repository, pull request, check run
        ├── ForgeConflict (ConflictError)    the resource's state forbids the action
        │   └── MergeRefused                  merge refused (required context, draft, conflict)
        ├── ForgeAuthError                   the forge rejected the credentials
        ├── RateLimited                      rate limited for longer than the back-off cap
        ├── ForgeUnavailable                 the forge could not be reached or answered 5xx
        └── WebhookRejected                  a webhook delivery failed verification

Messages never contain a credential: the GitHub adapter builds them from GitHub's JSON message
and the request path only.
"""

from __future__ import annotations

from typing import Any

from writgate.errors import ConflictError, InputError, NotFoundError, WritgateError

__all__ = [
    "ForgeAuthError",
    "ForgeConflict",
    "ForgeError",
    "ForgeInputError",
    "ForgeNotFound",
    "ForgeUnavailable",
    "GitHubValidationError",
    "MergeRefused",
    "RateLimited",
    "WebhookRejected",
]


class ForgeError(WritgateError):
    """The forge failed."""

    code = "forge_error"


class ForgeInputError(InputError, ForgeError):
    """The forge request is invalid."""

    code = "forge_invalid_input"


class GitHubValidationError(ForgeInputError):
    """GitHub rejected the request as invalid."""

    code = "github_validation_failed"


class ForgeNotFound(NotFoundError, ForgeError):
    """The forge resource was not found."""

    code = "forge_not_found"


class ForgeConflict(ConflictError, ForgeError):
    """The forge resource is in a state that does not allow this action."""

    code = "forge_conflict"


class MergeRefused(ForgeConflict):
    """The pull request cannot be merged."""

    code = "merge_refused"

    def __init__(
        self, message: str | None = None, *, reasons: list[str] | None = None, **details: Any
    ):
        self.reasons = list(reasons or ([message] if message else []))
        super().__init__(message, reasons=self.reasons, **details)


class ForgeAuthError(ForgeError):
    """The forge rejected the credentials."""

    code = "forge_auth_failed"


class RateLimited(ForgeError):
    """The forge's rate limit was exceeded for longer than writgate waits."""

    code = "forge_rate_limited"


class ForgeUnavailable(ForgeError):
    """The forge could not be reached."""

    code = "forge_unavailable"


class WebhookRejected(ForgeError):
    """The webhook delivery was rejected."""

    code = "webhook_rejected"
