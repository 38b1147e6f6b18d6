"""Large diff: a change too big to review well."""

from __future__ import annotations

from ..change import Change
from ..findings import Finding
from .base import Options, check_known, option_int

__all__ = ["LargeDiffReviewer"]


class LargeDiffReviewer:
    """Warns when the change exceeds a line or file budget."""

    name = "large-diff"

    def __init__(self, options: Options | None = None):
        options = options or {}
        check_known(options, self.name, ("maxLines", "maxFiles", "maxFileLines"))
        self.max_lines = option_int(options, self.name, "maxLines", 500)
        self.max_files = option_int(options, self.name, "maxFiles", 50)
        self.max_file_lines = option_int(options, self.name, "maxFileLines", 400)

    async def review(self, change: Change) -> list[Finding]:
        totals = change.totals
        findings = []
        if totals["lines"] > self.max_lines:
            findings.append(
                Finding.create(
                    reviewer=self.name,
                    rule="large-diff",
                    severity="warning",
                    message=(
                        f"The change has {totals['lines']} changed lines "
                        f"(budget {self.max_lines}); consider splitting it."
                    ),
                    snippet="lines",
                )
            )
        if totals["files"] > self.max_files:
            findings.append(
                Finding.create(
                    reviewer=self.name,
                    rule="many-files",
                    severity="warning",
                    message=(
                        f"The change touches {totals['files']} files "
                        f"(budget {self.max_files}); consider splitting it."
                    ),
                    snippet="files",
                )
            )
        for changed in change:
            lines = changed.additions + changed.deletions
            if lines > self.max_file_lines:
                findings.append(
                    Finding.create(
                        reviewer=self.name,
                        rule="large-file-diff",
                        severity="info",
                        path=changed.path,
                        message=f"{changed.path} has {lines} changed lines.",
                        snippet=changed.path,
                    )
                )
        return findings
