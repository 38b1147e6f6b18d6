"""Missing tests: source code changed while no test file changed."""

from __future__ import annotations

from ..change import Change
from ..findings import Finding
from .base import Options, check_known, is_test_path, option_globs, suffix

__all__ = ["SOURCE_SUFFIXES", "MissingTestsReviewer"]

SOURCE_SUFFIXES = frozenset(
    {
        ".py", ".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs", ".go", ".rs", ".java", ".kt",
        ".rb", ".php", ".cs", ".c", ".cc", ".cpp", ".h", ".hpp", ".swift", ".scala", ".ex",
        ".exs", ".clj", ".lua", ".dart",
    }
)  # fmt: skip
_DEFAULT_IGNORE = ("docs/**", "examples/**", "scripts/**", "benchmarks/**", "**/migrations/**",
                   "setup.py", "noxfile.py", "conftest.py", "**/__init__.py")  # fmt: skip


class MissingTestsReviewer:
    """Reports source files with added lines when the change touches no test file."""

    name = "missing-tests"

    def __init__(self, options: Options | None = None):
        options = options or {}
        check_known(options, self.name, ("ignore",))
        self.ignore = option_globs(options, self.name, "ignore", _DEFAULT_IGNORE)

    async def review(self, change: Change) -> list[Finding]:
        if any(is_test_path(f.path) or (f.previous_path and is_test_path(f.previous_path))
               for f in change):  # fmt: skip
            return []
        findings = []
        for changed in change:
            if (
                changed.status == "removed"
                or changed.binary
                or suffix(changed.path) not in SOURCE_SUFFIXES
                or self.ignore.match_file(changed.path)
                or not changed.added_lines
            ):
                continue
            findings.append(
                Finding.create(
                    reviewer=self.name,
                    rule="missing-tests",
                    severity="warning",
                    path=changed.path,
                    message=(
                        f"{changed.path} changed ({changed.additions} lines added) "
                        "but no test file changed."
                    ),
                    snippet=changed.path,
                    suggestion="Add or update a test that covers this change.",
                )
            )
        return findings
