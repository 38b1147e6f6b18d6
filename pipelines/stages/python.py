"""The ``python`` stage: an async callable named ``"package.module:name"``.

The callable gets the ``args`` mapping as keyword arguments and, when it has a parameter named
``ctx`` or ``context``, the :class:`StageContext`. The mapping it returns becomes the outputs.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from ..context import StageContext
from ..errors import StageFailure
from . import register

__all__ = ["function_path", "is_remembered", "remember_function", "resolve_function", "run_python"]

_LOCAL: dict[str, Callable[..., Any]] = {}


def function_path(function: Callable[..., Any]) -> str:
    """``"module:qualname"`` of ``function``."""
    return f"{function.__module__}:{function.__qualname__}"


def remember_function(path: str, function: Callable[..., Any]) -> None:
    """Use ``function`` for ``path`` in this process (functions defined by ``@pipeline.stage``)."""
    _LOCAL[path] = function


def is_remembered(path: str) -> bool:
    """Whether ``path`` names a function remembered in this process."""
    return path in _LOCAL


def resolve_function(path: str) -> Callable[..., Any]:
    """The callable named by ``path``; a :class:`StageFailure` (not retryable) when missing."""
    if path in _LOCAL:
        return _LOCAL[path]
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise StageFailure(f'bad function {path!r}: use "package.module:name"', retryable=False)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise StageFailure(f"cannot import {module_name!r}: {exc}", retryable=False) from exc
    for part in attribute.split("."):
        if part.startswith("_") and part != attribute.split(".")[-1]:
            raise StageFailure(
                f"cannot use private attribute {part!r} in {path!r}", retryable=False
            )
        try:
            target = getattr(target, part)
        except AttributeError:
            raise StageFailure(
                f"module {module_name!r} has no attribute {attribute!r}", retryable=False
            ) from None
    if not callable(target):
        raise StageFailure(f"{path!r} is not callable", retryable=False)
    return target  # type: ignore[no-any-return]


_CONTEXT_PARAMETER: dict[Callable[..., Any], str | None] = {}


def _context_parameter(function: Callable[..., Any]) -> str | None:
    """``"ctx"`` or ``"context"`` when ``function`` takes the context (looked up once)."""
    try:
        return _CONTEXT_PARAMETER[function]
    except (KeyError, TypeError):
        pass
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        found = None
    else:
        found = "ctx" if "ctx" in parameters else "context" if "context" in parameters else None
    try:
        if len(_CONTEXT_PARAMETER) < 4096:
            _CONTEXT_PARAMETER[function] = found
    except TypeError:  # an unhashable callable
        pass
    return found


async def run_python(ctx: StageContext) -> Mapping[str, Any]:
    """Call the stage's function and return its mapping."""
    path = str(ctx.params.get("function", ""))
    function = resolve_function(path)
    args = dict(ctx.params.get("args") or {})
    key = _context_parameter(function)
    if key is not None:
        args[key] = ctx
    try:
        result = function(**args)
    except TypeError as exc:
        raise StageFailure(f"cannot call {path}: {exc}", retryable=False) from exc
    if not inspect.isawaitable(result):
        raise StageFailure(
            f"{path} is not an async function (it returned {type(result).__name__})",
            retryable=False,
        )
    value = await result
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise StageFailure(
            f"{path} returned {type(value).__name__}, not a mapping of outputs", retryable=False
        )
    return {str(k): v for k, v in value.items()}


register("python", run_python)
