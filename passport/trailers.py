"""Commit trailers (``Writgate-Run: run_…``, ``Assisted-by: agent:model``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["ASSISTED_TRAILER", "RUN_TRAILER", "merge_trailers", "parse_trailers", "trailer_values"]

RUN_TRAILER = "Writgate-Run"
ASSISTED_TRAILER = "Assisted-by"
_TRAILER = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*)\s*:\s*(.*?)\s*$")


def parse_trailers(message: str) -> dict[str, list[str]]:
    """The trailers of one commit message: the ``Key: value`` lines of its last paragraph."""
    paragraphs = [p for p in re.split(r"\n\s*\n", message.strip()) if p.strip()]
    if len(paragraphs) < 2:  # the subject line alone is never a trailer block
        return {}
    found: dict[str, list[str]] = {}
    for line in paragraphs[-1].splitlines():
        match = _TRAILER.match(line)
        if match is None:
            if line[:1].isspace() and found:  # a folded continuation line
                continue
            return {}
        found.setdefault(match.group(1), []).append(match.group(2))
    return found


def merge_trailers(messages: Iterable[str]) -> dict[str, list[str]]:
    """The trailers of several commits, values in commit order without duplicates."""
    merged: dict[str, list[str]] = {}
    for message in messages:
        for key, values in parse_trailers(message).items():
            bucket = merged.setdefault(key, [])
            bucket.extend(v for v in values if v not in bucket)
    return merged


def trailer_values(trailers: Mapping[str, Sequence[str]], key: str) -> list[str]:
    """The values of trailer ``key`` (case-insensitive, as git treats trailer keys)."""
    wanted = key.lower()
    return [v for k, values in trailers.items() if k.lower() == wanted for v in values]
