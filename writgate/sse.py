"""Server-Sent Events over the ledger: one implementation for every streamed subject.

A stream sends ``id: <seq>``, ``event: <type>``, ``data: <event JSON>`` for each event, a comment
line as heartbeat when nothing happened for a while, and ``event: done`` after the subject's
final event. ``Last-Event-ID`` resumes after that seq with no loss and no duplicate.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from .errors import BadRequestError
from .ledger import Ledger
from .web import app_state

__all__ = [
    "SSE_HEARTBEAT_SECONDS",
    "InvalidLastEventId",
    "LedgerEvent",
    "LedgerEventList",
    "event_stream",
    "parse_last_event_id",
    "sse_event",
]

SSE_HEARTBEAT_SECONDS = 15.0


class LedgerEvent(BaseModel):
    """One ledger event."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    subject_id: str = Field(description="The run (or other subject) the event belongs to.")
    seq: int = Field(description="Position in the subject's ledger: 1, 2, 3… without gaps.")
    type: str = Field(description="Event type, e.g. run.running or agent.message.")
    at: str = Field(description="When it was recorded (RFC 3339, UTC).")
    data: dict[str, Any] = Field(description="The event's payload.")


class LedgerEventList(BaseModel):
    """A page of ledger events, oldest first."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    items: list[LedgerEvent] = Field(description="Events, oldest first.")
    next_cursor: str | None = Field(default=None, description="Pass as `after` for more.")


class InvalidLastEventId(BadRequestError):
    """The Last-Event-ID header is not an event seq of this subject."""

    code = "invalid_last_event_id"


def sse_event(event_id: int | None, event: str, data: Any) -> bytes:
    """One SSE message."""
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode()


async def parse_last_event_id(ledger: Ledger, subject_id: str, header: str | None) -> int:
    """The seq to resume after (0 without the header); a bad value raises a 400 error."""
    if header is None:
        return 0
    text = header.strip()
    # ASCII digits only ("²".isdigit() is true, int("²") fails) and short enough to be a seq.
    seq = int(text) if text.isascii() and text.isdigit() and len(text) <= 20 else None
    if seq is None or seq > await ledger.last_seq(subject_id):
        raise InvalidLastEventId(
            f"Last-Event-ID {header[:40]!r} is not an event seq of this subject",
            field="Last-Event-ID",
        )
    return seq


async def _messages(
    ledger: Ledger,
    *,
    org_id: str,
    subject_id: str,
    after: int,
    heartbeat: float,
    finished: Callable[[], Awaitable[bool]],
    final_types: Collection[str],
    done: Mapping[str, Any],
) -> AsyncIterator[bytes]:
    yield b": connected\n\n"
    if await finished() and await ledger.last_seq(subject_id) <= after:
        yield sse_event(None, "done", {**done, "lastEventId": after})
        return
    async for event in ledger.subscribe(
        subject_id, org_id=org_id, after=after, heartbeat=heartbeat
    ):
        if event is None:
            yield b": heartbeat\n\n"
            continue
        yield sse_event(event.seq, event.type, event.to_json())
        if event.type in final_types:
            yield sse_event(None, "done", {**done, "lastEventId": event.seq})
            return


async def event_stream(
    request: Request,
    ledger: Ledger,
    *,
    org_id: str,
    subject_id: str,
    last_event_id: str | None,
    finished: Callable[[], Awaitable[bool]],
    final_types: Collection[str],
    done: Mapping[str, Any],
) -> StreamingResponse:
    """The SSE response for ``subject_id`` (the caller checked it exists in ``org_id``)."""
    after = await parse_last_event_id(ledger, subject_id, last_event_id)
    heartbeat = float(app_state(request).services.get("sse.heartbeat", SSE_HEARTBEAT_SECONDS))
    return StreamingResponse(
        _messages(
            ledger,
            org_id=org_id,
            subject_id=subject_id,
            after=after,
            heartbeat=heartbeat,
            finished=finished,
            final_types=final_types,
            done=done,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
