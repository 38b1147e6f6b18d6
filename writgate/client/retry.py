"""When the client retries a request, and how long it waits in between.

A request is retried only when doing so cannot repeat an effect on the server:

- the connection could not be opened (``ConnectError``, ``ConnectTimeout``, ``PoolTimeout``):
  nothing was sent, so every request may be retried;
- the server answered ``429`` with a ``Retry-After`` header, or ``502``/``503``/``504``
  (a gateway or an overloaded server refused it): retried when the request is *safe*;
- the connection broke after the request was sent (the answer was lost): retried only when the
  request is *safe*.

*Safe* means a read (GET), or a create carrying an Idempotency-Key (a run, a pipeline start) —
the server answers a repeated key with the run it already created. Other writes (cancel,
follow-up messages, gate evaluations) are never retried once they may have reached the server.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

__all__ = ["RETRYABLE_STATUS", "RetryPolicy", "parse_retry_after"]

RETRYABLE_STATUS = frozenset({502, 503, 504})

# Nothing of the request reached the server.
_NOT_SENT: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)
# The request may have reached the server; the answer is missing.
_ANSWER_LOST: tuple[type[Exception], ...] = (
    httpx.ReadError,
    httpx.ReadTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
    httpx.RemoteProtocolError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter.

    The n-th retry (from 0) waits a uniformly random time in ``[d/2, d]`` with
    ``d = min(max_delay, initial_delay * 2**n)``; a ``Retry-After`` answer waits what the server
    asked, unless that is more than ``max_retry_after`` (then the error is raised at once).
    """

    attempts: int = 5
    """Attempts in all, the first included (1 disables retries)."""
    initial_delay: float = 0.25
    """Seconds before the first retry (before jitter)."""
    max_delay: float = 8.0
    """Cap of one backoff delay, in seconds."""
    max_retry_after: float = 60.0
    """The longest ``Retry-After`` the client is willing to wait, in seconds."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("RetryPolicy delays must not be negative")

    def backoff(self, retry: int) -> float:
        """The delay before retry number ``retry`` (0-based), jitter included."""
        ceiling = min(self.max_delay, self.initial_delay * (2**retry))
        return random.uniform(ceiling / 2, ceiling)

    def exception_is_retryable(self, exc: Exception, *, safe: bool) -> bool:
        """Whether the transport failure ``exc`` may be retried."""
        if isinstance(exc, _NOT_SENT):
            return True
        return safe and isinstance(exc, _ANSWER_LOST)

    def response_delay(self, response: httpx.Response, *, safe: bool, retry: int) -> float | None:
        """The delay before retrying after ``response``, or None when it must not be retried."""
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if status == 429:
            # The server refused the request before doing anything: retry when it says when.
            if retry_after is None or retry_after > self.max_retry_after:
                return None
            return retry_after
        if status in RETRYABLE_STATUS and safe:
            if retry_after is not None:
                return retry_after if retry_after <= self.max_retry_after else None
            return self.backoff(retry)
        return None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
