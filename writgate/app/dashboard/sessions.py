"""Dashboard sessions: HMAC-signed cookies that name an API key, never hold it, and CSRF tokens.

A session cookie carries ``{key id, org, session id, expiry}`` signed with the server's session
secret (``WRITGATE_SESSION_SECRET``, else a random secret kept in ``$WRITGATE_HOME/dashboard/
session.key``). Each request re-checks that the key is still active, so revoking an API key ends
its sessions. CSRF tokens are HMACs of a random per-browser nonce (kept in its own HttpOnly
cookie) and the session id: a form posted from another site cannot know them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from writgate.auth import KeyStore, Unauthorized

__all__ = [
    "CSRF_COOKIE",
    "SESSION_COOKIE",
    "SESSION_SECONDS",
    "Session",
    "SessionManager",
    "load_session_secret",
]

SESSION_COOKIE = "writgate_session"
CSRF_COOKIE = "writgate_csrf"
FLASH_COOKIE = "writgate_flash"
SESSION_SECONDS = 12 * 3600
_MIN_SECRET_BYTES = 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_session_secret(home: Path, environ: dict[str, str] | None = None) -> bytes:
    """The signing secret: ``WRITGATE_SESSION_SECRET`` or a generated file under ``home``."""
    env = os.environ if environ is None else environ
    configured = env.get("WRITGATE_SESSION_SECRET")
    if configured:
        secret = configured.encode()
        if len(secret) < _MIN_SECRET_BYTES:
            from writgate.errors import ConfigError

            raise ConfigError(
                f"WRITGATE_SESSION_SECRET must be at least {_MIN_SECRET_BYTES} characters"
            )
        return secret
    path = home / "dashboard" / "session.key"
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    # O_EXCL: two processes starting at once agree on the first file written.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret)
    return secret


@dataclass(frozen=True)
class Session:
    """A verified dashboard session."""

    key_id: str
    org: str
    session_id: str
    expires_at: int


class SessionManager:
    """Issues and verifies session cookies and CSRF tokens."""

    def __init__(self, *, secret: bytes, keys: KeyStore, lifetime: int = SESSION_SECONDS):
        self._secret = secret
        self.keys = keys
        self.lifetime = lifetime

    def _sign(self, purpose: str, payload: bytes) -> bytes:
        return hmac.new(self._secret, purpose.encode() + b"\0" + payload, hashlib.sha256).digest()

    # -- sessions ---------------------------------------------------------------------------

    async def login(self, token: str) -> tuple[Session, str]:
        """Check an API key; the session and its cookie value (:class:`Unauthorized` if bad)."""
        key = await self.keys.identify(token.strip())
        session = Session(
            key_id=key.id,
            org=key.org_id,
            session_id=secrets.token_urlsafe(16),
            expires_at=int(time.time()) + self.lifetime,
        )
        payload = json.dumps(
            {"k": session.key_id, "o": session.org, "s": session.session_id,
             "e": session.expires_at},
            separators=(",", ":"),
        ).encode()  # fmt: skip
        return session, f"{_b64(payload)}.{_b64(self._sign('session', payload))}"

    def decode(self, cookie: str) -> Session:
        """The session a cookie names, if its signature holds and it has not expired."""
        body, _, signature = cookie.partition(".")
        try:
            payload = _unb64(body)
            given = _unb64(signature)
        except (binascii.Error, ValueError) as exc:
            raise Unauthorized("the session is not valid; log in again") from exc
        if not hmac.compare_digest(given, self._sign("session", payload)):
            raise Unauthorized("the session is not valid; log in again")
        data = json.loads(payload)
        session = Session(
            key_id=str(data["k"]),
            org=str(data["o"]),
            session_id=str(data["s"]),
            expires_at=int(data["e"]),
        )
        if session.expires_at <= time.time():
            raise Unauthorized("the session has expired; log in again")
        return session

    async def verify(self, cookie: str) -> Session:
        """:meth:`decode`, and the API key behind the session is still active."""
        session = self.decode(cookie)
        key = await self.keys.active(session.key_id)
        if key is None or key.org_id != session.org:
            raise Unauthorized("the API key of this session was revoked; log in again")
        return session

    # -- CSRF -------------------------------------------------------------------------------

    @staticmethod
    def new_nonce() -> str:
        """A fresh per-browser CSRF nonce (stored in :data:`CSRF_COOKIE`)."""
        return secrets.token_urlsafe(24)

    def csrf_token(self, nonce: str, session_id: str = "") -> str:
        """The token forms carry for ``nonce`` (and the session, once logged in)."""
        return _b64(self._sign("csrf", f"{nonce}|{session_id}".encode()))

    def check_csrf(self, nonce: str | None, session_id: str, token: str | None) -> bool:
        """Whether ``token`` is the CSRF token of ``nonce`` and ``session_id``."""
        if not nonce or not token:
            return False
        return hmac.compare_digest(self.csrf_token(nonce, session_id), token)

    # -- flash messages ---------------------------------------------------------------------

    def flash_cookie(self, kind: str, text: str) -> str:
        """A signed one-shot message shown by the next page."""
        payload = json.dumps({"k": kind, "t": text[:2000]}, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._sign('flash', payload))}"

    def read_flash(self, cookie: str | None) -> tuple[str, str] | None:
        """``(kind, text)`` of a flash cookie whose signature holds."""
        if not cookie:
            return None
        body, _, signature = cookie.partition(".")
        try:
            payload, given = _unb64(body), _unb64(signature)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(given, self._sign("flash", payload)):
            return None
        data = json.loads(payload)
        return str(data["k"]), str(data["t"])
