"""The run lifecycle (DESIGN.md §4.2): states, legal transitions and the derived fields.

``lifecycle_fields`` is the one place that turns a state into ``terminal``, ``awaitingFollowUp``,
``canFollowUp`` and ``nextActions``; every response uses it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from .errors import IllegalTransition

__all__ = [
    "TERMINAL",
    "TRANSITIONS",
    "Lifecycle",
    "NextAction",
    "check_transition",
    "lifecycle_fields",
    "next_actions_for",
]


class Lifecycle(StrEnum):
    """Where a run is in its life."""

    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    AWAITING_FOLLOW_UP = "awaiting_follow_up"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class NextAction(StrEnum):
    """What a client may do next with a run."""

    CANCEL = "cancel"
    STREAM = "stream"
    FOLLOW_UP = "follow_up"
    COMPLETE = "complete"
    FALLBACK = "fallback"
    RETRY = "retry"


L = Lifecycle
TERMINAL = frozenset({L.SUCCEEDED, L.FAILED, L.CANCELLED, L.EXPIRED})

TRANSITIONS: dict[Lifecycle, frozenset[Lifecycle]] = {
    L.QUEUED: frozenset({L.STARTING, L.CANCELLED, L.FAILED}),
    L.STARTING: frozenset({L.RUNNING, L.FAILED, L.CANCELLED}),
    L.RUNNING: frozenset({L.AWAITING_FOLLOW_UP, L.SUCCEEDED, L.FAILED, L.CANCELLED}),
    L.AWAITING_FOLLOW_UP: frozenset({L.RUNNING, L.SUCCEEDED, L.EXPIRED, L.CANCELLED, L.FAILED}),
    L.SUCCEEDED: frozenset(),
    L.FAILED: frozenset(),
    L.CANCELLED: frozenset(),
    L.EXPIRED: frozenset(),
}

_NEXT: dict[Lifecycle, tuple[NextAction, ...]] = {
    L.QUEUED: (NextAction.CANCEL,),
    L.STARTING: (NextAction.CANCEL,),
    L.RUNNING: (NextAction.CANCEL, NextAction.STREAM),
    L.AWAITING_FOLLOW_UP: (NextAction.FOLLOW_UP, NextAction.COMPLETE, NextAction.CANCEL),
    L.SUCCEEDED: (NextAction.FALLBACK,),
    L.EXPIRED: (NextAction.FALLBACK,),
    L.FAILED: (NextAction.RETRY, NextAction.FALLBACK),
    L.CANCELLED: (NextAction.RETRY,),
}


def check_transition(current: Lifecycle, target: Lifecycle) -> None:
    """Raise :class:`IllegalTransition` unless ``current -> target`` is in the table."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(
            f"a run cannot go from {current.value} to {target.value}",
            current=current.value,
            target=target.value,
        )


def next_actions_for(state: Lifecycle) -> list[str]:
    """The ``nextActions`` of a run in ``state``."""
    return [action.value for action in _NEXT[state]]


def lifecycle_fields(state: Lifecycle) -> dict[str, Any]:
    """The five lifecycle fields of DESIGN.md §4.2 for ``state``."""
    return {
        "lifecycle": state.value,
        "terminal": state in TERMINAL,
        "awaitingFollowUp": state is L.AWAITING_FOLLOW_UP,
        "canFollowUp": state is L.AWAITING_FOLLOW_UP,
        "nextActions": next_actions_for(state),
    }
