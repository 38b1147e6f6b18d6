"""Debug leftovers: breakpoints and debug prints added by the change."""

from __future__ import annotations

import re

from ..change import Change
from ..findings import Finding, Severity
from .base import Options, check_known, is_test_path, option_bool, suffix

__all__ = ["DebugLeftoversReviewer"]

_PY = (".py", ".pyi")
_JS = (".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs", ".vue", ".svelte")
_RB = (".rb",)

# (suffixes, rule, severity, regex, what)
_RULES: tuple[tuple[tuple[str, ...], str, Severity, re.Pattern[str], str], ...] = (
    (_PY, "breakpoint", "warning", re.compile(r"^\s*breakpoint\(\s*\)"), "breakpoint()"),
    (_PY, "breakpoint", "warning",
     re.compile(r"^\s*(?:import\s+i?pdb\b|from\s+i?pdb\s+import\b|.*\bi?pdb\.set_trace\(\))"),
     "pdb"),
    (_PY, "debug-print", "info", re.compile(r"^\s*print\s*\("), "print()"),
    (_JS, "breakpoint", "warning", re.compile(r"^\s*debugger\s*;?\s*$"), "debugger statement"),
    (_JS, "debug-print", "info", re.compile(r"\bconsole\.(?:log|debug|trace|dir)\s*\("),
     "console.log()"),
    (_RB, "breakpoint", "warning", re.compile(r"\b(?:binding\.pry|byebug|debugger)\b"),
     "debugger call"),
)  # fmt: skip
_COMMENT = re.compile(r"^\s*(?:#|//|/\*|\*)")
# Substrings one of which every rule of a language needs: most lines are skipped on them.
_WORDS = {
    **dict.fromkeys(_PY, ("breakpoint", "pdb", "print")),
    **dict.fromkeys(_JS, ("debugger", "console.")),
    **dict.fromkeys(_RB, ("binding.pry", "byebug", "debugger")),
}


class DebugLeftoversReviewer:
    """Reports ``breakpoint()``, ``pdb``, ``debugger``, ``print`` and ``console.log`` added."""

    name = "debug-leftovers"

    def __init__(self, options: Options | None = None):
        options = options or {}
        check_known(options, self.name, ("prints", "includeTests"))
        self.prints = option_bool(options, self.name, "prints", True)
        self.include_tests = option_bool(options, self.name, "includeTests", False)

    async def review(self, change: Change) -> list[Finding]:
        findings = []
        for changed in change:
            ext = suffix(changed.path)
            testing = is_test_path(changed.path)
            words = _WORDS.get(ext)
            if words is None:
                continue
            for number, line in changed.added_lines.items():
                if not any(word in line for word in words) or _COMMENT.match(line):
                    continue
                for suffixes, rule, severity, regex, what in _RULES:
                    if ext not in suffixes or not regex.search(line):
                        continue
                    if rule == "debug-print" and (
                        not self.prints or (testing and not self.include_tests)
                    ):
                        continue
                    findings.append(
                        Finding.create(
                            reviewer=self.name,
                            rule=rule,
                            severity=severity,
                            path=changed.path,
                            start_line=number,
                            message=f"{what} added; remove it before merging.",
                            snippet=line,
                        )
                    )
                    break
        return findings
