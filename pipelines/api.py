"""HTTP routes of pipeline runs, mounted by the application.

``POST /api/v1/pipelines`` starts a run from a pipeline file under the server's pipeline
directory (``WRITGATE_PIPELINE_DIR``, default ``$WRITGATE_HOME/pipelines``) or from a spec in the
body; an ``Idempotency-Key`` header makes a retried start return the run it already started.
A spec in the body may not use ``command`` or ``python`` stages — they run code on the
server — unless ``WRITGATE_API_HOST_STAGES=1``; files in the pipeline directory are the
operator's and may.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from rfc8785 import CanonicalizationError

from writer.store import fingerprint
from writgate.errors import InputError
from writgate.sse import LedgerEvent, LedgerEventList, event_stream
from writgate.web import app_state, request_org, service

from .errors import PipelineSpecError, SpecProblem
from .loader import load_pipeline, parse_pipeline, pipeline_from_data
from .records import PipelineRun
from .service import PipelineService
from .spec import Pipeline

__all__ = ["HOST_STAGE_KINDS", "pipeline_dir", "request_fingerprint", "router"]

HOST_STAGE_KINDS = ("command", "python")
_IDEMPOTENCY_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")

router = APIRouter(prefix="/api/v1", tags=["pipelines"])

Org = Annotated[str, Depends(request_org)]
RunId = Annotated[str, PathParam(description="The pipeline run id (prun_…).")]
Pipelines = Annotated[PipelineService, Depends(service("pipelines"))]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key (problem+json)."},
    404: {"description": "No such pipeline run in the caller's org (problem+json)."},
    422: {
        "description": "Invalid spec or inputs; `problems` lists each with file, line, "
        "column, stage and field (problem+json)."
    },
}


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class StartPipelineRequest(_Model):
    """Which pipeline to run (exactly one of ``path``, ``yaml``, ``spec``) and its inputs."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    path: str | None = Field(
        default=None, description="a pipeline file relative to the server's pipeline directory"
    )
    yaml: str | None = Field(default=None, description="pipeline YAML text", max_length=1_000_000)
    spec: dict[str, Any] | None = Field(default=None, description="the pipeline as JSON")
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="Values for the pipeline's declared inputs."
    )

    @model_validator(mode="after")
    def _one_source(self) -> StartPipelineRequest:
        given = [name for name in ("path", "yaml", "spec") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of path, yaml or spec")
        return self


class StageRunOut(_Model):
    """One stage of a pipeline run."""

    stage: str = Field(description="The stage id in the pipeline.")
    kind: str = Field(
        description="What the stage runs (its `uses`, e.g. writer, review, gate, command)."
    )
    status: str = Field(description="queued, running, succeeded, failed, skipped or cancelled.")
    attempt: int = Field(description="The current attempt, from 1.")
    claims: int = Field(description="How many times a worker claimed the stage.")
    outputs: dict[str, Any] | None = Field(description="The stage's outputs once it succeeded.")
    error: str | None = Field(description="Why the last attempt failed.")
    lease_owner: str | None = Field(description="The worker holding the stage's lease.")
    lease_expires_at: str | None = Field(description="When that lease expires (RFC 3339).")
    not_before: str | None = Field(description="A retry waits until then (RFC 3339).")
    queued_at: str | None = Field(description="When the stage became ready (RFC 3339).")
    started_at: str | None = Field(description="When its current attempt started (RFC 3339).")
    finished_at: str | None = Field(description="When it ended (RFC 3339).")


class PipelineRunOut(_Model):
    """A pipeline run and its stages."""

    id: str = Field(description="The pipeline run id (prun_…).")
    name: str = Field(description="The pipeline's name.")
    status: str = Field(description="queued, running, succeeded, failed or cancelled.")
    inputs: dict[str, Any] = Field(description="The run's inputs, defaults applied.")
    source: str | None = Field(
        description="Where the pipeline came from: a file of the pipeline directory, or api."
    )
    trigger_id: str | None = Field(
        default=None,
        description="The forge trigger (trg_…, `GET /api/v1/forge/triggers/{id}`) that started "
        "the run; null when it was started by hand.",
    )
    concurrency_group: str | None = Field(description="Runs of one group run one at a time.")
    cancel_requested: bool = Field(description="Whether a cancel was requested.")
    cancel_reason: str | None = Field(description="Why it was cancelled.")
    error: str | None = Field(description="Why the run failed.")
    created_at: str | None = Field(description="When the run was started (RFC 3339).")
    started_at: str | None = Field(description="When its first stage started (RFC 3339).")
    finished_at: str | None = Field(description="When it finished (RFC 3339).")
    stages: list[StageRunOut] = Field(description="Every stage of the run (empty in lists).")


class PipelineRunList(_Model):
    """Pipeline runs, newest first."""

    items: list[PipelineRunOut] = Field(description="Pipeline runs, newest first.")


class CancelRequest(_Model):
    """Why the run is cancelled."""

    reason: str = Field(
        default="cancelled through the API", max_length=500, description="Recorded with the run."
    )


class ValidationOut(_Model):
    """Whether a spec is valid, and its problems."""

    valid: bool = Field(description="Whether the pipeline would start.")
    problems: list[dict[str, Any]] = Field(
        description="Each problem with its file, line, column, stage and field."
    )


def _out(run: PipelineRun) -> PipelineRunOut:
    return PipelineRunOut.model_validate(run.to_json())


def pipeline_dir(home: Path) -> Path:
    """The folder ``path`` requests are resolved in."""
    configured = os.environ.get("WRITGATE_PIPELINE_DIR")
    return Path(configured).expanduser().resolve() if configured else (home / "pipelines").resolve()


def _load(request: StartPipelineRequest, home: Path) -> tuple[Pipeline, str, Path | None]:
    try:
        return _load_source(request, home)
    except PipelineSpecError as exc:
        # A problem of the document as a whole (not YAML, too deep) is about the request field.
        exc.field = exc.field or next(
            f"/{name}" for name in ("path", "yaml", "spec") if getattr(request, name) is not None
        )
        raise


def _load_source(request: StartPipelineRequest, home: Path) -> tuple[Pipeline, str, Path | None]:
    if request.path is not None:
        if "\x00" in request.path:
            raise InputError("the path must not contain a NUL character", field="/path")
        root = pipeline_dir(home)
        target = (root / request.path).resolve()
        if not target.is_relative_to(root) or not request.path.strip():
            raise InputError("the path must stay inside the pipeline directory", field="/path")
        return load_pipeline(target), str(target.relative_to(root)), target.parent
    if request.yaml is not None:
        pipeline = parse_pipeline(request.yaml, source="<request yaml>")
    else:
        pipeline = pipeline_from_data(request.spec, source="<request spec>")
    if os.environ.get("WRITGATE_API_HOST_STAGES") != "1":
        problems = [
            SpecProblem(
                f"{stage.uses!r} stages run code on the server: put this pipeline in the "
                "server's pipeline directory and start it by path",
                stage=stage_id,
                field=f"stages.{stage_id}.uses",
            )
            for stage_id, stage in pipeline.stages.items()
            if stage.uses in HOST_STAGE_KINDS
        ]
        if problems:
            raise PipelineSpecError(problems)
    return pipeline, "api", None


def request_fingerprint(body: StartPipelineRequest) -> str:
    """SHA-256 of the canonical JSON of a start request (its source and inputs).

    RFC 8785 like the run API's; a body outside its domain (an integer beyond 2**53, a lone
    surrogate) is hashed as sorted, compact, ASCII-escaped JSON instead.
    """
    data = body.model_dump(mode="json", exclude_none=True)
    try:
        return fingerprint(data)
    except CanonicalizationError:
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode()).hexdigest()


