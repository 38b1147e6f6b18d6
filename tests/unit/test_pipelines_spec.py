from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import pipelines
from pipelines import (
    Concurrency,
    Input,
    Pipeline,
    PipelineSpecError,
    Retries,
    command,
    gate,
    load_pipeline,
    parse_pipeline,
    passport,
    python,
    review,
    writer,
)
from pipelines.durations import format_duration, parse_duration

DESIGN_YAML = """\
name: ci-repair
inputs:
  repository: {required: true}
  check: {default: tests}
concurrency: {group: "ci-repair-{{ inputs.repository }}", cancelInProgress: true}
stages:
  write:
    uses: writer
    with:
      repository: "{{ inputs.repository }}"
      prompt: "The {{ inputs.check }} check fails on main. Fix it."
      tags: [ci, "owner:platform"]
      publish: {mode: draft_pr}
      validationMode: tests
    timeout: 30m
    retries: {max: 1, backoff: 10s}
  review:   {uses: review, needs: [write], with: {reviewers: [secrets, missing-tests, ruff]}}
  passport: {uses: passport, needs: [write, review]}
  gate:     {uses: gate, needs: [passport], with: {policy: policies/default.yaml}}
  notify:   {uses: command, needs: [gate], if: "{{ always() }}",
             with: {argv: [echo, "{{ stages.gate.outputs.decision }}"]}}
"""


def test_public_api_is_sorted_and_complete() -> None:
    assert pipelines.__all__ == sorted(pipelines.__all__)
    for name in pipelines.__all__:
        assert hasattr(pipelines, name), name


def test_design_example_loads(tmp_path: Path) -> None:
    file = tmp_path / "ci.yaml"
    file.write_text(DESIGN_YAML)
    pipeline = load_pipeline(file)
    assert pipeline.name == "ci-repair"
    assert pipeline.inputs["repository"].required is True
    assert pipeline.inputs["check"].default == "tests"
    assert pipeline.concurrency == Concurrency(
        group="ci-repair-{{ inputs.repository }}", cancel_in_progress=True
    )
    write = pipeline.stages["write"]
    assert write.timeout == 1800.0
    assert write.retries == Retries(max=1, backoff=10.0)
    assert write.with_["tags"] == ["ci", "owner:platform"]
    assert pipeline.stages["notify"].if_ == "{{ always() }}"
    assert pipeline.stages["passport"].needs == ["write", "review"]
    assert pipeline.ancestors("gate") == ["passport", "write", "review"]


def test_python_api_builds_the_same_model_as_yaml() -> None:
    built = Pipeline(
        name="ci-repair",
        inputs={"repository": Input(required=True), "check": Input(default="tests")},
        concurrency=Concurrency(group="ci-repair-{{ inputs.repository }}", cancel_in_progress=True),
    )
    built.add(
        "write",
        writer(
            repository="{{ inputs.repository }}",
            prompt="The {{ inputs.check }} check fails on main. Fix it.",
            tags=["ci", "owner:platform"],
            publish={"mode": "draft_pr"},
            validationMode="tests",
            timeout="30m",
            retries=Retries(max=1, backoff="10s"),  # type: ignore[arg-type]
        ),
    )
    built.add("review", review(needs=["write"], reviewers=["secrets", "missing-tests", "ruff"]))
    built.add("passport", passport(needs=["write", "review"]))
    built.add("gate", gate(needs="passport", policy="policies/default.yaml"))
    built.add(
        "notify",
        command(
            ["echo", "{{ stages.gate.outputs.decision }}"], needs=["gate"], if_="{{ always() }}"
        ),
    )
    built.check()
    from_yaml = parse_pipeline(DESIGN_YAML)
    assert built == from_yaml
    # and back: YAML written by the Python API loads into an equal model, and is stable
    text = built.to_yaml()
    assert parse_pipeline(text) == built
    assert parse_pipeline(text).to_yaml() == text
    assert "max: 1" in text and "backoff: 10s" in text and "timeout: 30m" in text


async def _hello(ctx: Any, who: str = "world") -> dict[str, str]:
    return {"greeting": f"hello {who}"}


def test_stage_decorator_adds_python_stages_that_round_trip() -> None:
    pipeline = Pipeline(name="deco")
    pipeline.add("first", python("tests.unit.test_pipelines_spec:_hello"))

    @pipeline.stage(needs=["first"], timeout="1h30m", retries=2, args={"who": "you"})
    async def second(ctx: Any, who: str) -> dict[str, str]:
        return {"who": who}

    stage = pipeline.stages["second"]
    assert stage.uses == "python"
    assert stage.with_["function"] == f"{__name__}:{second.__qualname__}"
    assert stage.with_["args"] == {"who": "you"}
    assert stage.timeout == 5400.0
    assert stage.retries == Retries(max=2)
    assert parse_pipeline(pipeline.to_yaml()) == pipeline
    assert "timeout: 1h30m" in pipeline.to_yaml()
    with pytest.raises(PipelineSpecError, match="already exists"):
        pipeline.add("second", command(["true"]))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800),
        ("10s", 10),
        ("1h30m", 5400),
        ("250ms", 0.25),
        ("1.5s", 1.5),
        (45, 45),
        ("90", 90),
        ("2h", 7200),
        ("1m30s", 90),
    ],
)
def test_durations_parse_and_format_round_trip(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    "bad", ["30x", "", "m", "1h-5m", "0s", -3, True, None, "10 s", "1d", "200h"]
)
def test_bad_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(bad)


