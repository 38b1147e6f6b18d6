"""Durations in pipeline specs: ``"10s"``, ``"30m"``, ``"1h30m"``, ``"250ms"`` or seconds."""

from __future__ import annotations

import math
import re

__all__ = ["format_duration", "parse_duration"]

_DURATION = re.compile(
    r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m(?!s))?(?:(?P<s>\d+(?:\.\d+)?)s)?(?:(?P<ms>\d+)ms)?$"
)
_HINT = "use a number of seconds or a string like 250ms, 10s, 30m, 1h30m"


def parse_duration(value: object) -> float:
    """Seconds in ``value``; raises ``ValueError`` with a readable message when it is not one."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"bad duration {value!r}: {_HINT}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        match = _DURATION.match(text) if text else None
        if text and text.replace(".", "", 1).isdigit():
            seconds = float(text)
        elif match is None or not any(match.groupdict().values()):
            raise ValueError(f"bad duration {value!r}: {_HINT}")
        else:
            parts = match.groupdict()
            seconds = (
                int(parts["h"] or 0) * 3600
                + int(parts["m"] or 0) * 60
                + float(parts["s"] or 0)
                + int(parts["ms"] or 0) / 1000
            )
    else:
        raise ValueError(f"bad duration {value!r}: {_HINT}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"bad duration {value!r}: it must be more than zero")
    if seconds > 7 * 24 * 3600:
        raise ValueError(f"bad duration {value!r}: at most one week (168h)")
    return seconds


def format_duration(seconds: float) -> str:
    """The canonical text of ``seconds`` (``5400`` -> ``"1h30m"``); parses back the same."""
    millis = round(seconds * 1000)
    if millis % 1000:
        if millis < 1000:
            return f"{millis}ms"
        return f"{millis / 1000:g}s"
    whole = millis // 1000
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    text += f"{secs}s" if secs or not text else ""
    return text
