"""Pipelines: the list of pipeline runs and a run's page with its live DAG and stage outputs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import HTMLResponse

from pipelines.service import PipelineService
from writgate.web import app_state

from .dag import NODE_HEIGHT, NODE_WIDTH, layout
from .live import event_stream, resume_point, summarize_event
from .pages import HtmlRoute, Viewer, flash_redirect, page, read_form, viewer

__all__ = ["router"]

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)

LoggedIn = Annotated[Viewer, Depends(viewer)]
_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
_EVENT_WINDOW = 300


def _pipelines(request: Request) -> PipelineService:
    service: PipelineService = app_state(request).services["pipelines"]
    return service


@router.get("/pipelines")
async def pipelines_list(
    request: Request,
    who: LoggedIn,
    status: Annotated[str | None, Query(max_length=20)] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    """Pipeline runs, newest first."""
    chosen = status if status in _STATUSES else None
    runs = await _pipelines(request).list_runs(
        who.org, status=[chosen] if chosen else None, name=(name or "").strip() or None, limit=100
    )
    return page(
        request,
        "pipelines.html",
        {"runs": runs, "statuses": _STATUSES, "status": chosen or "", "name": name or ""},
    )


@router.get("/pipelines/{run_id}")
async def pipeline_page(run_id: str, request: Request, who: LoggedIn) -> HTMLResponse:
    """A pipeline run: the DAG of its stages with their states, their outputs and its events."""
    service = _pipelines(request)
    run = await service.get(who.org, run_id)
    stages = {stage.stage_id: stage for stage in run.stages}
    spec = run.pipeline.stages
    drawing = layout({sid: list(stage.needs) for sid, stage in spec.items()})
    last = await service.ledger.last_seq(run_id)
    after = max(0, last - _EVENT_WINDOW)
    events = await service.ledger.read(run_id, org_id=who.org, after=after, limit=_EVENT_WINDOW)
    context: dict[str, Any] = {
        "run": run,
        "stages": stages,
        "spec": spec,
        "drawing": drawing,
        "node_width": NODE_WIDTH,
        "node_height": NODE_HEIGHT,
        "events": [
            {"seq": e.seq, "type": e.type, "at": e.at, "summary": summarize_event(e.type, e.data)}
            for e in events
        ],
        "events_hidden": after,
        "last_seq": events[-1].seq if events else after,
    }
    return page(request, "pipeline.html", context)


@router.get("/pipelines/{run_id}/live")
async def pipeline_live(
    run_id: str,
    request: Request,
    who: LoggedIn,
    after: Annotated[int, Query(ge=0)] = 0,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Response:
    """The pipeline run's events as Server-Sent Events."""
    service = _pipelines(request)
    await service.get(who.org, run_id)
    start = await resume_point(service.ledger, run_id, after, last_event_id)

    async def finished() -> bool:
        return (await service.get(who.org, run_id)).finished

    return event_stream(
        service.ledger,
        run_id,
        who.org,
        start,
        finished=finished,
        final_types=frozenset({"pipeline.finished"}),
        heartbeat=float(app_state(request).services.get("sse.heartbeat", 15.0)),
    )


@router.post("/pipelines/{run_id}/cancel")
async def cancel_pipeline(run_id: str, request: Request, who: LoggedIn) -> Response:
    """Cancel the pipeline run."""
    await read_form(request, who)
    run = await _pipelines(request).get(who.org, run_id)
    if run.finished:
        return flash_redirect(
            request, f"/pipelines/{run_id}", "error", f"The run has already {run.status}."
        )
    await _pipelines(request).cancel(who.org, run_id, reason="cancelled from the dashboard")
    return flash_redirect(request, f"/pipelines/{run_id}", "ok", "Cancellation requested.")
