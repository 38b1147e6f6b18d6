"""Secrets on added lines: well-known token formats plus high-entropy assignments.

The value of a secret is never stored, logged or shown: a finding names the kind of secret and
where it is; its fingerprint hashes the line with the value replaced by ``<redacted>``.
A line carrying ``pragma: allowlist secret`` (the detect-secrets convention) is skipped.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from ..change import Change
from ..errors import ReviewConfigError
from ..findings import Finding, Severity
from .base import Options, check_known, option_bool

__all__ = ["PATTERNS", "SecretsReviewer", "redact", "secret_values", "shannon_entropy"]


@dataclass(frozen=True)
class SecretPattern:
    """A token format: its rule id, a human name and the regex (group ``value`` = the secret)."""

    rule: str
    kind: str
    regex: re.Pattern[str]
    severity: Severity = "error"


def _p(rule: str, kind: str, regex: str, severity: Severity = "error") -> SecretPattern:
    return SecretPattern(rule, kind, re.compile(regex), severity)


PATTERNS: tuple[SecretPattern, ...] = (
    _p(
        "aws-access-key", "AWS access key ID", r"\b(?P<value>(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16})\b"
    ),
    _p(
        "aws-secret-key",
        "AWS secret access key",
        r"(?i)aws_?secret_?(?:access_?)?key[\"']?\s*[:=]\s*[\"']?(?P<value>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
    ),
    _p(
        "github-token",
        "GitHub token",
        r"\b(?P<value>gh[pousr]_[A-Za-z0-9]{36,255})\b",
    ),
    _p(
        "github-token",
        "GitHub fine-grained token",
        r"\b(?P<value>github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})\b",
    ),
    _p("slack-token", "Slack token", r"\b(?P<value>xox[abposr]-[A-Za-z0-9-]{10,250})"),
    _p(
        "slack-webhook",
        "Slack webhook URL",
        r"(?P<value>https://hooks\.slack\.com/services/T[A-Za-z0-9_]{6,}/B[A-Za-z0-9_]{6,}/[A-Za-z0-9_]{20,})",
    ),
    _p("stripe-key", "Stripe live secret key", r"\b(?P<value>[sr]k_live_[A-Za-z0-9]{16,247})\b"),
    _p(
        "stripe-key",
        "Stripe test secret key",
        r"\b(?P<value>[sr]k_test_[A-Za-z0-9]{16,247})\b",
        "warning",
    ),
    _p(
        "google-api-key", "Google API key", r"\b(?P<value>AIza[0-9A-Za-z_\-]{35})(?![0-9A-Za-z_\-])"
    ),
    _p(
        "private-key",
        "private key",
        r"(?P<value>-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?"
        r"PRIVATE KEY(?: BLOCK)?-----)",
    ),
)

# name = "value" where the name says it holds a credential.
_ASSIGNMENT = re.compile(
    r"(?i)(?P<name>[A-Za-z0-9_.\-]*(?:secret|token|passw(?:or)?d|pwd|api[_\-]?key|access[_\-]?key"
    r"|auth[_\-]?key|private[_\-]?key|credential|client[_\-]?secret)[A-Za-z0-9_.\-]*)[\"']?"
    r"\s*(?::=|=>|==|=|:)\s*[\"'](?P<value>[^\"'\s]{12,})[\"']"
)
_PLACEHOLDER = re.compile(
    r"(?i)^(?:\$\{.*\}|\$[A-Z_]+|<.*>|\{\{.*\}\}|%\(.*\)s|x{6,}|\*{6,}|(?:change|replace)[_-]?me.*"
    r"|your[_-].*|example.*|dummy.*|fake.*|test.*|placeholder.*|redacted.*|none|null|true|false)$"
)
_ALLOW = "pragma: allowlist secret"
# A cheap first look (on the lower-cased line): a line with none of these substrings cannot
# match any pattern above, and most lines of a change hold none of them.
_KEYWORDS = (
    "akia", "asia", "abia", "acca", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox",
    "hooks.slack.com", "sk_live", "sk_test", "rk_live", "rk_test", "aiza", "private key",
    "secret", "token", "passw", "pwd", "apikey", "api_key", "api-key", "accesskey", "access_key",
    "access-key", "authkey", "auth_key", "auth-key", "privatekey", "private_key", "private-key",
    "credential",
)  # fmt: skip


_QUICK = re.compile("|".join(re.escape(keyword) for keyword in _KEYWORDS))


def _might_hold_secret(line: str) -> bool:
    return _QUICK.search(line.lower()) is not None


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value``."""
    if not value:
        return 0.0
    counts = Counter(value)
    total = len(value)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


