"""GitHub REST v3 over httpx: authentication, pagination, rate-limit back-off, error translation.

Credentials are a token (personal or fine-grained) or a GitHub App: a JWT signed RS256 with the
app's private key buys an installation token, cached until shortly before it expires. A
credential only ever travels in the ``Authorization`` header: never in a URL, a log line, an
event or an exception message (every message built here is scrubbed of the current tokens, and
pagination links that leave the API's host are refused so a token cannot be sent elsewhere).

Back-off: a ``403``/``429`` with ``Retry-After`` (a secondary rate limit) waits that long; one
with ``x-ratelimit-remaining: 0`` waits until ``x-ratelimit-reset``; a secondary limit without
either waits a minute, doubling. No single wait, and no request's total wait, exceeds
``max_wait`` seconds: beyond it :class:`~forge.errors.RateLimited` is raised at once. ``5xx`` and
network failures of idempotent requests are retried with exponential back-off.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import anyio
import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .errors import (
    ForgeAuthError,
    ForgeConflict,
    ForgeError,
    ForgeNotFound,
    ForgeUnavailable,
    GitHubValidationError,
    RateLimited,
)

__all__ = [
    "DEFAULT_API_URL",
    "GitHubApp",
    "GitHubAuth",
    "GitHubClient",
    "TokenAuth",
    "app_jwt",
]

log = logging.getLogger("forge.github")

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="([^"]+)"')
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


class GitHubAuth(Protocol):
    """Supplies the ``Authorization`` header value for API requests."""

    async def authorization(self, client: GitHubClient) -> str:
        """``"Bearer …"`` / ``"token …"`` for the next request."""
        ...

    def invalidate(self) -> bool:
        """Forget a cached credential GitHub rejected; whether a fresh one can be fetched."""
        ...

    def secrets(self) -> list[str]:
        """Every credential value held now (scrubbed from every message)."""
        ...


class TokenAuth:
    """A personal access token or a fine-grained token."""

    def __init__(self, token: str):
        if not token.strip():
            raise ForgeAuthError("the GitHub token is empty")
        self._token = token.strip()

    def __repr__(self) -> str:
        return "TokenAuth(token=***)"

    async def authorization(self, client: GitHubClient) -> str:
        return f"Bearer {self._token}"

    def invalidate(self) -> bool:
        """A static token cannot be refreshed."""
        return False

    def secrets(self) -> list[str]:
        return [self._token]

    @property
    def git_token(self) -> str:
        """The token git sends as the password of ``x-access-token``."""
        return self._token


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def app_jwt(app_id: str | int, private_key: rsa.RSAPrivateKey, *, now: float) -> str:
    """A GitHub App JWT (RS256): issued a minute ago for clock drift, valid nine minutes."""
    header = {"alg": "RS256", "typ": "JWT"}
    payload = {"iat": int(now) - 60, "exp": int(now) + 540, "iss": str(app_id)}
    signing_input = (
        _b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64url(json.dumps(payload, separators=(",", ":")).encode())
    )
    signature = private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + _b64url(signature)


class GitHubApp:
    """A GitHub App installation: JWT -> installation token, cached until near its expiry."""

    def __init__(
        self,
        *,
        app_id: str | int,
        private_key: str | bytes,
        installation_id: int,
        refresh_margin: float = 300.0,
    ):
        try:
            key = serialization.load_pem_private_key(
                private_key.encode() if isinstance(private_key, str) else private_key,
                password=None,
            )
        except (ValueError, TypeError) as exc:
            raise ForgeAuthError("the GitHub App private key is not a PEM RSA key") from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ForgeAuthError("the GitHub App private key is not an RSA key")
        self.app_id = str(app_id)
        self.installation_id = int(installation_id)
        self.refresh_margin = refresh_margin
        self._key = key
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"GitHubApp(app_id={self.app_id}, installation_id={self.installation_id})"

    async def authorization(self, client: GitHubClient) -> str:
        return f"token {await self.installation_token(client)}"

    async def installation_token(self, client: GitHubClient) -> str:
        """The cached installation token, or a new one when it expires within the margin."""
        async with self._lock:
            if self._token is None or client.clock() >= self._expires_at - self.refresh_margin:
                jwt = app_jwt(self.app_id, self._key, now=client.clock())
                data = await client.request(
                    "POST",
                    f"/app/installations/{self.installation_id}/access_tokens",
                    authorization=f"Bearer {jwt}",
                    extra_secrets=[jwt],
                )
                self._token = str(data["token"])
                expires = datetime.fromisoformat(str(data["expires_at"]).replace("Z", "+00:00"))
                self._expires_at = expires.timestamp()
                log.info(
                    "github: new installation token for installation %s, expires %s",
                    self.installation_id,
                    data["expires_at"],
                )
            return self._token

    def invalidate(self) -> bool:
        """Drop the cached installation token: the next request fetches a new one."""
        self._token = None
        return True

    def secrets(self) -> list[str]:
        return [self._token] if self._token else []


async def _sleep(seconds: float) -> None:
    await anyio.sleep(seconds)


class GitHubClient:
    """Authenticated, rate-limit-aware JSON requests to one GitHub API (github.com or GHE)."""

    def __init__(
        self,
        *,
        auth: GitHubAuth,
        base_url: str = DEFAULT_API_URL,
        http: httpx.AsyncClient | None = None,
        sleep: Sleep = _sleep,
        clock: Clock = time.time,
        max_wait: float = 300.0,
        max_retries: int = 5,
        timeout: float = 30.0,
        user_agent: str = "writgate",
    ):
        self.auth = auth
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ForgeError(f"the GitHub API URL {base_url!r} is not an http(s) URL")
        self._origin = f"{parts.scheme}://{parts.netloc}"
        # GitHub: api.github.com/graphql; Enterprise Server: HOST/api/v3 -> HOST/api/graphql.
        self.graphql_url = (
            self.base_url.removesuffix("/v3") + "/graphql"
            if self.base_url.endswith("/api/v3")
            else self.base_url + "/graphql"
        )
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._owns_http = http is None
        self.sleep = sleep
        self.clock = clock
        self.max_wait = max_wait
        self.max_retries = max_retries
        self.user_agent = user_agent

    async def aclose(self) -> None:
        """Close the HTTP connection pool (when this client made it)."""
        if self._owns_http:
            await self._http.aclose()

    def scrub(self, text: str, extra: list[str] | None = None) -> str:
        """``text`` with every credential this client holds replaced by ``***``."""
        for secret in [*self.auth.secrets(), *(extra or [])]:
            if secret:
                text = text.replace(secret, "***")
        return text

    def _url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            parts = urlsplit(path_or_url)
            if path_or_url == self.graphql_url:
                return path_or_url
            if f"{parts.scheme}://{parts.netloc}" != self._origin or not path_or_url.startswith(
                self.base_url
            ):
                raise ForgeError(
                    f"refusing to follow a link outside {self.base_url}: {parts.netloc}"
                )
            return path_or_url
        return self.base_url + path_or_url

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        authorization: str | None = None,
        extra_secrets: list[str] | None = None,
    ) -> Any:
        """The decoded JSON answer (None for an empty one); errors become forge errors."""
        response = await self.send(
            method,
            path,
            json_body=json_body,
            params=params,
            authorization=authorization,
            extra_secrets=extra_secrets,
        )
        if not response.content:
            return None
        return response.json()

    async def send(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        authorization: str | None = None,
        extra_secrets: list[str] | None = None,
    ) -> httpx.Response:
        """Send one request with retries and back-off; the successful response."""
        url = self._url(path)
        shown = urlsplit(url).path
        waited = 0.0
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            headers = {
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": self.user_agent,
                "Authorization": authorization or await self.auth.authorization(self),
            }
            try:
                response = await self._http.request(
                    method, url, json=json_body, params=params, headers=headers
                )
            except httpx.HTTPError as exc:
                message = f"cannot reach GitHub for {method} {shown}: {type(exc).__name__}"
                if method in _IDEMPOTENT and attempt <= self.max_retries:
                    delay = min(2.0 ** (attempt - 1), self.max_wait)
                    if waited + delay <= self.max_wait:
                        log.warning("github: %s; retrying in %.1fs", message, delay)
                        waited += delay
                        await self.sleep(delay)
                        continue
                raise ForgeUnavailable(self.scrub(message, extra_secrets)) from exc
            log.debug("github: %s %s -> %s", method, shown, response.status_code)
            if response.status_code < 400:
                return response
            limit_delay = self._rate_limit_delay(response, attempt)
            if limit_delay is not None:
                delay = limit_delay
                if delay > self.max_wait or waited + delay > self.max_wait:
                    raise RateLimited(
                        f"GitHub rate limit for {method} {shown}: retry in {delay:.0f}s, longer "
                        f"than the {self.max_wait:.0f}s writgate waits",
                        retry_after=int(delay),
                    )
                if attempt <= self.max_retries:
                    log.warning(
                        "github: rate limited on %s %s; waiting %.1fs", method, shown, delay
                    )
                    waited += delay
                    await self.sleep(delay)
                    continue
            if response.status_code == 401 and authorization is None and not refreshed:
                refreshed = True  # an installation token revoked early: get a new one once
                if self.auth.invalidate():
                    continue
            if (
                response.status_code in (500, 502, 503, 504)
                and method in _IDEMPOTENT
                and attempt <= self.max_retries
            ):
                backoff = min(2.0 ** (attempt - 1), self.max_wait)
                if waited + backoff <= self.max_wait:
                    waited += backoff
                    await self.sleep(backoff)
                    continue
            raise self._error(method, shown, response, extra_secrets)

    def _rate_limit_delay(self, response: httpx.Response, attempt: int) -> float | None:
        if response.status_code not in (403, 429):
            return None
        retry_after = response.headers.get("retry-after")
        if retry_after is not None:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                return 60.0
        if response.headers.get("x-ratelimit-remaining") == "0":
            reset = response.headers.get("x-ratelimit-reset")
            try:
                return max(0.0, float(reset or 0) - self.clock()) + 1.0
            except ValueError:
                return 60.0
        if "rate limit" in _message(response).lower() or response.status_code == 429:
            return float(60.0 * 2 ** (attempt - 1))
        return None

    def _error(
        self,
        method: str,
        path: str,
        response: httpx.Response,
        extra_secrets: list[str] | None,
    ) -> ForgeError:
        status = response.status_code
        message = _message(response)
        details = _error_details(response)
        where = f"{method} {path}"
        text = f"GitHub answered {status} to {where}: {message}"
        if details:
            text += " (" + "; ".join(details) + ")"
        text = self.scrub(text, extra_secrets)
        if status == 401:
            return ForgeAuthError(text, status=status)
        if status == 403:
            return ForgeAuthError(text, status=status)
        if status == 404:
            return ForgeNotFound(text, status=status)
        if status in (405, 409):
            return ForgeConflict(text, status=status)
        if status == 422:
            return GitHubValidationError(text, field=_error_field(response), status=status)
        if status >= 500:
            return ForgeUnavailable(text, status=status)
        return ForgeError(text, status=status)

    async def graphql(self, query: str, variables: Mapping[str, Any]) -> Any:
        """Run a GraphQL operation (for what REST cannot do); its ``data``."""
        answer = await self.request(
            "POST", self.graphql_url, json_body={"query": query, "variables": dict(variables)}
        )
        errors = answer.get("errors") if isinstance(answer, dict) else None
        if errors:
            messages = "; ".join(
                str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors
            )
            raise ForgeError(self.scrub(f"GitHub GraphQL failed: {messages}"))
        return answer.get("data") if isinstance(answer, dict) else None

    async def pages(
        self, path: str, *, params: Mapping[str, Any] | None = None, key: str | None = None
    ) -> AsyncIterator[list[Any]]:
        """Every page of a list, following ``Link: rel="next"`` (``key``: the list's field)."""
        url: str | None = path
        query: Mapping[str, Any] | None = {"per_page": 100, **(params or {})}
        while url is not None:
            response = await self.send("GET", url, params=query)
            data = response.json()
            items = data.get(key, []) if key else data
            yield list(items)
            url = _next_link(response.headers.get("link"))
            query = None  # the next link carries the query

    async def get_all(
        self, path: str, *, params: Mapping[str, Any] | None = None, key: str | None = None
    ) -> list[Any]:
        """Every item of a paginated list."""
        found: list[Any] = []
        async for page in self.pages(path, params=params, key=key):
            found.extend(page)
        return found


def _next_link(header: str | None) -> str | None:
    if not header:
        return None
    for url, rel in _LINK.findall(header):
        if rel == "next":
            return str(url)
    return None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _message(response: httpx.Response) -> str:
    data = _json(response)
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return response.reason_phrase or "error"


def _error_details(response: httpx.Response) -> list[str]:
    data = _json(response)
    errors = data.get("errors") if isinstance(data, dict) else None
    found = []
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, str):
            found.append(error)
        elif isinstance(error, dict):
            if isinstance(error.get("message"), str):
                found.append(error["message"])
            else:
                parts = [str(error.get(k)) for k in ("resource", "field", "code") if error.get(k)]
                if parts:
                    found.append(" ".join(parts))
    return found


def _error_field(response: httpx.Response) -> str | None:
    data = _json(response)
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list):
        for error in errors:
            if isinstance(error, dict) and isinstance(error.get("field"), str):
                return str(error["field"])
    return None
