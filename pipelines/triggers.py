"""Which forge triggers start a pipeline: the ``on:`` section, and what a trigger fills in.

::

    on:
      pull_request: {actions: [opened, synchronize], branches: [main, "release/**"]}
      check_suite: {}                     # every triggering action, every branch
      merge_group: {repositories: [acme/*]}

Events are the ones the webhook receiver stores (:data:`forge.webhooks.TRIGGERING`); ``actions``
defaults to all of that event's triggering actions. ``branches`` are globs on the base branch
(``*`` stops at ``/``, ``**`` does not, ``?`` is one character) and ``repositories`` globs on
``owner/name`` (case-insensitive, as on GitHub). ``on: [pull_request, merge_group]`` and
``on: pull_request`` are shorthands for ``{event: {}}``.

A started run's inputs come from the trigger by name: each declared input called like one of
:data:`TRIGGER_INPUTS` receives that value; other inputs take their defaults. A required input
the trigger has no value for means the pipeline is not started (the trigger records why).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from forge.webhooks import TRIGGERING, Trigger

__all__ = [
    "TRIGGER_INPUTS",
    "EventFilter",
    "On",
    "glob_matches",
    "match_trigger",
    "on_problems",
    "trigger_inputs",
    "trigger_values",
]

# input name -> the trigger's value for it
TRIGGER_INPUTS: Mapping[str, str] = {
    "event": "the webhook event: pull_request, check_suite or merge_group",
    "action": "its action (opened, synchronize, requested, checks_requested, …)",
    "repository": "owner/name",
    "number": "the pull request number (check_suite: its first one; merge_group: none)",
    "headRef": "the head branch",
    "headSha": "the head commit",
    "baseRef": "the base branch (without refs/heads/)",
    "sender": "the login of who caused the event",
    "installationId": "the GitHub App installation id",
    "deliveryId": "the X-GitHub-Delivery id",
    "triggerId": "the stored trigger's id (trg_…)",
}


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Names = Annotated[
    list[str] | None,
    BeforeValidator(_one_or_many),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}},
                {"type": "null"},
            ]
        }
    ),
]


class EventFilter(BaseModel):
    """Which deliveries of one event start the pipeline; an empty filter takes them all."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    actions: Names = Field(
        default=None,
        description="the actions that start it (default: every triggering action of the event)",
    )
    branches: Names = Field(
        default=None, description="globs on the base branch: main, release/*, feature/**"
    )
    repositories: Names = Field(
        default=None, description="globs on owner/name (case-insensitive): acme/app, acme/*"
    )


def _filter(event: str) -> Any:
    actions = sorted(TRIGGERING[event])
    # editors complete the actions of this event
    extra: dict[str, Any] = {"properties": {"actions": {"items": {"enum": actions}}}}
    return Field(
        default=None,
        description=f"start on {event} deliveries (actions: {', '.join(actions)})",
        json_schema_extra=extra,
    )


def _empty_filter(value: Any) -> Any:
    return {} if value is None else value


EventField = Annotated[EventFilter | None, BeforeValidator(_empty_filter)]


def _on_shorthand(value: Any) -> Any:
    if isinstance(value, str):
        return {value: {}}
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return {event: {} for event in value}
    return value


