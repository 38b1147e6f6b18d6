"""What the sync and async clients share: configuration, event-stream resumption, waiting."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from pydantic import BaseModel

from writgate.errors import ConfigError

from .errors import ApiConnectionError
from .retry import RetryPolicy
from .sse import ServerSentEvent, SSEDecoder

if TYPE_CHECKING:
    from writer.lifecycle import Lifecycle
    from writer.models import RunStatus

    Until = Callable[[RunStatus], bool] | Collection[Lifecycle | str] | None

__all__ = [
    "DEFAULT_TIMEOUT",
    "STREAM_READ_TIMEOUT",
    "USER_AGENT",
    "ClientConfig",
    "EventCursor",
    "new_idempotency_key",
    "poll_intervals",
    "until_predicate",
]

USER_AGENT = "writgate-client/0.1.0"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
STREAM_READ_TIMEOUT = 60.0
"""No byte for this long on an event stream (heartbeats come every 15 s) means it is dead."""

E = TypeVar("E", bound=BaseModel)


def new_idempotency_key() -> str:
    """A fresh Idempotency-Key (printable ASCII, well under 255 characters)."""
    return f"wgc-{uuid.uuid4()}"


@dataclass(frozen=True)
class ClientConfig:
    """Where the server is and how to authenticate; from arguments, else the environment."""

    base_url: str
    api_key: str | None
    retry: RetryPolicy

    @classmethod
    def resolve(
        cls, base_url: str | None, api_key: str | None, retry: RetryPolicy | None
    ) -> ClientConfig:
        """Fill ``base_url`` from ``WRITGATE_SERVER`` and ``api_key`` from ``WRITGATE_API_KEY``."""
        url = (base_url or os.environ.get("WRITGATE_SERVER") or "").strip()
        if not url:
            raise ConfigError("no server URL: pass base_url or set WRITGATE_SERVER")
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigError(f"server URL {url!r} must be an http:// or https:// URL")
        key = api_key if api_key is not None else os.environ.get("WRITGATE_API_KEY") or None
        return cls(base_url=url.rstrip("/"), api_key=key, retry=retry or RetryPolicy())

    def headers(self) -> dict[str, str]:
        """Headers sent with every request (the key is never logged or put in an error)."""
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


class EventCursor:
    """Where an event stream is, across reconnections: the last seq seen and whether it ended.

    ``Last-Event-ID`` on a reconnect resumes right after the last event delivered, so the
    events handed out are exactly the ledger — no loss and no duplicate.
    """

    def __init__(self, model: type[E], *, after: int, retry: RetryPolicy, what: str) -> None:
        self.model: type[Any] = model
        self.last_seq = after
        self.done = False
        self.failures = 0
        self.retry = retry
        self.what = what

    def headers(self) -> dict[str, str]:
        """Request headers of the next connection."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_seq > 0:
            headers["Last-Event-ID"] = str(self.last_seq)
        return headers

    def decoder(self) -> SSEDecoder:
        """A decoder for one connection."""
        return SSEDecoder()

    def accept(self, sse: ServerSentEvent) -> Any | None:
        """The model of ``sse`` to hand out, or None (``done``, or an event already seen)."""
        if sse.event == "done":
            self.done = True
            return None
        if sse.id is None:
            return None
        event = self.model.model_validate(json.loads(sse.data))
        seq = int(event.seq)
        if seq <= self.last_seq:
            return None  # never hand out an event twice, whatever the server sends
        self.last_seq = seq
        self.failures = 0
        return event

    def dropped(self, exc: Exception | None) -> float:
        """The connection ended before ``done``: the delay before reconnecting (or raise)."""
        self.failures += 1
        if self.failures >= self.retry.attempts:
            reason = f"{type(exc).__name__}: {exc}" if exc else "the stream ended early"
            raise ApiConnectionError(
                f"{self.what}: gave up after {self.failures} broken connections ({reason})"
            ) from exc
        return self.retry.backoff(self.failures - 1)


def until_predicate(until: Until) -> Callable[[RunStatus], bool]:
    """``until`` as a predicate: None → settled (terminal or awaiting a follow-up); a collection
    of lifecycle values → lifecycle in it; a callable → itself."""
    if until is None:
        return lambda status: bool(status.terminal or status.awaiting_follow_up)
    if callable(until):
        return until  # type: ignore[no-any-return]
    if isinstance(until, str):
        until = [until]
    wanted = {str(getattr(state, "value", state)) for state in until}
    from writer.lifecycle import Lifecycle

    unknown = wanted - {state.value for state in Lifecycle}
    if unknown:
        raise ValueError(f"unknown lifecycle value(s) {sorted(unknown)}")
    return lambda status: status.lifecycle.value in wanted


def poll_intervals(first: float = 0.1, factor: float = 1.5, cap: float = 2.0) -> Iterator[float]:
    """Growing delays between status polls."""
    delay = first
    while True:
        yield delay
        delay = min(cap, delay * factor)
