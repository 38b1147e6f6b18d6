"""Runs: the filterable list (``/``) and a run's page with its live event log and actions."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from writer.errors import IllegalTransition
from writer.lifecycle import Lifecycle
from writer.models import FollowUpRequest
from writer.service import WriterService
from writer.store import RunFilters, RunRecord
from writgate.errors import ConflictError, InputError
from writgate.web import app_state

from .live import event_stream, resume_point, summarize_event
from .pages import HtmlRoute, Viewer, flash_redirect, page, read_form, viewer

__all__ = ["INTENTS", "router"]

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)

INTENTS = (
    "bugfix", "feature", "test", "docs", "refactor", "ci", "dependency", "security",
    "performance", "chore",
)  # fmt: skip
_EVENT_WINDOW = 500
_TERMINAL_EVENTS = frozenset(f"run.{s}" for s in ("succeeded", "failed", "cancelled", "expired"))

LoggedIn = Annotated[Viewer, Depends(viewer)]


def _writer(request: Request) -> WriterService:
    service: WriterService = app_state(request).services["writer"]
    return service


def _split(values: list[str] | None) -> list[str]:
    found: list[str] = []
    for value in values or []:
        found.extend(part.strip() for part in value.replace(",", " ").split() if part.strip())
    return found


def _metadata(values: list[str] | None) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values or []:
        for line in value.splitlines():
            if not line.strip():
                continue
            key, sep, text = line.partition("=")
            if not sep or not key.strip():
                raise InputError(
                    f"metadata filter {line.strip()[:80]!r} is not key=value", field="metadata"
                )
            pairs[key.strip()] = text.strip()
    return pairs


def pr_link(run: Any) -> str | None:
    """Where the run's pull request is shown: the local forge's page, else the forge's URL."""
    pull = run.result.pull_request
    if pull is None:
        return None
    if run.repository.count("/") == 1 and "://" not in run.repository:
        return f"/forge/{run.repository}/pulls/{pull.number}"
    url = str(pull.url or "")
    return url if url.startswith(("https://", "http://")) else None


