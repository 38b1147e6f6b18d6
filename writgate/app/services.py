"""The services a running server offers its routers, built once at start-up."""

from __future__ import annotations

from writgate.web import AppState

__all__ = ["build_services"]


def build_services(state: AppState) -> None:
    """Register every domain service in ``state.services`` (routers use ``web.service``)."""
    del state  # no domain service yet
