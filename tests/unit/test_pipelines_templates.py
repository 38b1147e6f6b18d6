from __future__ import annotations

from typing import Any

import pytest

from pipelines import TemplateError
from pipelines.templates import allowed_env, evaluate_condition, references, render_value

CONTEXT: dict[str, Any] = {
    "inputs": {"repository": "acme/web", "count": 3},
    "stages": {"gate": {"status": "succeeded", "kind": "gate", "outputs": {"decision": "block"}}},
    "env": {},
}
STATUS = {
    "success": lambda: False,
    "failure": lambda: True,
    "always": lambda: True,
    "cancelled": lambda: False,
}


def test_render_strings_lists_and_native_values() -> None:
    value = {
        "argv": ["echo", "{{ stages.gate.outputs.decision }}", "n={{ inputs.count + 1 }}"],
        "count": "{{ inputs.count }}",
        "plain": "no template",
        "nested": {"list": "{{ [inputs.repository, 'x'] }}"},
    }
    assert render_value(value, CONTEXT) == {
        "argv": ["echo", "block", "n=4"],
        "count": 3,
        "plain": "no template",
        "nested": {"list": ["acme/web", "x"]},
    }


def test_strict_undefined_names_what_is_missing() -> None:
    with pytest.raises(TemplateError, match="has no attribute 'missing'") as info:
        render_value({"a": "{{ stages.gate.outputs.missing }}"}, CONTEXT, where="stages.x.with")
    assert "stages.x.with.a" in str(info.value)
    with pytest.raises(TemplateError, match="'nope' is undefined"):
        render_value("x {{ nope }} y", CONTEXT)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("{{ always() }}", True),
        ("{{ success() }}", False),
        ("failure()", True),
        ("cancelled()", False),
        ("{{ failure() and stages.gate.outputs.decision == 'block' }}", True),
        ("stages.gate.outputs.decision == 'allow'", False),
        ("{{ 'false' }}", False),
        ("{% if always() %}yes{% endif %}", True),
    ],
)
def test_conditions(condition: str, expected: bool) -> None:
    assert evaluate_condition(condition, CONTEXT, STATUS) is expected


@pytest.mark.parametrize(
    "attack",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'] }}",
        "{{ range(10**9) | list }}",
        "{{ self.__init__.__globals__ }}",
        "{{ inputs.__class__ }}",
        "{{ (inputs|attr('__class__')) }}",
        "{{ 'a' * 100000000 }}",
        "{{ 2 ** 99999999 }}",
        "{{ ''.format.__globals__ }}",
        "{{ '{0.__class__}'.format(inputs) }}",
        "{{ config }}",
        "{{ request }}",
    ],
)
def test_sandbox_escapes_are_refused(attack: str) -> None:
    with pytest.raises(TemplateError) as info:
        render_value(attack, CONTEXT)
    # refused, not rendered: the message never contains a Python object's repr
    assert "<" not in str(info.value)


def test_references_lists_names_inputs_and_stages() -> None:
    refs = references(
        "{% for x in inputs.items %}{{ x }}{% endfor %}{{ stages.gate.outputs.d }}"
        "{{ stages['re-view'].status }}{{ env.HOME }}"
    )
    assert refs.names == {"inputs", "stages", "env"}
    assert refs.inputs == {"items"}
    assert refs.stages == {"gate", "re-view"}
    assert refs.env == {"HOME"}
    assert references("success() and stages.a.status", condition=True).names == {
        "success",
        "stages",
    }
    with pytest.raises(TemplateError, match="syntax"):
        references("{{ a ")


def test_env_is_allowlisted() -> None:
    environ = {"WRITGATE_PIPELINE_ENV_ALLOW": "CI, BRANCH", "CI": "1", "TOKEN": "secret"}
    assert allowed_env(environ) == {"CI": "1"}
    assert allowed_env({"TOKEN": "secret"}) == {}
    with pytest.raises(TemplateError, match="TOKEN"):
        render_value("{{ env.TOKEN }}", {**CONTEXT, "env": allowed_env(environ)})
