"""judge: review runs over a change, the merge gate and its status checks (DESIGN.md §10)."""

from __future__ import annotations

from .change import Change, ChangedFile, load_change
from .errors import JudgeError, MergeRefused, ReviewConfigError, ReviewerError
from .export import to_rdjson, to_rdjsonl, to_sarif
from .findings import Finding, fingerprint
from .review import ReviewerOutcome, ReviewResult, review_change, run_reviewers
from .reviewers import (
    BUILTIN_REVIEWERS,
    DEFAULT_REVIEWERS,
    Reviewer,
    create_reviewer,
    register_reviewer,
    resolve_reviewers,
)

__all__ = [
    "BUILTIN_REVIEWERS",
    "DEFAULT_REVIEWERS",
    "Change",
    "ChangedFile",
    "Finding",
    "JudgeError",
    "MergeRefused",
    "ReviewConfigError",
    "ReviewResult",
    "Reviewer",
    "ReviewerError",
    "ReviewerOutcome",
    "create_reviewer",
    "fingerprint",
    "load_change",
    "register_reviewer",
    "resolve_reviewers",
    "review_change",
    "run_reviewers",
    "to_rdjson",
    "to_rdjsonl",
    "to_sarif",
]
