"""Login with an API key, logout, and the dashboard's static files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from writgate.auth import Unauthorized

from .pages import (
    SECURITY_HEADERS,
    HtmlRoute,
    local_path,
    optional_viewer,
    page,
    read_form,
    sessions,
    set_cookie,
)
from .sessions import CSRF_COOKIE, SESSION_COOKIE, SessionManager

__all__ = ["router"]

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)

_STATIC = Path(__file__).parent / "static"
_STATIC_TYPES = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
}


@router.get("/login")
async def login_form(
    request: Request, next: Annotated[str | None, Query(max_length=2000)] = None
) -> HTMLResponse:
    """The login form (field ``key``)."""
    current = await optional_viewer(request)
    return page(
        request,
        "login.html",
        {"next": local_path(next), "logged_in_org": current.org if current else None},
    )


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the API key and start a session (HttpOnly, SameSite=Lax cookie)."""
    form = await read_form(request, None)
    target = local_path(form.get("next"))
    try:
        _session, cookie = await sessions(request).login(form.get("key", ""))
    except Unauthorized:
        return page(
            request,
            "login.html",
            {"next": target, "logged_in_org": None, "error": "That API key is not valid."},
            status_code=401,
        )
    response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    manager = sessions(request)
    set_cookie(request, response, SESSION_COOKIE, cookie, manager.lifetime)
    # A new CSRF nonce at login: a token seen before the login is worthless after it.
    set_cookie(request, response, CSRF_COOKIE, SessionManager.new_nonce(), 30 * 24 * 3600)
    return response


@router.get("/logout")
async def logout_form(request: Request) -> HTMLResponse:
    """A confirmation form (logging out is a POST, like every action)."""
    current = await optional_viewer(request)
    if current is not None:
        request.state.viewer = current
    return page(request, "logout.html")


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session."""
    current = await optional_viewer(request)
    await read_form(request, current)
    response = RedirectResponse("/login", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.get("/_dashboard/static/{name}")
async def static(name: str) -> Response:
    """The stylesheet and the script (a fixed list of files)."""
    media_type = _STATIC_TYPES.get(name)
    if media_type is None:
        return Response(status_code=404)
    return Response(
        (_STATIC / name).read_bytes(),
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )
