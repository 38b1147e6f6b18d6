"""Reviewers: the ``Reviewer`` protocol, the built-in reviewers and the registry by name.

A reviewer configuration maps a name to options. The name is a built-in (``secrets``), a kind
given with ``uses`` (``{"eslint": {"uses": "command", "argv": [...]}}``), or a dotted path to a
factory (``"mypkg.reviewers:make"``, called with the options). Unless configured otherwise every
built-in in :data:`DEFAULT_REVIEWERS` runs; ``command`` and ``agent`` need options, so they run
only when configured.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import ReviewConfigError
from .agent import AgentDriver, AgentReviewer, CommandDriver
from .base import Options, Reviewer
from .binary_files import BinaryFilesReviewer
from .debug_leftovers import DebugLeftoversReviewer
from .dependencies import DependenciesReviewer
from .external import CommandReviewer, RuffReviewer
from .large_diff import LargeDiffReviewer
from .missing_tests import MissingTestsReviewer
from .secrets import SecretsReviewer
from .sensitive_paths import SensitivePathsReviewer
from .static import StaticReviewer
from .tampering import TestTamperingReviewer

__all__ = [
    "BUILTIN_REVIEWERS",
    "DEFAULT_REVIEWERS",
    "PROGRAM_REVIEWERS",
    "AgentDriver",
    "AgentReviewer",
    "CommandDriver",
    "CommandReviewer",
    "Reviewer",
    "ReviewerFactory",
    "StaticReviewer",
    "create_reviewer",
    "register_reviewer",
    "resolve_reviewers",
]

ReviewerFactory = Callable[[Options], Reviewer]

BUILTIN_REVIEWERS: dict[str, ReviewerFactory] = {
    "secrets": SecretsReviewer,
    "sensitive-paths": SensitivePathsReviewer,
    "missing-tests": MissingTestsReviewer,
    "test-tampering": TestTamperingReviewer,
    "large-diff": LargeDiffReviewer,
    "dependencies": DependenciesReviewer,
    "debug-leftovers": DebugLeftoversReviewer,
    "binary-files": BinaryFilesReviewer,
    "ruff": RuffReviewer,
    "command": CommandReviewer,
    "agent": AgentReviewer,
}
PROGRAM_REVIEWERS = frozenset({"command", "agent"})
DEFAULT_REVIEWERS: tuple[str, ...] = (
    "secrets",
    "sensitive-paths",
    "missing-tests",
    "test-tampering",
    "large-diff",
    "dependencies",
    "debug-leftovers",
    "binary-files",
    "ruff",
)


def register_reviewer(name: str, factory: ReviewerFactory) -> None:
    """Make ``factory`` available under ``name`` (plugins, tests)."""
    BUILTIN_REVIEWERS[name] = factory


def create_reviewer(
    name: str, options: Options | None = None, *, allow_programs: bool = True
) -> Reviewer:
    """The reviewer ``name`` configured with ``options``.

    With ``allow_programs=False`` (a server reviewing on behalf of API callers), reviewers that
    run a program or load code the configuration names — ``command``, ``agent``, a dotted-path
    factory, ruff with its own ``executable`` — are refused.
    """
    options = dict(options or {})
    kind = options.pop("uses", None)
    if kind is not None and not isinstance(kind, str):
        raise ReviewConfigError("must be a reviewer kind", field=f"reviewers.{name}.uses")
    kind = kind or name
    if not allow_programs and (
        kind in PROGRAM_REVIEWERS or ":" in kind or (kind == "ruff" and "executable" in options)
    ):
        raise ReviewConfigError(
            f"the {kind!r} reviewer runs a program the configuration names; it is disabled here "
            "(the server allows it with WRITGATE_ALLOW_PROGRAM_REVIEWERS=1)",
            field=f"reviewers.{name}",
        )
    if kind in BUILTIN_REVIEWERS:
        if kind in ("command", "agent") and name != kind:
            options.setdefault("name", name)
        reviewer = BUILTIN_REVIEWERS[kind](options)
    elif ":" in kind:
        module_name, _, attribute = kind.partition(":")
        try:
            factory: Any = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ReviewConfigError(
                f"cannot load reviewer {kind!r}: {exc}", field=f"reviewers.{name}"
            ) from exc
        reviewer = factory(options)
    else:
        known = ", ".join(sorted(BUILTIN_REVIEWERS))
        raise ReviewConfigError(
            f"unknown reviewer {kind!r} (known: {known}, or package.module:factory)",
            field=f"reviewers.{name}",
        )
    if not isinstance(reviewer, Reviewer):
        raise ReviewConfigError(
            f"{kind!r} did not build a reviewer (needs 'name' and 'review')",
            field=f"reviewers.{name}",
        )
    return reviewer


def resolve_reviewers(
    names: Sequence[str] | None = None,
    config: Mapping[str, Any] | None = None,
    *,
    allow_programs: bool = True,
) -> list[Reviewer]:
    """The reviewers to run.

    ``names`` selects reviewers (default: the names configured in ``config`` when it lists any
    reviewer that is not a built-in default, else :data:`DEFAULT_REVIEWERS` plus every configured
    name). ``config`` maps reviewer names to their options.
    """
    config = dict(config or {})
    for key, value in config.items():
        if value is not None and not isinstance(value, Mapping):
            raise ReviewConfigError("reviewer options must be a mapping", field=f"reviewers.{key}")
    if names is None:
        selected = list(DEFAULT_REVIEWERS)
        selected += [name for name in config if name not in selected]
    else:
        selected = []
        for name in names:
            if not isinstance(name, str) or not name.strip():
                raise ReviewConfigError(
                    "reviewer names must be non-empty strings", field="reviewers"
                )
            if name.strip() not in selected:
                selected.append(name.strip())
    return [
        create_reviewer(name, config.get(name), allow_programs=allow_programs) for name in selected
    ]
