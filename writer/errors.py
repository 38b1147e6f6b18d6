"""Errors of the writer package.

::

    WriterError (WritgateError)
    ├── RunNotFound (NotFoundError)
    ├── IllegalTransition
    ├── RunConflict (ConflictError)        run_busy, session_not_warm, max_turns_exceeded,
    │                                      run_not_cancellable, …: ``code`` says which
    ├── IdempotencyKeyReused (InputError)
    └── AgentError                          the agent failed to run
"""

from __future__ import annotations

from writgate.errors import ConflictError, InputError, NotFoundError, WritgateError

__all__ = [
    "AgentError",
    "IdempotencyKeyReused",
    "IllegalTransition",
    "RunConflict",
    "RunNotFound",
    "WriterError",
]


class WriterError(WritgateError):
    """The coding-agent run failed."""

    code = "writer_error"


class RunNotFound(NotFoundError, WriterError):
    """The run was not found."""

    code = "run_not_found"


class IllegalTransition(WriterError):
    """The run cannot move to that lifecycle state."""

    code = "illegal_transition"


class RunConflict(ConflictError, WriterError):
    """The run is in a state that does not allow this action."""

    code = "run_conflict"


class IdempotencyKeyReused(InputError, WriterError):
    """The Idempotency-Key was already used with a different request body."""

    code = "idempotency_key_reused"


class AgentError(WriterError):
    """The coding agent failed."""

    code = "agent_error"
