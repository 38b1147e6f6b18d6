"""The `on:` section: the model, its YAML and Python forms, its errors, and trigger matching."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from forge.webhooks import Trigger
from pipelines import EventFilter, On, Pipeline, PipelineSpecError, command, json_schema
from pipelines.loader import parse_pipeline
from pipelines.triggers import glob_matches, match_trigger, trigger_inputs

STAGES = "stages:\n  a: {uses: command, with: {argv: [echo]}}\n"


def trigger(**fields: Any) -> Trigger:
    values: dict[str, Any] = {
        "id": "trg_01j9zzzzzzzzzzzzzzzzzzzzzz",
        "delivery_id": "d-1",
        "event": "pull_request",
        "action": "opened",
        "repository": "acme/app",
        "number": 7,
        "head_ref": "fix",
        "head_sha": "a" * 40,
        "base_ref": "main",
        "installation_id": None,
        "sender": "octocat",
        "received_at": datetime(2026, 11, 28, tzinfo=UTC),
        "payload": {},
    }
    values.update(fields)
    return Trigger(**values)


def on(text: str) -> On:
    pipeline = parse_pipeline(f"name: x\non: {text}\n{STAGES}")
    assert pipeline.on is not None
    return pipeline.on


def test_yaml_forms_and_round_trip() -> None:
    text = (
        "name: x\n"
        "on:\n"
        "  pull_request: {actions: [opened, synchronize], branches: main, repositories: [acme/*]}\n"
        "  check_suite:\n"
        "  merge_group: {}\n"
        "inputs:\n  repository: {required: true}\n" + STAGES
    )
    pipeline = parse_pipeline(text)
    assert pipeline.on == On(
        pull_request=EventFilter(
            actions=["opened", "synchronize"], branches=["main"], repositories=["acme/*"]
        ),
        check_suite=EventFilter(),
        merge_group=EventFilter(),
    )
    assert parse_pipeline(pipeline.to_yaml()) == pipeline
    assert Pipeline.from_data(pipeline.to_dict()) == pipeline
    # the shorthands
    assert on("pull_request") == On(pull_request=EventFilter())
    assert on("{check_suite: {actions: requested}}") == On(
        check_suite=EventFilter(actions=["requested"])
    )
    assert on("[pull_request, merge_group]") == On(
        pull_request=EventFilter(), merge_group=EventFilter()
    )


def test_python_api_builds_the_same_model() -> None:
    built = Pipeline(name="x", on=On(merge_group=EventFilter(branches=["main"])))
    built.add("a", command(["echo"]))
    assert built == parse_pipeline(f"name: x\non: {{merge_group: {{branches: [main]}}}}\n{STAGES}")
    assert "'on':" in built.to_yaml()  # quoted: YAML 1.1 would read a bare on as true


def test_json_schema_describes_on() -> None:
    schema = json_schema()
    shorthand = schema["properties"]["on"]["anyOf"]
    assert {"enum": ["pull_request", "check_suite", "merge_group"]} in shorthand
    validator = jsonschema.Draft202012Validator(schema)
    for on_text in (
        "pull_request",
        "[pull_request, merge_group]",
        "{check_suite: {actions: requested}}",
    ):
        data = Pipeline.from_data(yaml.safe_load(f"name: x\non: {on_text}\n{STAGES}"))
        assert list(validator.iter_errors({**data.to_dict(), "on": yaml.safe_load(on_text)})) == []
    bad = {"name": "x", "on": {"pull_request": {"actions": ["closed"]}}, "stages": {}}
    [error] = validator.iter_errors(bad)
    assert any("'closed' is not one of" in e.message for e in error.context or ())
    pull_request = schema["$defs"]["On"]["properties"]["pull_request"]
    assert pull_request["properties"]["actions"]["items"]["enum"] == [
        "opened",
        "reopened",
        "synchronize",
    ]


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("{pull_request: {actions: [closed]}}", "f.yaml:2:31", "'closed' is not a pull_request"),
        ("{push: {}}", "f.yaml:2:6", "unknown event 'push'"),
        ("{pull_request: {branch: [main]}}", "f.yaml:2:21", "did you mean 'branches'"),
        ("{merge_group: {branches: []}}", "f.yaml:2:30", "an empty list matches nothing"),
        ("{check_suite: {actions: {a: 1}}}", "f.yaml:2:29", "valid list"),
    ],
)
def test_bad_on_is_a_positioned_error(text: str, where: str, message: str) -> None:
    with pytest.raises(PipelineSpecError) as caught:
        parse_pipeline(f"name: x\non: {text}\n{STAGES}", source="f.yaml")
    assert str(caught.value).startswith(where), str(caught.value)
    assert message in str(caught.value)


def test_a_required_input_no_trigger_fills_is_an_error() -> None:
    with pytest.raises(PipelineSpecError) as caught:
        parse_pipeline(
            f"name: x\non: pull_request\ninputs:\n  prompt: {{required: true}}\n{STAGES}",
            source="f.yaml",
        )
    problem = caught.value.problems[0]
    assert (problem.line, problem.field) == (4, "inputs.prompt")
    assert "a trigger cannot fill it" in problem.message


def test_matching_events_actions_branches_and_repositories() -> None:
    pr = on(
        "{pull_request: {actions: [opened], branches: [main, 'release/*'], repositories: [Acme/*]}}"
    )
    assert match_trigger(pr, trigger()) is None
    assert match_trigger(pr, trigger(repository="ACME/app", base_ref="release/1")) is None
    assert "action 'synchronize'" in str(match_trigger(pr, trigger(action="synchronize")))
    assert "base branch 'dev'" in str(match_trigger(pr, trigger(base_ref="dev")))
    assert "'release/1/x'" in str(match_trigger(pr, trigger(base_ref="release/1/x")))
    assert "no base branch" in str(match_trigger(pr, trigger(base_ref=None)))
    assert "repository 'other/app'" in str(match_trigger(pr, trigger(repository="other/app")))
    assert "not configured for merge_group" in str(
        match_trigger(pr, trigger(event="merge_group", action="checks_requested"))
    )
    # an empty filter takes every triggering action, branch and repository
    every = on("[pull_request, check_suite]")
    assert match_trigger(every, trigger(action="reopened", base_ref=None)) is None
    assert match_trigger(every, trigger(event="check_suite", action="rerequested")) is None
    assert match_trigger(None, trigger()) is not None


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("main", "main", True),
        ("main", "mainline", False),
        ("release/*", "release/1", True),
        ("release/*", "release/1/2", False),
        ("release/**", "release/1/2", True),
        ("feature-?", "feature-a", True),
        ("feature-?", "feature-ab", False),
        ("v1.*", "v1x2", False),  # the dot is literal
        ("*", "a/b", False),
        ("**", "a/b", True),
    ],
)
def test_globs(pattern: str, value: str, matches: bool) -> None:
    assert glob_matches(pattern, value) is matches


def test_inputs_come_from_the_trigger_by_name() -> None:
    pipeline = parse_pipeline(
        "name: x\non: [pull_request, merge_group]\ninputs:\n"
        "  repository: {required: true}\n  number: {required: true}\n  headSha: {}\n"
        "  deliveryId: {}\n  check: {default: tests}\n" + STAGES
    )
    inputs, missing = trigger_inputs(pipeline.inputs, trigger())
    assert missing is None
    assert inputs == {
        "repository": "acme/app",
        "number": 7,
        "headSha": "a" * 40,
        "deliveryId": "d-1",
    }
    _, missing = trigger_inputs(pipeline.inputs, trigger(event="merge_group", number=None))
    assert missing == "input 'number' is required and this merge_group trigger has none"


def test_the_readme_example_is_valid() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### Pipelines started by forge webhooks", 1)[1]
    pipeline = parse_pipeline(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert pipeline.on is not None and [event for event, _ in pipeline.on.events()] == [
        "pull_request",
        "merge_group",
    ]
    inputs, missing = trigger_inputs(
        pipeline.inputs, trigger(event="merge_group", action="checks_requested", number=None)
    )
    assert missing is None and inputs["headSha"] == "a" * 40 and "number" not in inputs
