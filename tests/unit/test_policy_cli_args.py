"""``--since`` parsing of ``writgate policy simulate``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from writgate.app.cli.policy import parse_since
from writgate.errors import InputError

NOW = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", NOW - timedelta(days=30)),
        ("12h", NOW - timedelta(hours=12)),
        ("2w", NOW - timedelta(weeks=2)),
        ("90m", NOW - timedelta(minutes=90)),
        (" 45s ", NOW - timedelta(seconds=45)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T08:30:00Z", datetime(2026, 11, 1, 8, 30, tzinfo=UTC)),
        (
            "2026-11-01T08:30:00+02:00",
            datetime(2026, 11, 1, 8, 30, tzinfo=timezone(timedelta(hours=2))),
        ),
    ],
)
def test_since(text: str, expected: datetime) -> None:
    assert parse_since(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["", "soon", "30", "d30", "-3d", "3 days", "2026-13-01"])
def test_bad_since(text: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_since(text, now=NOW)
    assert caught.value.field == "--since"
