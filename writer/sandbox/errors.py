"""Errors of the sandbox providers.

::

    SandboxError (WritgateError)
    ├── SandboxUnavailable        the provider cannot run here (no bubblewrap, no E2B key…)
    ├── SandboxSetupError         the workspace could not be prepared (clone, checkout, start)
    ├── SandboxLost               the sandbox is gone (closed, expired or died)
    ├── SandboxFileNotFound       ``read_file`` of a path that does not exist
    ├── SandboxTimeout            an operation on the sandbox took longer than allowed
    └── SandboxSpecError (InputError)   a spec field is invalid; ``field`` names it

A command that fails or times out inside a sandbox is not an error: ``exec`` returns an
:class:`~writer.sandbox.protocol.ExecResult` with its exit code and ``timed_out``.
"""

from __future__ import annotations

from writgate.errors import InputError, WritgateError

__all__ = [
    "SandboxError",
    "SandboxFileNotFound",
    "SandboxLost",
    "SandboxSetupError",
    "SandboxSpecError",
    "SandboxTimeout",
    "SandboxUnavailable",
]


class SandboxError(WritgateError):
    """The sandbox failed."""

    code = "sandbox_error"


class SandboxUnavailable(SandboxError):
    """The sandbox provider is not available on this machine."""

    code = "sandbox_unavailable"


class SandboxSetupError(SandboxError):
    """The sandbox workspace could not be prepared."""

    code = "sandbox_setup_failed"


class SandboxLost(SandboxError):
    """The sandbox is gone."""

    code = "sandbox_lost"


class SandboxFileNotFound(SandboxError):
    """The file does not exist in the sandbox."""

    code = "sandbox_file_not_found"


class SandboxTimeout(SandboxError):
    """The sandbox did not answer in time."""

    code = "sandbox_timeout"


class SandboxSpecError(InputError, SandboxError):
    """The sandbox specification is invalid."""

    code = "invalid_sandbox_spec"
