"""Pipelines: the spec (YAML and Python API), the durable engine and its workers (DESIGN.md §11)."""

from __future__ import annotations

from .context import StageContext, UpstreamStage
from .durations import format_duration, parse_duration
from .errors import (
    PipelineError,
    PipelineRunNotFound,
    PipelineSpecError,
    SpecProblem,
    StageFailure,
    TemplateError,
    WorkerConflict,
)
from .loader import load_pipeline, parse_pipeline
from .spec import (
    Concurrency,
    EventFilter,
    Input,
    On,
    Pipeline,
    Retries,
    Stage,
    command,
    gate,
    json_schema,
    passport,
    python,
    review,
    writer,
)
from .stages import register as register_stage_kind

__all__ = [
    "Concurrency",
    "EventFilter",
    "Input",
    "On",
    "Pipeline",
    "PipelineError",
    "PipelineRunNotFound",
    "PipelineSpecError",
    "Retries",
    "SpecProblem",
    "Stage",
    "StageContext",
    "StageFailure",
    "TemplateError",
    "UpstreamStage",
    "WorkerConflict",
    "command",
    "format_duration",
    "gate",
    "json_schema",
    "load_pipeline",
    "parse_duration",
    "parse_pipeline",
    "passport",
    "python",
    "register_stage_kind",
    "review",
    "writer",
]
