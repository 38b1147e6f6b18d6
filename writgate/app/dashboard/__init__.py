"""The dashboard: server-rendered pages of runs, pipelines, passports, gate decisions and the
local forge's pull requests, for people logged in with an API key (DESIGN.md §2, issue 12).

Pages are Jinja2 templates with autoescaping, plain CSS and a small script that only adds live
updates (Server-Sent Events); every page works without JavaScript. Sessions and CSRF tokens are
in :mod:`.sessions`; every route is org-scoped (another org's resource is a 404 page).
"""

from __future__ import annotations

from fastapi import APIRouter

from . import forge, gate, login, pipelines, runs
from .sessions import SESSION_COOKIE, Session, SessionManager, load_session_secret

__all__ = ["SESSION_COOKIE", "Session", "SessionManager", "load_session_secret", "router"]

router = APIRouter(include_in_schema=False)
for _module in (login, runs, pipelines, gate, forge):
    router.include_router(_module.router)
