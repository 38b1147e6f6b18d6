"""The public surface of ``policies``: __all__, layering, the JSON Schema."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import jsonschema
import pytest
import yaml

import policies
from policies.schema import policy_schema


def test_all_is_sorted_and_complete() -> None:
    assert policies.__all__ == sorted(policies.__all__)
    for name in policies.__all__:
        assert hasattr(policies, name), name
    assert issubclass(policies.PolicyError, policies.PolicyError.__mro__[1])
    from writgate.errors import InputError

    assert issubclass(policies.PolicyError, InputError)


def test_policies_imports_no_higher_layer() -> None:
    code = (
        "import sys, policies, policies.cases, policies.simulation, policies.schema, "
        "policies.explain\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('writer', 'judge', 'forge', 'pipelines', 'passport', 'fastapi'))\n"
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def _validator() -> jsonschema.Draft202012Validator:
    schema = policy_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", ["default", "strict-agent", "ci-autofix"])
def test_library_policies_match_the_schema(name: str) -> None:
    document = yaml.safe_load(policies.library_path(name).read_text())
    errors = list(_validator().iter_errors(document))
    assert errors == []


def test_merged_documents_match_the_schema() -> None:
    policy = policies.load_policy("library:strict-agent")
    assert list(_validator().iter_errors(json.loads(json.dumps(policy.to_json())))) == []


V1 = {"policy": "writgate/v1", "name": "x"}


def one_rule(**rule: Any) -> dict[str, Any]:
    return {**V1, "rules": [{"name": "a", **rule}]}


INVALID: list[tuple[str, dict[str, Any]]] = [
    ("wrong-version", {**V1, "policy": "writgate/v2", "rules": []}),
    ("unknown-key", {**V1, "rules": [], "rulez": []}),
    ("no-rules-no-extends", V1),
    ("two-actions", one_rule(allow=True, warn="w")),
    ("no-action", one_rule()),
    ("allow-false", one_rule(allow=False)),
    ("unknown-attribute", one_rule(allow=True, **{"if": {"pathz": ["x"]}})),
    ("bad-comparison", one_rule(allow=True, **{"if": {"diff.lines": "~5"}})),
    ("bad-author-kind", one_rule(allow=True, **{"if": {"author.kind": "robot"}})),
    ("empty-predicate", one_rule(allow=True, **{"if": {}})),
    ("approvals-zero", one_rule(require={"approvals": 0})),
    ("bad-check-state", one_rule(require={"checks.ci": "green"})),
    ("bad-rule-name", {**V1, "rules": [{"name": "a b", "allow": True}]}),
    ("bad-default", {**V1, "defaults": {"whenNoRuleApplies": "maybe"}, "rules": []}),
]


@pytest.mark.parametrize("document", [pytest.param(d, id=i) for i, d in INVALID])
def test_schema_and_loader_agree_on_invalid_documents(document: dict[str, Any]) -> None:
    assert list(_validator().iter_errors(document)), "the schema accepts it"
    with pytest.raises(policies.PolicyError):
        policies.parse_policy(yaml.safe_dump(document))


def test_schema_lists_every_attribute() -> None:
    from policies.attributes import ATTRIBUTES

    predicate = policy_schema()["$defs"]["predicate"]
    assert set(ATTRIBUTES) | {"all", "any", "not"} == set(predicate["properties"])
    assert set(predicate["patternProperties"]) == {r"^metadata\..+$", r"^checks\..+$"}
