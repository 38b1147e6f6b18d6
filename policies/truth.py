"""Four-valued truth for predicates: true, false, pending (may still become true), error.

``pending`` is what a condition on approvals or checks gives while they are still outstanding;
``error`` is what any condition gives when the input lacks the fact it reads. The combinators keep
the strongest evidence: in ``all`` one false child decides, in ``any`` one true child decides, and
an error outranks a pending so that a rule that cannot be decided never looks like a wait.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Outcome", "Truth", "all_of", "any_of", "not_of"]


class Truth(enum.Enum):
    """The value of a predicate."""

    TRUE = "true"
    FALSE = "false"
    PENDING = "pending"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Outcome:
    """A truth value and the reasons that decided it."""

    truth: Truth
    reasons: tuple[str, ...] = ()

    @classmethod
    def of(cls, holds: bool, reason: str) -> Outcome:
        """True or false, with one reason."""
        return cls(Truth.TRUE if holds else Truth.FALSE, (reason,))


_ALL_ORDER = (Truth.FALSE, Truth.ERROR, Truth.PENDING, Truth.TRUE)
_ANY_ORDER = (Truth.TRUE, Truth.ERROR, Truth.PENDING, Truth.FALSE)


def _combine(outcomes: Sequence[Outcome], order: tuple[Truth, ...]) -> Outcome:
    for truth in order:
        deciding = [o for o in outcomes if o.truth is truth]
        if deciding:
            return Outcome(truth, tuple(r for o in deciding for r in o.reasons))
    return Outcome(order[-1])


def all_of(outcomes: Sequence[Outcome]) -> Outcome:
    """Conjunction: false beats error beats pending beats true."""
    return _combine(outcomes, _ALL_ORDER)


def any_of(outcomes: Sequence[Outcome]) -> Outcome:
    """Disjunction: true beats error beats pending beats false."""
    return _combine(outcomes, _ANY_ORDER)


def not_of(outcome: Outcome) -> Outcome:
    """Negation: swaps true and false; pending and error stay."""
    flipped = {Truth.TRUE: Truth.FALSE, Truth.FALSE: Truth.TRUE}.get(outcome.truth, outcome.truth)
    return Outcome(flipped, tuple(f"not: {r}" for r in outcome.reasons))