class On(BaseModel):
    """The forge events that start the pipeline, each with an optional filter."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    pull_request: EventField = _filter("pull_request")
    check_suite: EventField = _filter("check_suite")
    merge_group: EventField = _filter("merge_group")

    def events(self) -> Iterator[tuple[str, EventFilter]]:
        """The configured events and their filters."""
        for event in TRIGGERING:
            configured = getattr(self, event, None)
            if isinstance(configured, EventFilter):
                yield event, configured


OnField = Annotated[On | None, BeforeValidator(_on_shorthand)]


@lru_cache(maxsize=512)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**", index):
            parts.append(".*")
            index += 2
            continue
        if char == "*":
            parts.append("[^/]*")
        elif char == "?":
            parts.append("[^/]")
        else:
            parts.append(re.escape(char))
        index += 1
    return re.compile("".join(parts), re.DOTALL)


def glob_matches(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """Whether ``value`` matches ``pattern`` (``*`` within a ``/`` segment, ``**`` across)."""
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    return _glob_regex(pattern).fullmatch(value) is not None


def match_trigger(on: On | None, trigger: Trigger) -> str | None:
    """``None`` when ``trigger`` starts a pipeline with ``on``, otherwise why it does not."""
    configured = dict(on.events()) if on is not None else {}
    flt = configured.get(trigger.event)
    if flt is None:
        return f"not configured for {trigger.event} (on: {', '.join(configured) or 'none'})"
    actions = flt.actions if flt.actions is not None else sorted(TRIGGERING[trigger.event])
    if trigger.action not in actions:
        return f"action {trigger.action!r} is not in on.{trigger.event}.actions {actions}"
    if flt.branches is not None:
        if trigger.base_ref is None:
            return f"the trigger has no base branch to match on.{trigger.event}.branches"
        if not any(glob_matches(p, trigger.base_ref) for p in flt.branches):
            return (
                f"base branch {trigger.base_ref!r} matches none of "
                f"on.{trigger.event}.branches {flt.branches}"
            )
    if flt.repositories is not None:
        repository = trigger.repository or ""
        if not any(glob_matches(p, repository, ignore_case=True) for p in flt.repositories):
            return (
                f"repository {trigger.repository!r} matches none of "
                f"on.{trigger.event}.repositories {flt.repositories}"
            )
    return None


def trigger_values(trigger: Trigger) -> dict[str, Any]:
    """The trigger's value for each name of :data:`TRIGGER_INPUTS` (``None`` when it has none)."""
    return {
        "event": trigger.event,
        "action": trigger.action,
        "repository": trigger.repository,
        "number": trigger.number,
        "headRef": trigger.head_ref,
        "headSha": trigger.head_sha,
        "baseRef": trigger.base_ref,
        "sender": trigger.sender,
        "installationId": trigger.installation_id,
        "deliveryId": trigger.delivery_id,
        "triggerId": trigger.id,
    }


def trigger_inputs(
    declared: Mapping[str, Any], trigger: Trigger
) -> tuple[dict[str, Any], str | None]:
    """The inputs ``trigger`` gives a pipeline declaring ``declared`` (name -> ``Input``).

    The second value says why the pipeline cannot start: a required input without a value.
    """
    values = trigger_values(trigger)
    given: dict[str, Any] = {}
    for name, spec in declared.items():
        value = values.get(name)
        if value is not None:
            given[name] = value
        elif getattr(spec, "required", False):
            if name in values:
                reason = f"input {name!r} is required and this {trigger.event} trigger has none"
                return given, reason
            return given, f"input {name!r} is required and triggers do not provide it"
    return given, None


def on_problems(on: On, inputs: Mapping[str, Any]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Problems of an ``on:`` section the field types cannot see, each with its path."""
    for event, flt in on.events():
        base: tuple[str | int, ...] = ("on", event)
        known = sorted(TRIGGERING[event])
        for key in ("actions", "branches", "repositories"):
            if getattr(flt, key) == []:
                yield (*base, key), f"an empty list matches nothing: leave out {key!r} to take all"
        for index, action in enumerate(flt.actions or ()):
            if action not in TRIGGERING[event]:
                yield (
                    (*base, "actions", index),
                    f"{action!r} is not a {event} action that starts pipelines "
                    f"(one of: {', '.join(known)})",
                )
        for key in ("branches", "repositories"):
            for index, pattern in enumerate(getattr(flt, key) or ()):
                if not pattern.strip():
                    yield (*base, key, index), "an empty pattern"
    for name, spec in inputs.items():
        if getattr(spec, "required", False) and name not in TRIGGER_INPUTS:
            yield (
                ("inputs", name),
                f"input {name!r} is required, but a trigger cannot fill it (triggers fill "
                f"inputs named {', '.join(TRIGGER_INPUTS)}): give it a default",
            )