@router.post(
    "/pipelines",
    status_code=201,
    response_model=PipelineRunOut,
    operation_id="startPipelineRun",
    summary="Start a pipeline run",
    responses={
        200: {
            "model": PipelineRunOut,
            "description": "Replay of an idempotent start: the run the Idempotency-Key already "
            "started (header `Idempotent-Replayed: true`).",
        },
        **_ERRORS,
        422: {
            "description": "Invalid spec or inputs (`problems` lists each with file, line, "
            "column, stage and field), an invalid Idempotency-Key, or one already used with "
            "another body (`idempotency_key_reused`); problem+json."
        },
    },
)
async def start_pipeline(
    body: StartPipelineRequest,
    request: Request,
    response: Response,
    org: Org,
    pipelines: Pipelines,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="1-255 printable ASCII characters, scoped to the org; a retry with the "
            "same key and body returns the same run (200, Idempotent-Replayed: true) instead of "
            "starting another; the same key with another body is a 422 "
            "(idempotency_key_reused).",
        ),
    ] = None,
) -> PipelineRunOut:
    """Start a run; workers (the server's own on the embedded default) execute it. With an
    Idempotency-Key, a retried start returns the run the first one started."""
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
        raise InputError(
            "Idempotency-Key must be 1-255 printable ASCII characters",
            field="Idempotency-Key",
            code="invalid_idempotency_key",
        )
    home = app_state(request).settings.home
    pipeline, source, base_dir = _load(body, home)
    run = await pipelines.start(
        org,
        pipeline,
        body.inputs,
        source=source,
        base_dir=base_dir,
        idempotency_key=idempotency_key,
        fingerprint=request_fingerprint(body) if idempotency_key is not None else None,
    )
    if run.replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return _out(run)


