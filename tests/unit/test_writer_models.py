from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from writer.errors import IllegalTransition
from writer.intent import classify_intent
from writer.lifecycle import TRANSITIONS, Lifecycle, check_transition, lifecycle_fields
from writer.models import CreateRunRequest

DESIGN_PAYLOAD: dict[str, Any] = {
    "repository": "acme/web",
    "title": "Fix Stripe webhook verification",
    "tags": ["ci", "payments", "owner:platform"],
    "metadata": {"ticket": "PAY-742", "source": "github-actions"},
    "prompt": "Add Stripe webhook signature verification and regression tests.",
    "modelId": "anthropic/claude-sonnet-4.6",
    "agent": {"driver": "claude-code"},
    "billing": {"mode": "managed"},
    "publish": {"mode": "draft_pr"},
    "validationMode": "tests",
    "session": {"keepWarmSeconds": 600},
    "safety": {
        "network": {"mode": "restricted", "allowlist": ["api.stripe.com"]},
        "resources": {"maxTurns": 3, "maxCredits": 12, "maxWallSeconds": 1800},
    },
}


def test_design_payload_round_trips() -> None:
    model = CreateRunRequest.model_validate(DESIGN_PAYLOAD)
    dumped = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    for key, value in DESIGN_PAYLOAD.items():
        if key == "safety":
            assert dumped["safety"]["network"] == value["network"]
            assert dumped["safety"]["resources"]["maxTurns"] == 3
            assert dumped["safety"]["resources"]["maxCredits"] == 12
        else:
            assert dumped[key] == value, key


def test_tags_are_normalized_and_deduplicated() -> None:
    model = CreateRunRequest.model_validate(
        {**DESIGN_PAYLOAD, "tags": ["  CI ", "ci", "Owner:Platform", "needs  review"]}
    )
    assert model.tags == ["ci", "owner:platform", "needs-review"]


def test_title_defaults_to_first_prompt_line() -> None:
    body = {k: v for k, v in DESIGN_PAYLOAD.items() if k != "title"}
    body["prompt"] = "First line here\nsecond line"
    assert CreateRunRequest.model_validate(body).title == "First line here"


def _with(path: str, value: Any) -> dict[str, Any]:
    import copy

    body = copy.deepcopy(DESIGN_PAYLOAD)
    target = body
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[part]
    if value is _DELETE:
        del target[parts[-1]]
    else:
        target[parts[-1]] = value
    return body


_DELETE = object()

BAD_CASES: list[tuple[str, Any, str]] = [
    ("tags", ["ok", "bad tag!"], "tags.1"),
    ("tags", ["-leading-dash"], "tags.0"),
    ("tags", ["x" * 65], "tags.0"),
    ("tags", [f"t{i}" for i in range(21)], "tags"),
    ("tags", [""], "tags.0"),
    ("tags", [7], "tags.0"),
    ("tags", "ci", "tags"),
    ("metadata", {"nested": {"a": 1}}, "metadata.nested"),
    ("metadata", {"list": [1, 2]}, "metadata.list"),
    ("metadata", {"bad key": "v"}, "metadata"),
    ("metadata", {"k": "x" * 1025}, "metadata.k"),
    ("metadata", {f"k{i}": i for i in range(33)}, "metadata"),
    ("metadata", {f"k{i}": "x" * 1000 for i in range(17)}, "metadata"),
    ("metadata", {"k" * 65: 1}, "metadata"),
    ("title", "x" * 201, "title"),
    ("prompt", "", "prompt"),
    ("prompt", "   ", "prompt"),
    ("prompt", "x" * 100_001, "prompt"),
    ("prompt", _DELETE, "prompt"),
    ("repository", "", "repository"),
    ("repository", _DELETE, "repository"),
    ("publish.mode", "merge", "publish.mode"),
    ("validationMode", "everything", "validationMode"),
    ("billing.mode", "free", "billing.mode"),
    ("agent.driver", "cursor", "agent.driver"),
    ("agent", {"driver": "command"}, "agent"),
    ("session.keepWarmSeconds", -1, "session.keepWarmSeconds"),
    ("safety.network.mode", "vpn", "safety.network.mode"),
    ("safety.network.allowlist", ["not a host"], "safety.network.allowlist.0"),
    ("safety.resources.maxTurns", 0, "safety.resources.maxTurns"),
    ("safety.resources.maxCredits", -1, "safety.resources.maxCredits"),
    ("safety.resources.maxWallSeconds", 0, "safety.resources.maxWallSeconds"),
    ("unknownField", 1, "unknownField"),
]


@pytest.mark.parametrize(("path", "value", "loc"), BAD_CASES)
def test_each_bound_is_enforced(path: str, value: Any, loc: str) -> None:
    with pytest.raises(ValidationError) as info:
        CreateRunRequest.model_validate(_with(path, value))
    locations = [".".join(str(p) for p in e["loc"]) for e in info.value.errors()]
    assert any(location.startswith(loc) for location in locations), locations


def test_model_required_without_agent() -> None:
    body = _with("modelId", _DELETE)
    del body["agent"]
    with pytest.raises(ValidationError):
        CreateRunRequest.model_validate(body)


def test_lifecycle_fields_follow_the_table() -> None:
    assert lifecycle_fields(Lifecycle.RUNNING) == {
        "lifecycle": "running",
        "terminal": False,
        "awaitingFollowUp": False,
        "canFollowUp": False,
        "nextActions": ["cancel", "stream"],
    }
    warm = lifecycle_fields(Lifecycle.AWAITING_FOLLOW_UP)
    assert warm["awaitingFollowUp"] and warm["canFollowUp"]
    assert warm["nextActions"] == ["follow_up", "complete", "cancel"]
    assert lifecycle_fields(Lifecycle.FAILED)["nextActions"] == ["retry", "fallback"]
    assert lifecycle_fields(Lifecycle.CANCELLED)["nextActions"] == ["retry"]
    assert lifecycle_fields(Lifecycle.EXPIRED)["terminal"] is True


@pytest.mark.parametrize("state", list(Lifecycle))
def test_illegal_transitions_raise(state: Lifecycle) -> None:
    for target in Lifecycle:
        if target in TRANSITIONS[state]:
            check_transition(state, target)
        else:
            with pytest.raises(IllegalTransition):
                check_transition(state, target)


def test_intent_is_deterministic_and_explained() -> None:
    first = classify_intent(DESIGN_PAYLOAD["title"], DESIGN_PAYLOAD["prompt"])
    assert first.model_dump() == {
        "label": "security",
        "ruleset": "intent/v1",
        "matched": ["signature", "verification"],
    }
    assert classify_intent(DESIGN_PAYLOAD["title"], DESIGN_PAYLOAD["prompt"]) == first
    assert classify_intent("Bump requests to 2.32", "upgrade the dependency").label == "dependency"
    assert classify_intent("Update docs", "fix typo in README").label == "docs"
    assert classify_intent("x", "y", ["tests/test_a.py"]).label == "test"
