"""Redaction of secrets in text that is about to be stored, logged or sent.

Three sources of what to hide: the common credential formats (:data:`SECRET_PATTERNS`), the
literal values of the host's own credentials (environment variables named like a token, secret,
password or API key, :func:`host_secret_values`) and the literal values a caller passes (the
agent's credentials). A :class:`Redactor` does the same over a stream of lines: it hides the lines
of a private key block between its BEGIN and END lines, and a value it once recognised (an AWS
secret key after ``aws_secret_access_key=``) also where it appears alone later.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping

__all__ = [
    "SECRET_PATTERNS",
    "RedactingFilter",
    "Redactor",
    "host_secret_values",
    "install_log_redaction",
    "redact",
]

# Common credential formats. Redaction errs on the side of hiding. Group 1 is the secret.
SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "github-token",
        re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{20,255}|github_pat_[A-Za-z0-9_]{22,255})"),
    ),
    ("aws-access-key-id", re.compile(r"\b((?:AKIA|ASIA)[A-Z0-9]{16})\b")),
    (
        "aws-secret-access-key",
        re.compile(
            r"(?i)aws[_-]?secret[_-]?(?:access[_-]?)?key[\"']?\s*(?:[:=]|=>)\s*[\"']?"
            r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"
        ),
    ),
    ("slack-token", re.compile(r"\b(xox[abposr]-[A-Za-z0-9-]{10,})")),
    ("stripe-key", re.compile(r"\b((?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,})")),
    ("anthropic-key", re.compile(r"\b(sk-ant-[A-Za-z0-9_-]{20,})")),
    ("openai-key", re.compile(r"\b(sk-(?:proj-)?[A-Za-z0-9_-]{20,})")),
    ("google-api-key", re.compile(r"\b(AIza[0-9A-Za-z_-]{35})")),
    ("writgate-key", re.compile(r"\b((?:wg|whsec)_[A-Za-z0-9+/=_-]{16,})")),
    ("jwt", re.compile(r"\b(eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})")),
    (
        "private-key",
        re.compile(
            r"(-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$))"
        ),
    ),
    ("bearer", re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/=-]{16,})")),
    ("url-credentials", re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:([^/\s@]+)@")),
)

# Host environment variables whose values are credentials (names, case-insensitive).
_SECRET_NAME = re.compile(
    r"(?i)(TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY)"
)
_NOT_A_VALUE = re.compile(r"(?i)_(FILE|PATH|DIR|URL)$")
_MIN_VALUE = 8
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_PEM_END = re.compile(r"-----END [A-Z ]*PRIVATE KEY-----")
_MARKER = "[REDACTED]"


# Literal text every match of a pattern contains (lower-cased): a text without any of a
# pattern's anchors is not searched with it (most text has none, and search costs).
_ANCHORS: dict[str, tuple[str, ...]] = {
    "github-token": ("gh", "github_pat_"),
    "aws-access-key-id": ("akia", "asia"),
    "aws-secret-access-key": ("aws",),
    "slack-token": ("xox",),
    "stripe-key": ("k_live_", "k_test_"),
    "anthropic-key": ("sk-ant-",),
    "openai-key": ("sk-",),
    "google-api-key": ("aiza",),
    "writgate-key": ("wg_", "whsec_"),
    "jwt": ("eyj",),
    "private-key": ("private key-----",),
    "bearer": ("bearer",),
    "url-credentials": ("://",),
}
_host_cache: tuple[object, list[str]] = ((), [])


def host_secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of the environment's credential variables (``GITHUB_TOKEN``, ``*_API_KEY``, …).

    Names ending in ``_FILE``, ``_PATH``, ``_DIR`` or ``_URL`` point at credentials rather than
    hold them; values shorter than 8 characters (``1``, ``on``) are settings, not secrets.
    """
    global _host_cache
    if environ is None:
        # Scanning os.environ decodes every variable: do it again only when it changed.
        raw = getattr(os.environ, "_data", None)
        key: object = tuple(raw.items()) if isinstance(raw, dict) else None
        if key is not None and key == _host_cache[0]:
            return _host_cache[1]
        values = host_secret_values(dict(os.environ))
        if key is not None:
            _host_cache = (key, values)
        return values
    return [
        value
        for name, value in environ.items()
        if len(value) >= _MIN_VALUE and _SECRET_NAME.search(name) and not _NOT_A_VALUE.search(name)
    ]


def _hide_values(text: str, values: Iterable[str]) -> str:
    for value in sorted({v for v in values if v and len(v) >= 6}, key=len, reverse=True):
        text = text.replace(value, _MARKER)
    return text


def _hide_patterns(text: str, found: set[str] | None = None) -> str:
    lowered = text.lower()
    for kind, pattern in SECRET_PATTERNS:
        anchors = _ANCHORS.get(kind)
        if anchors is not None and not any(anchor in lowered for anchor in anchors):
            continue
        marker = f"[REDACTED:{kind}]"

        def hide(match: re.Match[str], marker: str = marker) -> str:
            if found is not None and len(match.group(1)) >= _MIN_VALUE:
                found.add(match.group(1))
            return match.group(0).replace(match.group(1), marker)

        text = pattern.sub(hide, text)
    return text


def redact(text: str, extra_values: Iterable[str] = ()) -> str:
    """``text`` with known secret formats, the host's credentials and the given literal values
    replaced by a marker."""
    text = _hide_values(text, [*extra_values, *host_secret_values()])
    return _hide_patterns(text)


class Redactor:
    """Redacts the lines of one output (an agent's stdout and stderr) as they come.

    Unlike :func:`redact` on each line alone, it hides every line of a private key block (its
    BEGIN and END lines arrive as separate lines), and it remembers each secret it recognised so
    that the same value printed alone later is hidden too.
    """

    def __init__(self, extra_values: Iterable[str] = ()):
        self.values: set[str] = {v for v in extra_values if v and len(v) >= 6}
        self.values.update(host_secret_values())
        self._in_key: set[str] = set()

    def text(self, text: str) -> str:
        """``text`` redacted; the secrets recognised in it are remembered."""
        found: set[str] = set()
        text = _hide_patterns(_hide_values(text, self.values), found)
        self.values.update(found)
        return text

    def line(self, line: str, stream: str = "") -> str:
        """One line of ``stream``: inside a private key block, the whole line is hidden."""
        if stream in self._in_key:
            if _PEM_END.search(line):
                self._in_key.discard(stream)
                return "[REDACTED:private-key]" + self.text(_PEM_END.split(line, 1)[1])
            return "[REDACTED:private-key]"
        begin = _PEM_BEGIN.search(line)
        if begin and not _PEM_END.search(line, begin.end()):
            self._in_key.add(stream)
        return self.text(line)


class RedactingFilter(logging.Filter):
    """A handler filter: the record's message and traceback, redacted (it never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def install_log_redaction() -> None:
    """Add a :class:`RedactingFilter` to every handler logging knows of now (the root's, every
    logger's, the last-resort one): what the process logs, the libraries' too, is redacted."""
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    handlers = {handler for logger in loggers for handler in logger.handlers}
    if logging.lastResort is not None:
        handlers.add(logging.lastResort)
    for handler in handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