class SecretsReviewer:
    """Finds credentials added by the change (values redacted)."""

    name = "secrets"

    def __init__(self, options: Options | None = None):
        options = options or {}
        check_known(options, self.name, ("entropy", "minEntropy"))
        self.entropy = option_bool(options, self.name, "entropy", True)
        threshold = options.get("minEntropy", 3.5)
        if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
            raise ReviewConfigError("must be a number", field="reviewers.secrets.minEntropy")
        self.min_entropy = float(threshold)

    async def review(self, change: Change) -> list[Finding]:
        findings = []
        for changed in change:
            for number, line in changed.added_lines.items():
                if _ALLOW in line:
                    continue
                for rule, kind, severity, redacted in self._scan(line):
                    findings.append(
                        Finding.create(
                            reviewer=self.name,
                            rule=rule,
                            severity=severity,
                            path=changed.path,
                            start_line=number,
                            message=f"Possible {kind} added (value redacted).",
                            snippet=redacted,
                            suggestion=(
                                "Remove it from the change, revoke it, and load it from a secret "
                                "store or the environment."
                            ),
                        )
                    )
        return findings

    def values(self, line: str) -> list[str]:
        """The secret values on ``line`` (for redaction only; never store or print them)."""
        return [line[start:end] for start, end in self._spans(line)[1]]

    def _scan(self, line: str) -> list[tuple[str, str, Severity, str]]:
        """``(rule, kind, severity, line with the value redacted)`` per secret on ``line``."""
        hits, spans = self._spans(line)
        if not hits:
            return []
        redacted = line
        for start, end in sorted(spans, reverse=True):
            redacted = redacted[:start] + "<redacted>" + redacted[end:]
        return [(rule, kind, severity, redacted) for rule, kind, severity, _ in hits]

    def _spans(
        self, line: str
    ) -> tuple[list[tuple[str, str, Severity, str]], list[tuple[int, int]]]:
        hits: list[tuple[str, str, Severity, str]] = []
        spans: list[tuple[int, int]] = []
        if not _might_hold_secret(line):
            return hits, spans
        for pattern in PATTERNS:
            for match in pattern.regex.finditer(line):
                start, end = match.span("value")
                if any(start < e and s < end for s, e in spans):
                    continue
                spans.append((start, end))
                hits.append((pattern.rule, pattern.kind, pattern.severity, ""))
        if self.entropy:
            for match in _ASSIGNMENT.finditer(line):
                start, end = match.span("value")
                value = match.group("value")
                if any(start < e and s < end for s, e in spans):
                    continue
                if _PLACEHOLDER.match(value) or shannon_entropy(value) < self.min_entropy:
                    continue
                spans.append((start, end))
                hits.append(
                    (
                        "high-entropy-assignment",
                        "secret assigned to a credential name",
                        "warning",
                        "",
                    )
                )
        return hits, spans


def secret_values(change: Change) -> set[str]:
    """Every secret value on the change's added lines, to redact other reviewers' output."""
    cached = change.cache.get("secrets.values")
    if cached is None:
        scanner = SecretsReviewer()
        cached = set()
        for changed in change:
            for line in changed.added_lines.values():
                cached.update(scanner.values(line))
        change.cache["secrets.values"] = cached
    return set(cached)


def redact(text: str, values: set[str]) -> str:
    """``text`` with each of ``values`` replaced by ``<redacted>``."""
    for value in sorted(values, key=len, reverse=True):
        if value and value in text:
            text = text.replace(value, "<redacted>")
    return text
