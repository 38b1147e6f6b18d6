"""Templates of the dashboard: the Jinja2 environment (autoescaped) and its filters."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

__all__ = ["TEMPLATES", "age", "environment", "short_sha"]

TEMPLATES = Path(__file__).parent / "templates"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _parse(value: datetime | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return _aware(value)
    try:
        return _aware(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        return None


def age(value: datetime | str | None, now: datetime | None = None) -> str:
    """``42s``, ``5m``, ``3h``, ``2d`` since ``value`` (``—`` when unknown)."""
    moment = _parse(value)
    if moment is None:
        return "—"
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    if seconds < 0:
        seconds = 0
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def timestamp(value: datetime | str | None) -> str:
    """``2026-11-28 21:04:05 UTC`` (empty when unknown)."""
    moment = _parse(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def clock(value: datetime | str | None) -> str:
    """``21:04:05`` (UTC) for dense logs."""
    moment = _parse(value)
    return moment.astimezone(UTC).strftime("%H:%M:%S") if moment else ""


def iso(value: datetime | str | None) -> str:
    """An ISO 8601 UTC timestamp for ``datetime`` attributes."""
    moment = _parse(value)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else ""


def short_sha(value: Any, length: int = 12) -> str:
    """The first characters of a commit or digest."""
    return str(value or "")[:length]


def pretty_json(value: Any) -> str:
    """Indented JSON (escaped by autoescaping like any text)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def compact(value: Any, limit: int = 240) -> str:
    """A one-line rendering of a value, cut at ``limit`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def number(value: Any, digits: int = 2) -> str:
    """A number without noise (``12``, ``0.35``)."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}".rstrip("0").rstrip(".") if value else "0"
    return str(value)


def environment() -> jinja2.Environment:
    """The dashboard's environment: autoescape on for every template, strict undefined."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        age=age,
        timestamp=timestamp,
        clock=clock,
        iso=iso,
        short_sha=short_sha,
        pretty_json=pretty_json,
        compact=compact,
        number=number,
    )
    return env
