"""Sensitive paths: files whose change deserves a closer look (configurable globs)."""

from __future__ import annotations

from ..change import Change
from ..errors import ReviewConfigError
from ..findings import Finding, Severity
from .base import Options, check_known, option_globs

__all__ = ["DEFAULT_SENSITIVE_PATHS", "SensitivePathsReviewer"]

DEFAULT_SENSITIVE_PATHS = (
    ".github/workflows/**",
    ".github/actions/**",
    ".gitlab-ci.yml",
    "CODEOWNERS",
    ".github/CODEOWNERS",
    "**/.env",
    "**/.env.*",
    "**/*.pem",
    "**/*.key",
    "**/id_rsa*",
    "**/id_ed25519*",
    "**/*.tf",
    "**/Dockerfile",
    "**/docker-compose*.yml",
    "**/.npmrc",
    "**/.pypirc",
    "**/migrations/**",
)


class SensitivePathsReviewer:
    """Flags changes to paths that match the configured globs."""

    name = "sensitive-paths"

    def __init__(self, options: Options | None = None):
        options = options or {}
        check_known(options, self.name, ("paths", "severity"))
        self.matcher = option_globs(options, self.name, "paths", DEFAULT_SENSITIVE_PATHS)
        severity = options.get("severity", "warning")
        if severity not in ("error", "warning", "info"):
            raise ReviewConfigError(
                "must be error, warning or info", field=f"reviewers.{self.name}.severity"
            )
        self.severity: Severity = severity

    async def review(self, change: Change) -> list[Finding]:
        findings = []
        for changed in change:
            candidates = [changed.path] + ([changed.previous_path] if changed.previous_path else [])
            if not any(self.matcher.match_file(path) for path in candidates):
                continue
            findings.append(
                Finding.create(
                    reviewer=self.name,
                    rule="sensitive-path",
                    severity=self.severity,
                    path=changed.path,
                    message=f"Sensitive path {changed.status}: {changed.path}.",
                    snippet=f"{changed.status} {changed.path}",
                    suggestion="Ask an owner of this area to review the change.",
                )
            )
        return findings
