"""Errors of the judge package.

::

    WritgateError
    ├── JudgeError                  root of this package
    │   └── ReviewerError           a reviewer could not run (bad output, timeout, crash)
    │       └── ReviewerSkipped     an optional tool is not installed: skipped, not failed
    ├── InputError
    │   ├── ReviewConfigError       a reviewer name or option is invalid
    │   └── RevisionNotFound        the repository or a revision of the change does not exist
    └── ConflictError
        └── MergeRefused            the merge gate does not allow the merge (yet)
"""

from __future__ import annotations

from writgate.errors import ConflictError, InputError, WritgateError

__all__ = [
    "JudgeError",
    "MergeRefused",
    "ReviewConfigError",
    "ReviewerError",
    "ReviewerSkipped",
    "RevisionNotFound",
]


class JudgeError(WritgateError):
    """The judge failed."""

    code = "judge_error"


class ReviewerError(JudgeError):
    """A reviewer could not run."""

    code = "reviewer_failed"


class ReviewerSkipped(ReviewerError):
    """A reviewer's optional tool is not available."""

    code = "reviewer_skipped"


class ReviewConfigError(InputError):
    """The reviewer configuration is invalid."""

    code = "invalid_reviewer_config"


class RevisionNotFound(JudgeError, InputError):
    """The repository or a revision of the change does not exist."""

    code = "revision_not_found"


class MergeRefused(ConflictError):
    """The merge gate does not allow this merge."""

    code = "merge_refused"
