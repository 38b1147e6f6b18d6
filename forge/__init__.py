"""Git hosting adapters: the embedded local forge and GitHub (DESIGN.md §12).

``Forge`` is the seam writer and judge use; ``LocalForge`` is the embedded default and
``GitHubForge`` speaks GitHub's REST API (imported lazily, it needs only httpx and cryptography).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    ForgeAuthError,
    ForgeConflict,
    ForgeError,
    ForgeInputError,
    ForgeNotFound,
    ForgeUnavailable,
    GitHubValidationError,
    MergeRefused,
    RateLimited,
    WebhookRejected,
)
from .local import DEFAULT_REQUIRED_CONTEXTS, LocalForge, Page, Repository
from .protocol import (
    Annotation,
    CheckRun,
    Comment,
    Commit,
    CommitStatus,
    Forge,
    PullRequest,
    PullRequestFile,
    Review,
    hidden_marker,
)

if TYPE_CHECKING:
    from .github import GitHubForge
    from .github_http import GitHubApp, TokenAuth

__all__ = [
    "DEFAULT_REQUIRED_CONTEXTS",
    "Annotation",
    "CheckRun",
    "Comment",
    "Commit",
    "CommitStatus",
    "Forge",
    "ForgeAuthError",
    "ForgeConflict",
    "ForgeError",
    "ForgeInputError",
    "ForgeNotFound",
    "ForgeUnavailable",
    "GitHubApp",
    "GitHubForge",
    "GitHubValidationError",
    "LocalForge",
    "MergeRefused",
    "Page",
    "PullRequest",
    "PullRequestFile",
    "RateLimited",
    "Repository",
    "Review",
    "TokenAuth",
    "WebhookRejected",
    "hidden_marker",
]


def __getattr__(name: str) -> Any:
    if name in ("GitHubForge", "GitHubApp", "TokenAuth"):
        from . import github

        return getattr(github, name)
    raise AttributeError(f"module 'forge' has no attribute {name!r}")
