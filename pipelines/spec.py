"""The pipeline model (DESIGN.md §11): what the YAML says and what the Python API builds.

YAML keys are camelCase (``continueOnError``, ``cancelInProgress``); the Python attributes are
snake_case, with ``if_`` and ``with_`` for the two keywords. :meth:`Pipeline.to_yaml` writes the
model back as YAML that loads into an equal model.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

from .durations import format_duration, parse_duration
from .errors import PipelineSpecError, SpecProblem, TemplateError
from .templates import CONDITION_FUNCTIONS, TOP_LEVEL_NAMES, is_template, references
from .triggers import EventFilter, On, OnField, on_problems

__all__ = [
    "BUILTIN_KINDS",
    "Concurrency",
    "EventFilter",
    "Input",
    "On",
    "Path",
    "Pipeline",
    "Retries",
    "Stage",
    "json_schema",
]

# A path into the spec: ("stages", "write", "with", "argv", 0).
Path = tuple[str | int, ...]

BUILTIN_KINDS = ("command", "gate", "passport", "python", "review", "writer")
JUDGE_KINDS = ("review", "passport", "gate")
_STAGE_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_FUNCTION = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^(\d+h)?(\d+m)?(\d+(\.\d+)?s)?(\d+ms)?$"},
                {"type": "number", "exclusiveMinimum": 0},
            ],
            "description": "a duration: 250ms, 10s, 30m, 1h30m, or a number of seconds",
        }
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=True)


class Input(_Model):
    """A pipeline input: ``{required: true}``, ``{default: tests}``, ``{description: …}``."""

    required: bool = False
    default: Any = None
    description: str | None = None


class Concurrency(_Model):
    """At most one run of a group at a time; ``cancelInProgress`` cancels the older run."""

    group: str = Field(min_length=1, max_length=500)
    cancel_in_progress: bool = Field(default=False, alias="cancelInProgress")


def _retries_shorthand(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return {"max": value}
    return value


class Retries(_Model):
    """Retry an infrastructure failure ``max`` times, waiting ``backoff``, doubled each time."""

    max: int = Field(default=1, ge=0, le=100)
    backoff: Duration = 5.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` 1 is the first try)."""
        return float(min(self.backoff * 2 ** max(attempt - 1, 0), 3600.0))


