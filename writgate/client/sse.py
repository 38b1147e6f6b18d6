"""A Server-Sent Events decoder (the WHATWG event-stream format), fed one line at a time."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerSentEvent"]


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event: its ``id`` (None when the event had no id field), type and data."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Turns lines (without their line terminator) into :class:`ServerSentEvent` objects."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None
        self.last_event_id: str | None = None
        """The last id field seen, as the ``Last-Event-ID`` to resume from."""

    def feed(self, line: str) -> ServerSentEvent | None:
        """Consume one line; returns an event when ``line`` is the blank line that ends it."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment (heartbeat)
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data and not self._event and self._id is None:
            return None
        if self._id is not None:
            self.last_event_id = self._id
        event = ServerSentEvent(
            event=self._event or "message", data="\n".join(self._data), id=self._id,
            retry=self._retry,
        )  # fmt: skip
        self._event, self._data, self._id, self._retry = "", [], None, None
        return event
