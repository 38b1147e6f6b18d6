"""Server-Sent Events for the dashboard's live pages, authenticated by the session cookie.

The browser's ``EventSource`` cannot send headers on its first request, so the page passes the
last event it rendered as ``?after=N``; on a reconnect the browser sends ``Last-Event-ID``, which
wins. Every event is a default ``message`` event whose data is the ledger event's JSON; the
stream ends with ``event: done`` once the subject finished.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from fastapi.responses import StreamingResponse

from writgate.errors import BadRequestError
from writgate.ledger import Ledger

__all__ = ["HEARTBEAT_SECONDS", "event_stream", "resume_point", "summarize_event"]

HEARTBEAT_SECONDS = 15.0


class InvalidResumePoint(BadRequestError):
    """The resume point is not an event seq of this subject."""

    code = "invalid_last_event_id"


async def resume_point(
    ledger: Ledger, subject_id: str, after: int, last_event_id: str | None
) -> int:
    """Where to resume: ``Last-Event-ID`` when sent (a reconnect), else ``after``."""
    text = (last_event_id if last_event_id is not None else str(after)).strip()
    if not text.isdigit() or int(text) > await ledger.last_seq(subject_id):
        raise InvalidResumePoint(
            f"{text[:40]!r} is not an event seq of {subject_id}", field="Last-Event-ID"
        )
    return int(text)


def _frame(event_id: int | None, event: str | None, data: Any) -> bytes:
    lines = [f"id: {event_id}"] if event_id is not None else []
    if event:
        lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode()


def summarize_event(event_type: str, data: Mapping[str, Any]) -> str:
    """A one-line summary of an event for the log."""
    if event_type == "agent.message" and isinstance(data.get("text"), str):
        return str(data["text"])
    if event_type.startswith("run.") and "lifecycle" in data:
        failure = data.get("failure") or {}
        text = f"lifecycle {data['lifecycle']}"
        return text + (f" — {failure.get('code')}: {failure.get('message')}" if failure else "")
    if event_type.startswith("stage.") and "stage" in data:
        rest = {k: v for k, v in data.items() if k != "stage"}
        return f"{data['stage']}" + (f" {json.dumps(rest, default=str)}" if rest else "")
    text = json.dumps(data, ensure_ascii=False, default=str)
    return text if len(text) <= 400 else text[:399] + "…"


def event_stream(
    ledger: Ledger,
    subject_id: str,
    org_id: str,
    after: int,
    *,
    finished: Callable[[], Awaitable[bool]],
    final_types: frozenset[str],
    heartbeat: float = HEARTBEAT_SECONDS,
) -> StreamingResponse:
    """A ``text/event-stream`` response following ``subject_id``'s ledger from ``after``."""

    async def frames() -> AsyncIterator[bytes]:
        yield b"retry: 1000\n: connected\n\n"
        if await finished() and await ledger.last_seq(subject_id) <= after:
            yield _frame(None, "done", {"lastEventId": after})
            return
        async for event in ledger.subscribe(
            subject_id, org_id=org_id, after=after, heartbeat=heartbeat
        ):
            if event is None:
                yield b": heartbeat\n\n"
                continue
            body = event.to_json()
            body["summary"] = summarize_event(event.type, dict(event.data))
            yield _frame(event.seq, None, body)
            if event.type in final_types:
                yield _frame(None, "done", {"lastEventId": event.seq})
                return

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