def _needs_shorthand(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class Stage(_Model):
    """One stage: a kind (``uses``), what it needs, when it runs and how it is retried."""

    uses: str = Field(min_length=1)
    needs: Annotated[list[str], BeforeValidator(_needs_shorthand)] = Field(default_factory=list)
    if_: str | None = Field(default=None, alias="if", min_length=1)
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    timeout: Duration | None = None
    retries: Annotated[Retries | None, BeforeValidator(_retries_shorthand)] = None
    continue_on_error: bool = Field(default=False, alias="continueOnError")
    outputs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("needs")
    @classmethod
    def _unique_needs(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for need in value:
            if need in seen:
                raise ValueError(f"stage {need!r} is listed twice")
            seen.add(need)
        return value


F = TypeVar("F", bound=Callable[..., Any])


class Pipeline(_Model):
    """A pipeline: named inputs, an optional concurrency group and a graph of stages."""

    name: str
    description: str | None = None
    on: OnField = Field(default=None, description="the forge events that start the pipeline")
    inputs: dict[str, Input] = Field(default_factory=dict)
    concurrency: Concurrency | None = None
    stages: dict[str, Stage] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"bad pipeline name {value!r}: letters, digits, '.', '_' and '-', at most 100"
            )
        return value

    # -- the Python API ------------------------------------------------------------------------

    def add(self, stage_id: str, stage: Stage) -> Stage:
        """Add ``stage`` under ``stage_id`` and return it; an existing id is an error."""
        if stage_id in self.stages:
            raise PipelineSpecError([SpecProblem(f"stage {stage_id!r} already exists")])
        self.stages = {**self.stages, stage_id: stage}
        return stage

    def stage(
        self,
        func: F | None = None,
        *,
        id: str | None = None,
        needs: Sequence[str] = (),
        if_: str | None = None,
        timeout: str | float | None = None,
        retries: Retries | int | None = None,
        continue_on_error: bool = False,
        outputs: Mapping[str, Any] | None = None,
        args: Mapping[str, Any] | None = None,
    ) -> Any:
        """Decorator adding an async callable as a ``python`` stage (the id is its name).

        The function is referenced as ``module:qualname`` so a worker in another process can
        import it; in this process the decorated object itself is used.
        """

        def decorate(function: F) -> F:
            from .stages.python import function_path, remember_function

            path = function_path(function)
            remember_function(path, function)
            self.add(
                id or function.__name__,
                python(
                    path,
                    args=args,
                    needs=needs,
                    if_=if_,
                    timeout=timeout,
                    retries=retries,
                    continue_on_error=continue_on_error,
                    outputs=outputs,
                ),
            )
            return function

        return decorate(func) if func is not None else decorate

    # -- serialization -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The spec as the plain data of its YAML (camelCase keys, defaults left out)."""
        data: dict[str, Any] = self.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        data["name"] = self.name
        data["stages"] = {}
        for stage_id, stage in self.stages.items():
            dumped = stage.model_dump(mode="json", by_alias=True, exclude_defaults=True)
            if stage.retries is not None:  # `max: 1` reads better than an implied default
                dumped["retries"] = stage.retries.model_dump(mode="json", by_alias=True)
            data["stages"][stage_id] = dumped
        return data

    def to_yaml(self) -> str:
        """The spec as YAML (loads back into an equal model)."""
        return yaml.safe_dump(
            self.to_dict(), sort_keys=False, allow_unicode=True, default_flow_style=False
        )

    def check(self) -> Pipeline:
        """Raise :class:`PipelineSpecError` for graph and template problems; returns ``self``."""
        issues = list(find_issues(self))
        if issues:
            raise PipelineSpecError(
                [SpecProblem(i.message, stage=i.stage, field=i.field) for i in issues]
            )
        return self

    @classmethod
    def from_data(cls, data: Any, *, source: str | None = None) -> Pipeline:
        """Validate plain data (a parsed YAML/JSON document) into a checked pipeline."""
        from .loader import pipeline_from_data

        return pipeline_from_data(data, source=source)

    # -- graph helpers ---------------------------------------------------------------------------

    def ancestors(self, stage_id: str) -> list[str]:
        """Every stage ``stage_id`` needs, directly or not, nearest first."""
        order: list[str] = []
        frontier = list(self.stages[stage_id].needs)
        while frontier:
            following: list[str] = []
            for need in frontier:
                if need not in order and need in self.stages:
                    order.append(need)
                    following.extend(self.stages[need].needs)
            frontier = following
        return order

    def dependents(self, stage_id: str) -> list[str]:
        """Stages that list ``stage_id`` in their ``needs``."""
        return [sid for sid, stage in self.stages.items() if stage_id in stage.needs]


# -- builders -------------------------------------------------------------------------------------


def _stage(
    uses: str,
    with_: Mapping[str, Any],
    *,
    needs: Sequence[str] | str = (),
    if_: str | None = None,
    timeout: str | float | None = None,
    retries: Retries | int | None = None,
    continue_on_error: bool = False,
    outputs: Mapping[str, Any] | None = None,
) -> Stage:
    data: dict[str, Any] = {
        "uses": uses,
        "needs": [needs] if isinstance(needs, str) else list(needs),
        "with": {k: v for k, v in with_.items() if v is not None},
        "continueOnError": continue_on_error,
        "outputs": dict(outputs or {}),
    }
    if if_ is not None:
        data["if"] = if_
    if timeout is not None:
        data["timeout"] = timeout
    if retries is not None:
        data["retries"] = (
            retries.model_dump(by_alias=True) if isinstance(retries, Retries) else retries
        )
    try:
        return Stage.model_validate(data)
    except ValidationError as exc:
        raise PipelineSpecError(
            [SpecProblem(_message(e), field=_dotted(e["loc"])) for e in exc.errors()]
        ) from None


def writer(
    *,
    repository: str,
    prompt: str,
    needs: Sequence[str] | str = (),
    if_: str | None = None,
    timeout: str | float | None = None,
    retries: Retries | int | None = None,
    continue_on_error: bool = False,
    outputs: Mapping[str, Any] | None = None,
    **options: Any,
) -> Stage:
    """A ``writer`` stage: a coding-agent run on ``repository`` (more ``with:`` as keywords)."""
    return _stage(
        "writer",
        {"repository": repository, "prompt": prompt, **options},
        needs=needs,
        if_=if_,
        timeout=timeout,
        retries=retries,
        continue_on_error=continue_on_error,
        outputs=outputs,
    )


def review(
    *,
    needs: Sequence[str] | str = (),
    reviewers: Sequence[str] | None = None,
    if_: str | None = None,
    timeout: str | float | None = None,
    retries: Retries | int | None = None,
    continue_on_error: bool = False,
    outputs: Mapping[str, Any] | None = None,
    **options: Any,
) -> Stage:
    """A ``review`` stage: the judge's reviewers on the upstream writer's change."""
    return _stage(
        "review",
        {"reviewers": list(reviewers) if reviewers is not None else None, **options},
        needs=needs,
        if_=if_,
        timeout=timeout,
        retries=retries,
        continue_on_error=continue_on_error,
        outputs=outputs,
    )


def passport(
    *,
    needs: Sequence[str] | str = (),
    if_: str | None = None,
    timeout: str | float | None = None,
    retries: Retries | int | None = None,
    continue_on_error: bool = False,
    outputs: Mapping[str, Any] | None = None,
    **options: Any,
) -> Stage:
    """A ``passport`` stage: the Change Passport of the upstream writer's change."""
    return _stage(
        "passport",
        options,
        needs=needs,
        if_=if_,
        timeout=timeout,
        retries=retries,
        continue_on_error=continue_on_error,
        outputs=outputs,
    )


def gate(
    *,
    policy: str,
    needs: Sequence[str] | str = (),
    publish_status: bool | None = None,
    if_: str | None = None,
    timeout: str | float | None = None,
    retries: Retries | int | None = None,
    continue_on_error: bool = False,
    outputs: Mapping[str, Any] | None = None,
    **options: Any,
) -> Stage:
    """A ``gate`` stage: the merge gate's decision under ``policy`` (a policy file)."""
    return _stage(
        "gate",
        {"policy": policy, "publishStatus": publish_status, **options},
        needs=needs,
        if_=if_,
        timeout=timeout,
        retries=retries,
        continue_on_error=continue_on_error,
        outputs=outputs,
    )


def command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    needs: Sequence[str] | str = (),
    if_: str | None = None,
    timeout: str | float | None = None,
    retries: Retries | int | None = None,
    continue_on_error: bool = False,
    outputs: Mapping[str, Any] | None = None,
) -> Stage:
    """A ``command`` stage: ``argv`` in a subprocess; a nonzero exit fails the stage."""
    return _stage(
        "command",
        {"argv": list(argv), "env": dict(env) if env else None, "cwd": cwd},
        needs=needs,
        if_=if_,
        timeout=timeout,
        retries=retries,
        continue_on_error=continue_on_error,
        outputs=outputs,
    )


