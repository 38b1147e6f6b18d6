"""Redaction of secrets in text that is about to be stored, logged or sent."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["SECRET_PATTERNS", "redact"]

# Common credential formats. Redaction errs on the side of hiding.
SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "github-token",
        re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{20,255}|github_pat_[A-Za-z0-9_]{22,255})"),
    ),
    ("aws-access-key-id", re.compile(r"\b((?:AKIA|ASIA)[A-Z0-9]{16})\b")),
    ("slack-token", re.compile(r"\b(xox[abposr]-[A-Za-z0-9-]{10,})")),
    ("stripe-key", re.compile(r"\b((?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,})")),
    ("openai-key", re.compile(r"\b(sk-(?:proj-)?[A-Za-z0-9_-]{20,})")),
    ("anthropic-key", re.compile(r"\b(sk-ant-[A-Za-z0-9_-]{20,})")),
    ("google-api-key", re.compile(r"\b(AIza[0-9A-Za-z_-]{35})")),
    ("writgate-key", re.compile(r"\b((?:wg|whsec)_[A-Za-z0-9+/=_-]{16,})")),
    (
        "private-key",
        re.compile(
            r"(-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$))"
        ),
    ),
    ("bearer", re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/=-]{16,})")),
    ("url-credentials", re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:([^/\s@]+)@")),
)


def redact(text: str, extra_values: Iterable[str] = ()) -> str:
    """``text`` with known secret formats and the given literal values replaced by a marker."""
    for value in extra_values:
        if value and len(value) >= 6:
            text = text.replace(value, "[REDACTED]")
    for kind, pattern in SECRET_PATTERNS:
        marker = f"[REDACTED:{kind}]"

        def hide(match: re.Match[str], marker: str = marker) -> str:
            return match.group(0).replace(match.group(1), marker)

        text = pattern.sub(hide, text)
    return text
