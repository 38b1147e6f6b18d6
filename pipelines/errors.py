"""The errors of the pipelines package.

::

    WritgateError
    ├── InputError
    │   ├── PipelineSpecError      the pipeline YAML / model is invalid (every problem positioned)
    │   ├── IdempotencyKeyReused   an Idempotency-Key already started a run with another request
    │   └── TemplateError          a template failed to compile or render
    ├── NotFoundError
    │   └── PipelineRunNotFound    no such pipeline run (or another org's)
    └── PipelineError              root of the engine's own failures
        ├── StageFailure           a stage failed (``retryable`` says whether a retry may help)
        └── WorkerConflict         another worker already serves this SQLite database
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from writgate.errors import InputError, NotFoundError, WritgateError

__all__ = [
    "IdempotencyKeyReused",
    "PipelineError",
    "PipelineRunNotFound",
    "PipelineSpecError",
    "SpecProblem",
    "StageFailure",
    "TemplateError",
    "WorkerConflict",
]


@dataclass(frozen=True)
class SpecProblem:
    """One problem in a pipeline spec, with where it is."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    stage: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        if self.stage:
            where += f"stage {self.stage!r}: "
        if self.field:
            where += f"{self.field}: "
        return where + self.message

    def to_json(self) -> dict[str, Any]:
        """The JSON shape used by the HTTP API and ``writgate validate --json``."""
        return {
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "stage": self.stage,
            "field": self.field,
        }


class PipelineSpecError(InputError):
    """The pipeline spec is invalid."""

    code = "invalid_pipeline"

    def __init__(self, problems: Sequence[SpecProblem]):
        if not problems:
            raise ValueError("PipelineSpecError needs at least one problem")
        self.problems = list(problems)
        first = self.problems[0]
        self.stage = first.stage
        super().__init__(
            first.message,
            file=first.file,
            line=first.line,
            column=first.column,
            field=first.field,
            stage=first.stage,
            problems=[p.to_json() for p in self.problems],
        )

    def __str__(self) -> str:
        text = str(self.problems[0])
        if len(self.problems) > 1:
            text += f" (and {len(self.problems) - 1} more problem(s))"
        return text


class TemplateError(InputError):
    """A template is invalid or could not be rendered."""

    code = "template_error"


class IdempotencyKeyReused(InputError):
    """The Idempotency-Key already started a pipeline run with a different request body."""

    code = "idempotency_key_reused"


class PipelineError(WritgateError):
    """The pipeline engine failed."""

    code = "pipeline_error"


class PipelineRunNotFound(NotFoundError):
    """The pipeline run was not found."""

    code = "pipeline_run_not_found"


class StageFailure(PipelineError):
    """The stage failed."""

    code = "stage_failed"

    def __init__(self, message: str | None = None, *, retryable: bool = True, **details: Any):
        self.retryable = retryable
        super().__init__(message, **details)


class WorkerConflict(PipelineError):
    """Another worker already serves this database."""

    code = "worker_conflict"