def _problems(text: str, tmp_path: Path) -> list[pipelines.SpecProblem]:
    file = tmp_path / "p.yaml"
    file.write_text(text)
    with pytest.raises(PipelineSpecError) as info:
        load_pipeline(file)
    assert str(file) in str(info.value)
    return info.value.problems


def _one(problems: list[pipelines.SpecProblem]) -> pipelines.SpecProblem:
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def test_unknown_field_is_positioned_on_its_key(tmp_path: Path) -> None:
    text = "name: x\nstages:\n  a:\n    uses: command\n    with: {argv: ['true']}\n    timeot: 3\n"
    problem = _one(_problems(text, tmp_path))
    assert (problem.line, problem.column, problem.stage) == (6, 5, "a")
    assert problem.field == "stages.a.timeot"
    assert (
        "unknown field 'timeot'" in problem.message and "did you mean 'timeout'" in problem.message
    )


def test_bad_duration_is_positioned_on_its_value(tmp_path: Path) -> None:
    text = (
        "name: x\nstages:\n  a:\n    uses: command\n    with: {argv: ['true']}\n    timeout: 30x\n"
    )
    problem = _one(_problems(text, tmp_path))
    assert (problem.line, problem.column, problem.stage) == (6, 14, "a")
    assert "bad duration '30x'" in problem.message


def test_unknown_need_cycle_kind_and_template_errors(tmp_path: Path) -> None:
    text = (
        "name: bad\n"  # 1
        "stages:\n"  # 2
        "  a:\n"  # 3
        "    uses: comand\n"  # 4
        "  b:\n"  # 5
        "    uses: command\n"  # 6
        "    needs: [a, c, d]\n"  # 7
        "    with: {argv: ['{{ inputs.nope }}', '{{ stages.a.outputs.x ']}\n"  # 8
        "  c: {uses: python, needs: [b], with: {function: 'x.y:z'}}\n"  # 9
    )
    problems = _problems(text, tmp_path)
    assert len(problems) == 5
    kind = next(p for p in problems if "unknown stage kind" in p.message)
    assert (kind.line, kind.column, kind.stage) == (4, 11, "a")
    assert "did you mean 'command'" in kind.message
    need = next(p for p in problems if "unknown stage 'd'" in p.message)
    assert (need.line, need.column, need.stage, need.field) == (7, 19, "b", "stages.b.needs[2]")
    undeclared = next(p for p in problems if "undeclared input 'nope'" in p.message)
    assert (undeclared.line, undeclared.stage) == (8, "b")
    syntax = next(p for p in problems if "template syntax error" in p.message)
    assert (syntax.line, syntax.stage, syntax.field) == (8, "b", "stages.b.with.argv[1]")
    cycle = next(p for p in problems if "cycle" in p.message)
    assert "b -> c -> b" in cycle.message and cycle.line == 7


def test_template_must_need_the_stage_it_reads(tmp_path: Path) -> None:
    text = (
        "name: x\nstages:\n  a: {uses: command, with: {argv: ['true']}}\n"
        "  b: {uses: command, with: {argv: [echo, '{{ stages.a.outputs.stdout }}']}}\n"
    )
    problem = _one(_problems(text, tmp_path))
    assert problem.stage == "b" and problem.line == 4
    assert "does not need" in problem.message


def test_status_functions_only_in_if(tmp_path: Path) -> None:
    text = "name: x\nstages:\n  a: {uses: command, with: {argv: ['{{ always() }}']}}\n"
    assert "only available in 'if:'" in _one(_problems(text, tmp_path)).message


def test_yaml_syntax_error_and_duplicate_keys_are_positioned(tmp_path: Path) -> None:
    problem = _one(_problems("name: x\nstages:\n  a: {uses: [\n", tmp_path))
    assert problem.line is not None and "not valid YAML" in problem.message
    dup = _one(_problems("name: x\nstages:\n  a: {uses: command}\n  a: {uses: python}\n", tmp_path))
    assert (dup.line, dup.column, dup.stage) == (4, 3, "a") and "duplicate key" in dup.message


def test_command_and_python_with_are_checked(tmp_path: Path) -> None:
    text = (
        "name: x\nstages:\n  a: {uses: command, with: {args: [true]}}\n"
        "  b: {uses: python, with: {function: 'not a path'}}\n"
    )
    messages = [p.message for p in _problems(text, tmp_path)]
    assert any("unknown field 'args' for a command stage" in m for m in messages)
    assert any("needs 'argv'" in m for m in messages)
    assert any("needs 'function'" in m for m in messages)


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(PipelineSpecError, match="no such file"):
        load_pipeline(tmp_path / "missing.yaml")
    assert "must be a mapping" in _one(_problems("- a\n- b\n", tmp_path)).message


def test_json_schema_describes_the_yaml_keys() -> None:
    schema = pipelines.json_schema()
    json.dumps(schema)
    stage = schema["$defs"]["Stage"]["properties"]
    assert {
        "uses",
        "needs",
        "if",
        "with",
        "timeout",
        "retries",
        "continueOnError",
        "outputs",
    } <= set(stage)
    assert schema["$defs"]["Stage"]["additionalProperties"] is False
    assert "cancelInProgress" in schema["$defs"]["Concurrency"]["properties"]
