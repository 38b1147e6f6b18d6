"""HTTP routes of the coding-agent run API (DESIGN.md §4.3), mounted by the application."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import Field

from writgate.errors import InputError
from writgate.sse import LedgerEvent, LedgerEventList, event_stream
from writgate.web import request_org, service

from .catalog import ModelEntry, load_catalog
from .lifecycle import Lifecycle
from .models import CreateRunRequest, FollowUpRequest, Model, Run, RunList, RunStatus
from .service import WriterService
from .store import RunFilters

__all__ = ["TERMINAL_EVENTS", "router"]

TERMINAL_EVENTS = frozenset(
    f"run.{state}" for state in ("succeeded", "failed", "cancelled", "expired")
)
_IDEMPOTENCY_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")

router = APIRouter(prefix="/api/v1/coding-agent", tags=["coding-agent"])

Org = Annotated[str, Depends(request_org)]
RunId = Annotated[str, Path(description="The run id (run_…).")]
Writer = Annotated[WriterService, Depends(service("writer"))]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key (problem+json)."},
    404: {"description": "No such run in the caller's org (problem+json)."},
    422: {"description": "Invalid request; `field` names the offending field (problem+json)."},
}


class ModelList(Model):
    """The model catalog."""

    items: list[ModelEntry] = Field(description="Every model of the catalog.")
    next_cursor: str | None = Field(
        default=None, description="Always null: the catalog fits in one page."
    )


def _status(record: Any) -> RunStatus:
    run = record.to_model()
    return RunStatus.model_validate(run.model_dump(include=set(RunStatus.model_fields)))


@router.post(
    "/runs",
    response_model=Run,
    response_model_by_alias=True,
    status_code=201,
    operation_id="createRun",
    summary="Create a coding-agent run",
    responses={200: {"model": Run, "description": "Replay of an idempotent create."}, **_ERRORS},
)
async def create_run(
    body: CreateRunRequest,
    org: Org,
    writer: Writer,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="1-255 printable ASCII characters; a retry with the same key and body "
            "returns the same run (200, Idempotent-Replayed: true) instead of a new one.",
        ),
    ] = None,
) -> Run:
    """Create a run; with an Idempotency-Key, a retried create returns the same run."""
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
        raise InputError(
            "Idempotency-Key must be 1-255 printable ASCII characters",
            field="Idempotency-Key",
            code="invalid_idempotency_key",
        )
    record, created = await writer.create_run(org, body, idempotency_key=idempotency_key)
    if not created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return record.to_model(created=created)


@router.get(
    "/runs", response_model=RunList, operation_id="listRuns", summary="List runs", responses=_ERRORS
)
async def list_runs(
    request: Request,
    org: Org,
    writer: Writer,
    tag: Annotated[list[str] | None, Query(description="Repeatable; all must match.")] = None,
    lifecycle: Annotated[
        list[Lifecycle] | None, Query(description="Repeatable; any may match.")
    ] = None,
    repository: Annotated[str | None, Query(description="Only runs on this repository.")] = None,
    intent: Annotated[str | None, Query(description="Only runs with this intent label.")] = None,
    parent_run_id: Annotated[
        str | None, Query(alias="parentRunId", description="Only runs chained from this run.")
    ] = None,
    cursor: Annotated[
        str | None, Query(description="The `nextCursor` of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size.")] = 50,
) -> RunList:
    """Runs of the caller's org, newest first; filter ``metadata.<key>=<value>`` too."""
    metadata = {
        key.removeprefix("metadata."): value
        for key, value in request.query_params.items()
        if key.startswith("metadata.")
    }
    filters = RunFilters(
        tags=[t.strip().lower() for t in tag or []],
        metadata=metadata,
        lifecycle=[s.value for s in lifecycle or []],
        repository=repository,
        intent=intent,
        parent_run_id=parent_run_id,
    )
    records, next_cursor = await writer.list_runs(org, filters, cursor=cursor, limit=limit)
    return RunList(items=[r.to_model() for r in records], next_cursor=next_cursor)


@router.get(
    "/runs/{run_id}",
    response_model=Run,
    operation_id="getRun",
    summary="Get a run",
    responses=_ERRORS,
)
async def get_run(run_id: RunId, org: Org, writer: Writer) -> Run:
    """The full run."""
    return (await writer.get(org, run_id)).to_model()