@router.get("/")
async def runs_list(
    request: Request,
    who: LoggedIn,
    tag: Annotated[list[str] | None, Query(max_length=1000)] = None,
    metadata: Annotated[list[str] | None, Query(max_length=4000)] = None,
    intent: Annotated[str | None, Query(max_length=64)] = None,
    lifecycle: Annotated[list[str] | None, Query()] = None,
    repository: Annotated[str | None, Query(max_length=500)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> HTMLResponse:
    """Runs of the viewer's org, newest first, filtered."""
    tags = [t.lower() for t in _split(tag)]
    states = [s for s in _split(lifecycle) if s]
    for state in states:
        if state not in Lifecycle.__members__.values():
            raise InputError(f"lifecycle {state!r} is not a run lifecycle", field="lifecycle")
    meta = _metadata(metadata)
    filters = RunFilters(
        tags=tags,
        metadata=meta,
        lifecycle=states,
        repository=(repository or "").strip() or None,
        intent=(intent or "").strip() or None,
    )
    records, next_cursor = await _writer(request).list_runs(
        who.org, filters, cursor=cursor, limit=limit
    )
    query: list[tuple[str, str]] = [("tag", t) for t in tags]
    query += [("metadata", f"{k}={v}") for k, v in meta.items()]
    query += [("lifecycle", s) for s in states]
    if filters.intent:
        query.append(("intent", filters.intent))
    if filters.repository:
        query.append(("repository", filters.repository))
    older = urlencode([*query, ("cursor", next_cursor)]) if next_cursor else None
    return page(
        request,
        "runs.html",
        {
            "runs": [r.to_model() for r in records],
            "filters": {
                "tag": " ".join(tags),
                "metadata": "\n".join(f"{k}={v}" for k, v in meta.items()),
                "intent": filters.intent or "",
                "lifecycle": states,
                "repository": filters.repository or "",
            },
            "filtered": bool(query),
            "intents": INTENTS,
            "lifecycles": [s.value for s in Lifecycle],
            "older": older,
            "paged": cursor is not None,
        },
    )


async def _run_context(request: Request, org: str, record: RunRecord) -> dict[str, Any]:
    writer = _writer(request)
    ledger = writer.store.ledger
    last = await ledger.last_seq(record.id)
    after = max(0, last - _EVENT_WINDOW)
    events = await ledger.read(record.id, org_id=org, after=after, limit=_EVENT_WINDOW)
    children, _ = await writer.list_runs(
        org, RunFilters(parent_run_id=record.id), cursor=None, limit=50
    )
    run = record.to_model()
    return {
        "run": run,
        "pr_link": pr_link(run),
        "events": [
            {"seq": e.seq, "type": e.type, "at": e.at, "summary": summarize_event(e.type, e.data)}
            for e in events
        ],
        "events_hidden": after,
        "last_seq": events[-1].seq if events else after,
        "children": [c.to_model() for c in children],
        "follow_up_mode": "chain" if "follow_up" not in run.next_actions else "none",
    }


@router.get("/runs/{run_id}")
async def run_page(run_id: str, request: Request, who: LoggedIn) -> HTMLResponse:
    """A run: contract, lifecycle, next actions, turns, result, chain and the live event log."""
    record = await _writer(request).get(who.org, run_id)
    return page(request, "run.html", await _run_context(request, who.org, record))


@router.get("/runs/{run_id}/live")
async def run_live(
    run_id: str,
    request: Request,
    who: LoggedIn,
    after: Annotated[int, Query(ge=0)] = 0,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Response:
    """The run's events as Server-Sent Events (resumes after ``Last-Event-ID``)."""
    writer = _writer(request)
    await writer.get(who.org, run_id)
    ledger = writer.store.ledger
    start = await resume_point(ledger, run_id, after, last_event_id)

    async def finished() -> bool:
        return (await writer.get(who.org, run_id)).terminal

    heartbeat = float(app_state(request).services.get("sse.heartbeat", 15.0))
    return event_stream(
        ledger,
        run_id,
        who.org,
        start,
        finished=finished,
        final_types=_TERMINAL_EVENTS,
        heartbeat=heartbeat,
    )


async def _act(request: Request, who: Viewer, run_id: str, action: str) -> Response:
    form = await read_form(request, who)
    writer = _writer(request)
    target = f"/runs/{run_id}"
    try:
        if action == "follow-up":
            try:
                message = FollowUpRequest.model_validate(
                    {"text": form.get("text", ""), "fallback": form.get("fallback", "none")}
                )
            except ValidationError as exc:
                problem = exc.errors()[0]
                field = ".".join(str(p) for p in problem["loc"])
                return flash_redirect(request, target, "error", f"{field}: {problem['msg']}")
            record, chained = await writer.send_message(who.org, run_id, message)
            if chained:
                return flash_redirect(
                    request,
                    f"/runs/{record.id}",
                    "ok",
                    f"The session of {run_id} was not warm: this chained run took the follow-up.",
                )
            return flash_redirect(request, target, "ok", "Follow-up sent.")
        if action == "complete":
            await writer.complete(who.org, run_id)
            return flash_redirect(request, target, "ok", "Session closed: the run succeeded.")
        await writer.cancel(who.org, run_id)
        return flash_redirect(request, target, "ok", "Run cancelled.")
    except (ConflictError, InputError, IllegalTransition) as exc:
        # The run moved on meanwhile (busy, not warm, ended): say so on its page.
        return flash_redirect(request, target, "error", exc.message)


@router.post("/runs/{run_id}/follow-up")
async def follow_up(run_id: str, request: Request, who: LoggedIn) -> Response:
    """Send a follow-up turn (or a chained run when the session is not warm)."""
    return await _act(request, who, run_id, "follow-up")


@router.post("/runs/{run_id}/complete")
async def complete(run_id: str, request: Request, who: LoggedIn) -> Response:
    """Close the warm session."""
    return await _act(request, who, run_id, "complete")


@router.post("/runs/{run_id}/cancel")
async def cancel(run_id: str, request: Request, who: LoggedIn) -> Response:
    """Cancel the run."""
    return await _act(request, who, run_id, "cancel")
