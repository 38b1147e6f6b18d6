"""Errors of the judge package.

::

    WritgateError
    ├── JudgeError                  root of this package
    │   └── ReviewerError           a reviewer could not run (tool missing, bad output, timeout)
    ├── InputError
    │   └── ReviewConfigError       a reviewer name or option is invalid
    └── ConflictError
        └── MergeRefused            the merge gate does not allow the merge (yet)
"""

from __future__ import annotations

from writgate.errors import ConflictError, InputError, WritgateError

__all__ = ["JudgeError", "MergeRefused", "ReviewConfigError", "ReviewerError"]


class JudgeError(WritgateError):
    """The judge failed."""

    code = "judge_error"


class ReviewerError(JudgeError):
    """A reviewer could not run."""

    code = "reviewer_failed"


class ReviewConfigError(InputError):
    """The reviewer configuration is invalid."""

    code = "invalid_reviewer_config"


class MergeRefused(ConflictError):
    """The merge gate does not allow this merge."""

    code = "merge_refused"