@router.get(
    "/runs/{run_id}/status",
    response_model=RunStatus,
    operation_id="getRunStatus",
    summary="Get a run's lifecycle fields",
    responses=_ERRORS,
)
async def get_status(run_id: RunId, org: Org, writer: Writer) -> RunStatus:
    """Only the lifecycle fields, failure, session expiry and update time."""
    return _status(await writer.get(org, run_id))


@router.get(
    "/runs/{run_id}/events",
    response_model=LedgerEventList,
    operation_id="listRunEvents",
    summary="Read a run's event ledger",
    responses=_ERRORS,
)
async def list_events(
    run_id: RunId,
    org: Org,
    writer: Writer,
    after: Annotated[int, Query(ge=0, description="Only events with a greater seq.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 200,
) -> LedgerEventList:
    """Events with ``seq > after``, oldest first."""
    await writer.get(org, run_id)
    events = await writer.store.ledger.read(run_id, org_id=org, after=after, limit=limit + 1)
    page = events[:limit]
    next_cursor = str(page[-1].seq) if len(events) > limit else None
    return LedgerEventList(
        items=[LedgerEvent.model_validate(e.to_json()) for e in page], next_cursor=next_cursor
    )


@router.get(
    "/runs/{run_id}/stream",
    operation_id="streamRunEvents",
    summary="Follow a run's events (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "An SSE stream: `id: <seq>`, `event: <type>`, `data: <event JSON>`; "
            "ends with `event: done` after the terminal event.",
            "content": {
                "text/event-stream": {"schema": {"$ref": "#/components/schemas/LedgerEvent"}}
            },
        },
        400: {"description": "Invalid Last-Event-ID (problem+json)."},
        **_ERRORS,
    },
)
async def stream(
    run_id: RunId,
    request: Request,
    org: Org,
    writer: Writer,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="Resume after this event seq.")
    ] = None,
) -> StreamingResponse:
    """Stream events; ``Last-Event-ID`` resumes after that seq with no loss or duplicate."""
    await writer.get(org, run_id)

    async def finished() -> bool:
        return (await writer.get(org, run_id)).terminal

    return await event_stream(
        request,
        writer.store.ledger,
        org_id=org,
        subject_id=run_id,
        last_event_id=last_event_id,
        finished=finished,
        final_types=TERMINAL_EVENTS,
        done={"runId": run_id},
    )


@router.post(
    "/runs/{run_id}/messages",
    response_model=Run,
    status_code=202,
    operation_id="sendRunMessage",
    summary="Send a follow-up instruction",
    responses={
        201: {"model": Run, "description": "A chained run was created."},
        409: {"description": "run_busy, session_not_warm or max_turns_exceeded."},
        **_ERRORS,
    },
)
async def send_message(
    run_id: RunId, body: FollowUpRequest, org: Org, writer: Writer, response: Response
) -> Run:
    """A follow-up turn on the warm run, or a chained run with ``fallback: chain``."""
    record, chained = await writer.send_message(org, run_id, body)
    if chained:
        response.status_code = 201
    return record.to_model()


@router.post(
    "/runs/{run_id}/complete",
    response_model=Run,
    operation_id="completeRun",
    summary="Close a warm session",
    responses={409: {"description": "The run is not awaiting a follow-up."}, **_ERRORS},
)
async def complete(run_id: RunId, org: Org, writer: Writer) -> Run:
    """Close the warm session: the run succeeds."""
    return (await writer.complete(org, run_id)).to_model()


@router.post(
    "/runs/{run_id}/cancel",
    response_model=Run,
    operation_id="cancelRun",
    summary="Cancel a run",
    responses={409: {"description": "run_not_cancellable: the run has ended."}, **_ERRORS},
)
async def cancel(run_id: RunId, org: Org, writer: Writer) -> Run:
    """Stop the agent and release the sandbox."""
    return (await writer.cancel(org, run_id)).to_model()


@router.get(
    "/models",
    response_model=ModelList,
    operation_id="listModels",
    summary="The model catalog",
    responses={401: _ERRORS[401]},
)
async def list_models(_org: Org) -> ModelList:
    """Models, their providers, the drivers that run them and their prices."""
    return ModelList(items=list(load_catalog().values()))
