"""The application shell: CLI, HTTP server and dashboard (imports every package)."""

from __future__ import annotations

__all__: list[str] = []
