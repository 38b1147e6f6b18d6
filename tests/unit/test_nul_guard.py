"""The API's edge finds a NUL in the path, a query parameter or any string of a JSON body."""

from __future__ import annotations

import pytest

from writgate.app.nul_guard import nul_field


@pytest.mark.parametrize(
    ("path", "query", "body", "expected"),
    [
        ("/api/v1/runs", b"", None, None),
        ("/api/v1/runs/run_\x00", b"", None, ("path", "path")),
        ("/api/v1/runs", b"repository=a%00b&tag=x", None, ("/repository", "query")),
        ("/api/v1/runs", b"tag=x&t%00ag=y", None, ("/tag", "query")),
        ("/x", b"", b'{"a": {"b/c": ["ok", "n\\u0000"]}}', ("/a/b~1c/1", "body")),
        ("/x", b"", b'{"k\\u0000": 1}', ("/k\x00", "body")),
        ("/x", b"", b'"\\u0000"', ("/", "body")),
        ("/x", b"", b'{"escaped": "\\\\u0000 is six characters"}', None),
        ("/x", b"", b"not json \x00", None),  # the route's own parsing reports that
        ("/x", b"", b"[" * 100_000 + b'"\\u0000"' + b"]" * 100_000, None),  # and too deep
    ],
)
def test_nul_field(
    path: str, query: bytes, body: bytes | None, expected: tuple[str, str] | None
) -> None:
    assert nul_field(path, query, body) == expected