@router.post(
    "/pipelines/validate",
    response_model=ValidationOut,
    operation_id="validatePipeline",
    summary="Check a pipeline spec without running it",
    responses={401: _ERRORS[401]},
)
async def validate_pipeline(
    body: StartPipelineRequest, request: Request, _org: Org
) -> ValidationOut:
    """``valid`` and every problem with its line, column, stage and field."""
    try:
        _load(body, app_state(request).settings.home)
    except PipelineSpecError as exc:
        return ValidationOut(valid=False, problems=[p.to_json() for p in exc.problems])
    return ValidationOut(valid=True, problems=[])


@router.get(
    "/pipeline-runs",
    response_model=PipelineRunList,
    operation_id="listPipelineRuns",
    summary="List pipeline runs, newest first",
    responses={401: _ERRORS[401]},
)
async def list_pipeline_runs(
    org: Org,
    pipelines: Pipelines,
    status: Annotated[list[str] | None, Query(description="Repeatable; any may match.")] = None,
    name: Annotated[str | None, Query(description="Only runs of this pipeline.")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
) -> PipelineRunList:
    """Runs of the caller's org (without stages)."""
    runs = await pipelines.list_runs(org, status=status, name=name, limit=limit)
    return PipelineRunList(items=[_out(run) for run in runs])


@router.get(
    "/pipeline-runs/{run_id}",
    response_model=PipelineRunOut,
    operation_id="getPipelineRun",
    summary="A pipeline run and its stages",
    responses=_ERRORS,
)
async def get_pipeline_run(run_id: RunId, org: Org, pipelines: Pipelines) -> PipelineRunOut:
    """The run with every stage's status, attempt, outputs and lease."""
    return _out(await pipelines.get(org, run_id))


@router.post(
    "/pipeline-runs/{run_id}/cancel",
    response_model=PipelineRunOut,
    operation_id="cancelPipelineRun",
    summary="Cancel a pipeline run",
    responses=_ERRORS,
)
async def cancel_pipeline_run(
    run_id: RunId, org: Org, pipelines: Pipelines, body: CancelRequest | None = None
) -> PipelineRunOut:
    """Running stages are cancelled (a writer stage cancels its writer run); ``always()`` and
    ``cancelled()`` stages still run."""
    reason = body.reason if body is not None else CancelRequest().reason
    return _out(await pipelines.cancel(org, run_id, reason=reason))


@router.get(
    "/pipeline-runs/{run_id}/events",
    response_model=LedgerEventList,
    operation_id="listPipelineRunEvents",
    summary="Read a pipeline run's event ledger",
    responses=_ERRORS,
)
async def list_pipeline_run_events(
    run_id: RunId,
    org: Org,
    pipelines: Pipelines,
    after: Annotated[int, Query(ge=0, description="Only events with a greater seq.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 200,
) -> LedgerEventList:
    """Events with ``seq > after``, oldest first."""
    await pipelines.get(org, run_id)
    events = await pipelines.ledger.read(run_id, org_id=org, after=after, limit=limit + 1)
    page = events[:limit]
    return LedgerEventList(
        items=[LedgerEvent.model_validate(e.to_json()) for e in page],
        next_cursor=str(page[-1].seq) if len(events) > limit else None,
    )


@router.get(
    "/pipeline-runs/{run_id}/stream",
    operation_id="streamPipelineRunEvents",
    summary="Follow a pipeline run's events (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "An SSE stream: `id: <seq>`, `event: <type>`, `data: <event JSON>`; "
            "ends with `event: done` after `pipeline.finished`. Comment lines are heartbeats.",
            "content": {
                "text/event-stream": {"schema": {"$ref": "#/components/schemas/LedgerEvent"}}
            },
        },
        400: {"description": "Invalid Last-Event-ID (problem+json)."},
        **_ERRORS,
    },
)
async def stream_pipeline_run(
    run_id: RunId,
    request: Request,
    org: Org,
    pipelines: Pipelines,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="Resume after this event seq.")
    ] = None,
) -> StreamingResponse:
    """Stream events; ``Last-Event-ID`` resumes after that seq with no loss or duplicate."""
    await pipelines.get(org, run_id)

    async def finished() -> bool:
        return (await pipelines.get(org, run_id)).finished

    return await event_stream(
        request,
        pipelines.ledger,
        org_id=org,
        subject_id=run_id,
        last_event_id=last_event_id,
        finished=finished,
        final_types={"pipeline.finished"},
        done={"pipelineRunId": run_id},
    )
