"""The reviewer seam: a ``Reviewer`` protocol and helpers shared by the built-in reviewers."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import pathspec

from ..change import Change
from ..errors import ReviewConfigError
from ..findings import Finding

__all__ = [
    "Options",
    "Reviewer",
    "is_test_path",
    "option_bool",
    "option_globs",
    "option_int",
    "option_str_list",
    "path_matcher",
]

Options = Mapping[str, Any]


@runtime_checkable
class Reviewer(Protocol):
    """Reviews a change and reports findings."""

    name: str

    async def review(self, change: Change) -> list[Finding]:
        """The findings of this reviewer on ``change``."""
        ...


_TEST_PATH = re.compile(
    r"(^|/)(tests?|__tests__|spec|specs|testing)/"
    r"|(^|/)test_[^/]*\.py$"
    r"|_test\.(py|go|rb|exs?)$"
    r"|_spec\.rb$"
    r"|\.(test|spec)\.[cm]?[jt]sx?$"
    r"|(^|/)conftest\.py$"
    r"|(^|/)src/test/"
    r"|Tests?\.(java|kt|cs|swift)$"
)


def is_test_path(path: str) -> bool:
    """Whether ``path`` looks like a test file in any common layout."""
    return bool(_TEST_PATH.search(path))


def path_matcher(globs: Sequence[str]) -> pathspec.GitIgnoreSpec:
    """A gitignore-style matcher for ``globs``."""
    return pathspec.GitIgnoreSpec.from_lines(list(globs))


def suffix(path: str) -> str:
    """The lower-case file extension of ``path`` (``""`` when none)."""
    name = path.rpartition("/")[2]
    index = name.rfind(".")
    return name[index:].lower() if 0 < index < len(name) - 1 else ""


def _where(reviewer: str, key: str) -> str:
    return f"reviewers.{reviewer}.{key}"


def option_int(options: Options, reviewer: str, key: str, default: int) -> int:
    """An integer option (≥ 0)."""
    value = options.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ReviewConfigError("must be a non-negative integer", field=_where(reviewer, key))
    return value


def option_bool(options: Options, reviewer: str, key: str, default: bool) -> bool:
    """A boolean option."""
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise ReviewConfigError("must be true or false", field=_where(reviewer, key))
    return value


def option_str_list(options: Options, reviewer: str, key: str, default: Sequence[str]) -> list[str]:
    """A list of strings."""
    value = options.get(key, default)
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ReviewConfigError("must be a list of strings", field=_where(reviewer, key))
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise ReviewConfigError("must be a string", field=f"{_where(reviewer, key)}[{index}]")
    return list(value)


def option_globs(
    options: Options, reviewer: str, key: str, default: Sequence[str]
) -> pathspec.GitIgnoreSpec:
    """A list of gitignore-style globs as a matcher."""
    globs = option_str_list(options, reviewer, key, default)
    try:
        return path_matcher(globs)
    except Exception as exc:  # pathspec raises several types for a malformed pattern
        raise ReviewConfigError(f"invalid glob: {exc}", field=_where(reviewer, key)) from exc


def check_known(options: Options, reviewer: str, known: Sequence[str]) -> None:
    """Reject unknown option keys, naming the first one."""
    for key in options:
        if key not in known:
            expected = ", ".join(sorted(known)) or "none"
            raise ReviewConfigError(
                f"unknown option (expected one of: {expected})", field=_where(reviewer, str(key))
            )