def python(
    function: str,
    *,
    args: Mapping[str, Any] | None = None,
    needs: Sequence[str] | str = (),
    if_: str | None = None,
    timeout: str | float | None = None,
    retries: Retries | int | None = None,
    continue_on_error: bool = False,
    outputs: Mapping[str, Any] | None = None,
) -> Stage:
    """A ``python`` stage: the async callable ``"package.module:name"``; its mapping = outputs."""
    return _stage(
        "python",
        {"function": function, "args": dict(args) if args else None},
        needs=needs,
        if_=if_,
        timeout=timeout,
        retries=retries,
        continue_on_error=continue_on_error,
        outputs=outputs,
    )


# -- checks beyond the field types ----------------------------------------------------------------


@dataclass(frozen=True)
class Issue:
    """A problem found by :func:`find_issues`, located by its path in the spec."""

    path: Path
    message: str
    on_key: bool = False

    @property
    def stage(self) -> str | None:
        if len(self.path) >= 2 and self.path[0] == "stages":
            return str(self.path[1])
        return None

    @property
    def field(self) -> str:
        return _dotted(self.path)


def _dotted(loc: Iterable[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _message(error: Mapping[str, Any]) -> str:
    message = str(error.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    loc = tuple(error.get("loc", ()))
    if error.get("type") == "extra_forbidden" and len(loc) == 2 and loc[0] == "on":
        events = ", ".join(On.model_fields)
        return f"unknown event {loc[-1]!r} (pipelines start on: {events})"
    if error.get("type") == "extra_forbidden":
        field = str(error["loc"][-1]) if error.get("loc") else "?"
        message = f"unknown field {field!r}"
        close = difflib.get_close_matches(field, _KNOWN_KEYS, n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
    elif error.get("type") == "missing":
        message = "this field is required"
    return message


_KNOWN_KEYS = sorted(
    {
        (f.alias or name)
        for model in (Pipeline, Stage, Input, Concurrency, Retries, On, EventFilter)
        for name, f in model.model_fields.items()
    }
)


def _walk_strings(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk_strings(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk_strings(item, (*path, index))


def _check_template(
    pipeline: Pipeline,
    path: Path,
    source: str,
    *,
    stage_id: str | None,
    condition: bool = False,
    inputs_only: bool = False,
    extra_names: Iterable[str] = (),
) -> Iterator[Issue]:
    if not condition and not is_template(source):
        return
    try:
        refs = references(source, condition=condition)
    except TemplateError as exc:
        yield Issue(path, exc.message)
        return
    allowed = set(TOP_LEVEL_NAMES) | (set(CONDITION_FUNCTIONS) if condition else set())
    allowed |= set(extra_names)
    if inputs_only:
        allowed = {"inputs", "env"}
    for name in sorted(refs.names - allowed):
        if name in CONDITION_FUNCTIONS:
            yield Issue(path, f"{name}() is only available in 'if:' conditions")
        else:
            yield Issue(
                path,
                f"unknown name {name!r} in template (templates see {', '.join(sorted(allowed))})",
            )
    for name in sorted(refs.private):
        yield Issue(path, f"templates cannot access private attributes ({name!r})")
    for name in sorted(refs.inputs - set(pipeline.inputs)):
        yield Issue(path, f"template refers to undeclared input {name!r}")
    if stage_id is not None:
        reachable = set(pipeline.ancestors(stage_id)) if stage_id in pipeline.stages else set()
        for other in sorted(refs.stages):
            if other not in pipeline.stages:
                yield Issue(path, f"template refers to unknown stage {other!r}")
            elif other == stage_id:
                yield Issue(path, "a stage's templates cannot read its own stage (use 'outputs')")
            elif other not in reachable:
                yield Issue(
                    path,
                    f"template refers to stage {other!r}, which this stage does not need "
                    "(add it to 'needs')",
                )


def _cycles(pipeline: Pipeline) -> Iterator[list[str]]:
    state: dict[str, int] = {}
    stack: list[str] = []
    reported: set[frozenset[str]] = set()

    def visit(node: str) -> Iterator[list[str]]:
        state[node] = 1
        stack.append(node)
        for need in pipeline.stages[node].needs:
            if need not in pipeline.stages:
                continue
            if state.get(need) == 1:
                cycle = [*stack[stack.index(need) :], need]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    yield cycle
            elif need not in state:
                yield from visit(need)
        stack.pop()
        state[node] = 2

    for stage_id in pipeline.stages:
        if stage_id not in state:
            yield from visit(stage_id)


def find_issues(pipeline: Pipeline, *, known_kinds: Iterable[str] | None = None) -> Iterator[Issue]:
    """Problems the field types cannot see: stage ids, needs, cycles, kinds, ``with``, templates."""
    from .stages import registered_kinds

    kinds = set(BUILTIN_KINDS) | set(known_kinds if known_kinds is not None else registered_kinds())
    if not pipeline.stages:
        yield Issue(("stages",), "a pipeline needs at least one stage")
    for name, spec in pipeline.inputs.items():
        if spec.required and spec.default is not None:
            yield Issue(("inputs", name), "an input with a default cannot be required")
    if pipeline.on is not None:
        for path, message in on_problems(pipeline.on, pipeline.inputs):
            yield Issue(path, message)
    if pipeline.concurrency is not None:
        yield from _check_template(
            pipeline,
            ("concurrency", "group"),
            pipeline.concurrency.group,
            stage_id=None,
            inputs_only=True,
        )
    for stage_id, stage in pipeline.stages.items():
        base: Path = ("stages", stage_id)
        if not _STAGE_ID.match(stage_id):
            yield Issue(
                base,
                f"bad stage id {stage_id!r}: start with a letter or '_', then letters, digits, "
                "'_' or '-'",
                on_key=True,
            )
        if stage.uses not in kinds:
            close = difflib.get_close_matches(stage.uses, sorted(kinds), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            yield Issue(
                (*base, "uses"),
                f"unknown stage kind {stage.uses!r}{hint}; known kinds: {', '.join(sorted(kinds))}",
            )
        for index, need in enumerate(stage.needs):
            if need == stage_id:
                yield Issue((*base, "needs", index), "a stage cannot need itself")
            elif need not in pipeline.stages:
                close = difflib.get_close_matches(need, list(pipeline.stages), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                yield Issue((*base, "needs", index), f"unknown stage {need!r} in needs{hint}")
        yield from _check_with(stage, base)
        if stage.if_ is not None:
            yield from _check_template(
                pipeline, (*base, "if"), stage.if_, stage_id=stage_id, condition=True
            )
        for path, text in _walk_strings(stage.with_, (*base, "with")):
            yield from _check_template(pipeline, path, text, stage_id=stage_id)
        for path, text in _walk_strings(stage.outputs, (*base, "outputs")):
            yield from _check_template(
                pipeline, path, text, stage_id=stage_id, extra_names=("outputs",)
            )
    for cycle in _cycles(pipeline):
        yield Issue(("stages", cycle[0], "needs"), "stages form a cycle: " + " -> ".join(cycle))


def _check_with(stage: Stage, base: Path) -> Iterator[Issue]:
    params = stage.with_
    where: Path = (*base, "with")
    allowed: dict[str, tuple[str, ...]] = {
        "command": ("argv", "env", "cwd"),
        "python": ("function", "args"),
    }
    if stage.uses in allowed:
        for key in params:
            if key not in allowed[stage.uses]:
                yield Issue(
                    (*where, key),
                    f"unknown field {key!r} for a {stage.uses} stage "
                    f"(allowed: {', '.join(allowed[stage.uses])})",
                    on_key=True,
                )
    if stage.uses == "command":
        argv = params.get("argv")
        if not isinstance(argv, list) or not argv:
            yield Issue(
                (*where, "argv") if "argv" in params else where,
                "a command stage needs 'argv', a non-empty list of strings",
            )
        else:
            for index, item in enumerate(argv):
                if not isinstance(item, (str, int, float)) or isinstance(item, bool):
                    yield Issue(
                        (*where, "argv", index),
                        "argv items must be strings (quote values like true or null)",
                    )
        env = params.get("env")
        if env is not None and (
            not isinstance(env, Mapping)
            or not all(isinstance(v, (str, int, float)) for v in env.values())
        ):
            yield Issue((*where, "env"), "env must map names to strings")
    elif stage.uses == "python":
        function = params.get("function")
        from .stages.python import is_remembered

        if not isinstance(function, str) or not (
            _FUNCTION.match(function) or is_remembered(function)
        ):
            yield Issue(
                (*where, "function") if "function" in params else where,
                "a python stage needs 'function': \"package.module:name\"",
            )
        args = params.get("args")
        if args is not None and not isinstance(args, Mapping):
            yield Issue((*where, "args"), "args must be a mapping of keyword arguments")
    elif stage.uses == "gate":
        if not isinstance(params.get("policy"), str):
            yield Issue(
                (*where, "policy") if "policy" in params else where,
                "a gate stage needs 'policy', the path of a policy file",
            )
        publish = params.get("publishStatus")
        if publish is not None and not isinstance(publish, bool):
            yield Issue((*where, "publishStatus"), "publishStatus must be true or false")
    elif stage.uses == "writer":
        for key in ("repository", "prompt"):
            if key not in params:
                yield Issue(where, f"a writer stage needs {key!r}")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a pipeline file, for editors."""
    schema = Pipeline.model_json_schema(by_alias=True)
    events = list(On.model_fields)  # the shorthands `on: pull_request`, `on: [a, b]`
    schema["properties"]["on"]["anyOf"][1:1] = [
        {"enum": events},
        {"type": "array", "items": {"enum": events}, "uniqueItems": True},
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://writgate.dev/schemas/pipeline.json",
        "title": "writgate pipeline",
        **schema,
    }
