"""Checking the inputs given to a pipeline run against the inputs it declares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from writgate.errors import InputError

from .spec import Pipeline

__all__ = ["parse_input_assignments", "resolve_inputs"]


def resolve_inputs(pipeline: Pipeline, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run's inputs: ``given`` plus defaults; unknown or missing required inputs are errors."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(pipeline.inputs))
    if unknown:
        declared = ", ".join(sorted(pipeline.inputs)) or "none"
        raise InputError(
            f"unknown input {unknown[0]!r} (pipeline {pipeline.name!r} declares: {declared})",
            field=f"inputs.{unknown[0]}",
        )
    values: dict[str, Any] = {}
    for name, spec in pipeline.inputs.items():
        if name in given:
            values[name] = given[name]
        elif spec.required:
            raise InputError(
                f"input {name!r} is required (pass --input {name}=VALUE)", field=f"inputs.{name}"
            )
        else:
            values[name] = spec.default
    return values


def parse_input_assignments(items: Sequence[str]) -> dict[str, str]:
    """``["repository=acme/web", "check=tests"]`` -> a mapping; a bad item is an error."""
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"bad --input {item!r}: use NAME=VALUE", field="--input")
        if name in values:
            raise InputError(f"input {name!r} given twice", field="--input")
        values[name] = value
    return values
