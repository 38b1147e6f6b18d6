"""The error type of the policy language.

::

    writgate.errors.InputError
    └── PolicyError        a policy, a cases file or an evaluation input is invalid

Every loader error carries the file, the 1-based line and column and the field (``rules[1].if``)
it is about, and its message says what was expected.
"""

from __future__ import annotations

from writgate.errors import InputError

__all__ = ["PolicyError"]


class PolicyError(InputError):
    """The policy is invalid."""

    code = "invalid_policy"
