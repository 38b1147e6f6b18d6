"""Templates in pipeline specs: Jinja2 in a sandbox, with strict undefined.

A template sees ``inputs``, ``stages.<id>.outputs``, ``stages.<id>.status`` (and ``.kind``) and
``env`` (only the variables named in ``WRITGATE_PIPELINE_ENV_ALLOW``, none by default). ``if:``
conditions also see ``success()``, ``failure()``, ``always()`` and ``cancelled()``.

A string that is exactly one ``{{ expression }}`` renders to the expression's own value (a list
stays a list, a number a number); any other string renders to a string. Nothing in a template can
reach Python internals: the environment is Jinja2's ``SandboxedEnvironment`` with every default
global removed, and the arithmetic that could exhaust memory (``**``, ``*`` on sequences) bounded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.runtime import Undefined
from jinja2.sandbox import SandboxedEnvironment

from .errors import TemplateError

__all__ = [
    "CONDITION_FUNCTIONS",
    "TemplateRefs",
    "allowed_env",
    "evaluate_condition",
    "is_template",
    "references",
    "render_value",
]

CONDITION_FUNCTIONS = ("always", "cancelled", "failure", "success")
TOP_LEVEL_NAMES = ("env", "inputs", "stages")
ENV_ALLOW_VARIABLE = "WRITGATE_PIPELINE_ENV_ALLOW"
_MAX_SEQUENCE = 100_000
_MAX_EXPONENT = 1_000
_MAX_RENDERED = 1_000_000
_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)


class _Sandbox(SandboxedEnvironment):
    """The sandbox with bounded arithmetic."""

    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > _MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is too large")
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if (
                    isinstance(sequence, (str, list, tuple))
                    and isinstance(count, int)
                    and len(sequence) * count > _MAX_SEQUENCE
                ):
                    raise SecurityError("the repeated sequence would be too large")
        return super().call_binop(context, operator, left, right)


def _environment() -> SandboxedEnvironment:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.globals.clear()  # no range/cycler/joiner/namespace/lipsum/dict
    return env


_ENV = _environment()


def is_template(text: str) -> bool:
    """Whether ``text`` contains Jinja2 markup."""
    return "{{" in text or "{%" in text or "{#" in text


@dataclass
class TemplateRefs:
    """What a template refers to: names, input names and stage ids."""

    names: set[str] = field(default_factory=set)
    inputs: set[str] = field(default_factory=set)
    stages: set[str] = field(default_factory=set)
    env: set[str] = field(default_factory=set)
    private: set[str] = field(default_factory=set)


def _parse(source: str) -> nodes.Template:
    try:
        return _ENV.parse(source)
    except TemplateSyntaxError as exc:
        where = f" (template line {exc.lineno})" if exc.lineno and exc.lineno > 1 else ""
        raise TemplateError(f"template syntax error: {exc.message}{where}") from exc


def _static_key(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        value = node.arg.value
        return value if isinstance(value, str) else None
    return None


def references(source: str, *, condition: bool = False) -> TemplateRefs:
    """Parse ``source`` (a template, or a bare expression when ``condition``) and list its names.

    Raises :class:`TemplateError` on a syntax error.
    """
    if condition and not is_template(source):
        source = "{{ " + source + " }}"
    tree = _parse(source)
    refs = TemplateRefs()
    local = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for name in tree.find_all(nodes.Name):
        if name.ctx == "load" and name.name not in local:
            refs.names.add(name.name)
    for access in (*tree.find_all(nodes.Getattr), *tree.find_all(nodes.Getitem)):
        assert isinstance(access, (nodes.Getattr, nodes.Getitem))
        key = _static_key(access)
        if key is not None and key.startswith("_"):
            refs.private.add(key)
        base = access.node
        if not isinstance(base, nodes.Name) or base.ctx != "load" or base.name in local:
            continue
        if key is None:
            continue
        if base.name == "inputs":
            refs.inputs.add(key)
        elif base.name == "stages":
            refs.stages.add(key)
        elif base.name == "env":
            refs.env.add(key)
    return refs


def allowed_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables templates may read (``WRITGATE_PIPELINE_ENV_ALLOW``, a comma list)."""
    source = os.environ if environ is None else environ
    names = [n.strip() for n in source.get(ENV_ALLOW_VARIABLE, "").split(",") if n.strip()]
    return {name: source[name] for name in names if name in source}


def _json_ready(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return str(value)


def _render_string(source: str, context: Mapping[str, Any], where: str) -> Any:
    try:
        single = _SINGLE_EXPRESSION.match(source)
        if single and "{{" not in single.group("expr") and "{%" not in single.group("expr"):
            value = _ENV.compile_expression(single.group("expr"), undefined_to_none=False)(
                **context
            )
            if isinstance(value, Undefined):
                str(value)  # raises the UndefinedError naming what is missing
            return _json_ready(value)
        text = _ENV.from_string(source).render(**context)
    except SecurityError as exc:
        raise TemplateError(f"{where}: template refused: {exc}") from exc
    except UndefinedError as exc:
        raise TemplateError(f"{where}: {exc.message}") from exc
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{where}: template syntax error: {exc.message}") from exc
    except JinjaTemplateError as exc:
        raise TemplateError(f"{where}: {exc.message or type(exc).__name__}") from exc
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise TemplateError(f"{where}: {type(exc).__name__}: {exc}") from exc
    if len(text) > _MAX_RENDERED:
        raise TemplateError(f"{where}: the rendered text is larger than {_MAX_RENDERED} characters")
    return text


def render_value(value: Any, context: Mapping[str, Any], *, where: str = "template") -> Any:
    """``value`` with every template string in it rendered (mappings and lists recursively)."""
    if isinstance(value, str):
        return _render_string(value, context, where) if is_template(value) else value
    if isinstance(value, Mapping):
        return {k: render_value(v, context, where=f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context, where=f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "off", "none", "null")
    return bool(value)


def evaluate_condition(
    source: str,
    context: Mapping[str, Any],
    functions: Mapping[str, Callable[[], bool]],
    *,
    where: str = "if",
) -> bool:
    """Evaluate an ``if:`` condition (``"{{ failure() }}"`` or a bare ``failure()``)."""
    text = source if is_template(source) else "{{ " + source + " }}"
    return _truthy(_render_string(text, {**context, **functions}, where))
