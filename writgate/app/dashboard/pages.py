"""Request glue of the dashboard: who is logged in, CSRF checks, flash messages, HTML responses.

Every dashboard route uses :class:`HtmlRoute`: domain errors become HTML error pages (another
org's resource is a plain 404 page), a missing session redirects to ``/login``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from writgate import errors
from writgate.auth import Unauthorized
from writgate.redact import redact
from writgate.web import app_state

from .rendering import environment
from .sessions import CSRF_COOKIE, FLASH_COOKIE, SESSION_COOKIE, Session, SessionManager

__all__ = [
    "SECURITY_HEADERS",
    "CsrfFailure",
    "HtmlRoute",
    "LoginRequired",
    "Viewer",
    "csrf_failure",
    "error_page",
    "flash_redirect",
    "local_path",
    "optional_viewer",
    "page",
    "read_form",
    "sessions",
    "set_cookie",
    "viewer",
]

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

_ENV: jinja2.Environment = environment()
_STATUS_TITLES = {
    400: "Bad request",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    422: "Invalid input",
    500: "Server error",
    503: "Unavailable",
}


class LoginRequired(Exception):
    """The page needs a logged-in session."""


class CsrfFailure(Exception):
    """A form was posted without a valid CSRF token."""


@dataclass(frozen=True)
class Viewer:
    """Who is looking: the org of a verified session."""

    session: Session

    @property
    def org(self) -> str:
        return self.session.org


def sessions(request: Request) -> SessionManager:
    """The app's :class:`SessionManager`."""
    manager: SessionManager = app_state(request).services["dashboard.sessions"]
    return manager


async def optional_viewer(request: Request) -> Viewer | None:
    """The logged-in viewer, or ``None``."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        return Viewer(await sessions(request).verify(cookie))
    except Unauthorized:
        return None


async def viewer(request: Request) -> Viewer:
    """A FastAPI dependency: the logged-in viewer (else a redirect to the login page)."""
    found = await optional_viewer(request)
    if found is None:
        raise LoginRequired
    request.state.viewer = found
    return found


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` when it is a path on this site (no scheme, no host), else ``default``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def _nonce(request: Request) -> tuple[str, bool]:
    existing = request.cookies.get(CSRF_COOKIE)
    if existing and 16 <= len(existing) <= 64:
        return existing, False
    cached = getattr(request.state, "csrf_nonce", None)
    if cached:
        return str(cached), True
    nonce = SessionManager.new_nonce()
    request.state.csrf_nonce = nonce
    return nonce, True


def _secure(request: Request) -> bool:
    # Behind a TLS-terminating proxy the request arrives as http: trust the public URL too.
    public: str = getattr(app_state(request).services.get("judge.gate"), "public_url", "")
    return request.url.scheme == "https" or public.startswith("https://")


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    """An HttpOnly, SameSite=Lax cookie for the whole site (Secure over https)."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )


def page(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """Render ``template`` with the viewer, a CSRF token and the pending flash message."""
    found: Viewer | None = getattr(request.state, "viewer", None)
    nonce, new_nonce = _nonce(request)
    manager = sessions(request)
    flash = manager.read_flash(request.cookies.get(FLASH_COOKIE))
    html = _ENV.get_template(template).render(
        {
            "viewer": found,
            "csrf_token": manager.csrf_token(nonce, found.session.session_id if found else ""),
            "flash": flash,
            "path": request.url.path,
            **(context or {}),
        }
    )
    response = HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
    if new_nonce:
        set_cookie(request, response, CSRF_COOKIE, nonce, 30 * 24 * 3600)
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


async def read_form(request: Request, viewer: Viewer | None) -> dict[str, str]:
    """The posted form, after its CSRF token and origin were checked (:class:`CsrfFailure`)."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        expected = f"{request.url.scheme}://{request.url.netloc}"
        if origin.rstrip("/") != expected:
            raise CsrfFailure
    form = await request.form()
    values = {key: value for key, value in form.items() if isinstance(value, str)}
    session_id = viewer.session.session_id if viewer else ""
    if not sessions(request).check_csrf(
        request.cookies.get(CSRF_COOKIE), session_id, values.get("csrf")
    ):
        raise CsrfFailure
    return values


def flash_redirect(request: Request, target: str, kind: str, text: str) -> RedirectResponse:
    """Redirect (303) to ``target`` showing ``text`` once."""
    response = RedirectResponse(local_path(target), status_code=303, headers=SECURITY_HEADERS)
    set_cookie(request, response, FLASH_COOKIE, sessions(request).flash_cookie(kind, text), 120)
    return response


def csrf_failure(request: Request) -> HTMLResponse:
    """The page for a form posted without a valid token."""
    return error_page(
        request,
        403,
        "The form has expired or was not sent from this site. Go back, reload the page and "
        "try again.",
    )


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    """An HTML error page."""
    return page(
        request,
        "error.html",
        {
            "status": status,
            "title": _STATUS_TITLES.get(status, "Error"),
            "message": redact(message),  # it may quote a value or a forge message
        },
        status_code=status,
    )


def _status_of(exc: errors.WritgateError) -> int:
    from writgate.app.server import _status_for

    return _status_for(exc)


class HtmlRoute(APIRoute):
    """A route whose errors are HTML pages and whose missing session redirects to /login."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except LoginRequired:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(
                    "/login?next=" + quote(target, safe=""),
                    status_code=303,
                    headers=SECURITY_HEADERS,
                )
            except CsrfFailure:
                return csrf_failure(request)
            except Unauthorized as exc:
                return error_page(request, 401, exc.message)
            except errors.NotFoundError:
                return error_page(request, 404, "There is nothing here, or it is not yours to see.")
            except errors.WritgateError as exc:
                return error_page(request, _status_of(exc), exc.message)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = "/".join(str(p) for p in first.get("loc", ()) if p != "query")
                return error_page(request, 422, f"{where}: {first.get('msg', 'invalid')}")
            except StarletteHTTPException as exc:
                return error_page(request, exc.status_code, str(exc.detail))

        return handler
