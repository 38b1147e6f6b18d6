"""The parsed form of a policy: predicates, rules and the policy itself (immutable)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .conditions import Condition, check, team_names
from .facts import Facts
from .truth import Outcome, all_of, any_of, not_of

__all__ = [
    "AllOf",
    "AnyOf",
    "Attribute",
    "NotOf",
    "Policy",
    "Predicate",
    "Rule",
    "RuleKind",
    "evaluate_predicate",
]

RuleKind = Literal["block", "require", "warn", "allow"]
DecisionValue = Literal["allow", "block", "pending"]


@dataclass(frozen=True)
class Attribute:
    """One attribute key of a predicate mapping."""

    condition: Condition


@dataclass(frozen=True)
class AllOf:
    """``all: [...]`` (also several keys in one mapping)."""

    children: tuple[Predicate, ...]


@dataclass(frozen=True)
class AnyOf:
    """``any: [...]``."""

    children: tuple[Predicate, ...]


@dataclass(frozen=True)
class NotOf:
    """``not: {...}``."""

    child: Predicate


Predicate = Attribute | AllOf | AnyOf | NotOf


def evaluate_predicate(predicate: Predicate, facts: Facts) -> Outcome:
    """The four-valued outcome of ``predicate`` over ``facts``."""
    if isinstance(predicate, Attribute):
        return check(predicate.condition, facts)
    if isinstance(predicate, AllOf):
        return all_of([evaluate_predicate(c, facts) for c in predicate.children])
    if isinstance(predicate, AnyOf):
        return any_of([evaluate_predicate(c, facts) for c in predicate.children])
    return not_of(evaluate_predicate(predicate.child, facts))


def conditions_of(predicate: Predicate | None) -> Iterator[Condition]:
    """Every attribute condition inside ``predicate``."""
    if predicate is None:
        return
    if isinstance(predicate, Attribute):
        yield predicate.condition
    elif isinstance(predicate, NotOf):
        yield from conditions_of(predicate.child)
    else:
        for child in predicate.children:
            yield from conditions_of(child)


@dataclass(frozen=True)
class Rule:
    """One rule: an optional ``if`` and exactly one of block, require, warn, allow."""

    name: str
    kind: RuleKind
    description: str | None = None
    condition: Predicate | None = None  # the ``if``; None = always applies
    requirement: Predicate | None = None  # the ``require`` predicate
    message: str | None = None  # the ``block`` / ``warn`` message
    source: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Policy:
    """A loaded policy, ``extends`` already merged."""

    name: str
    rules: tuple[Rule, ...]
    when_no_rule_applies: DecisionValue = "pending"
    teams: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    description: str | None = None
    source: str = "<string>"
    document: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    digest: str = ""

    def rule(self, name: str) -> Rule:
        """The rule called ``name`` (KeyError when there is none)."""
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)

    @property
    def team_names(self) -> set[str]:
        """Every team the approvals conditions name (to resolve them before evaluating)."""
        conditions = (
            condition
            for rule in self.rules
            for predicate in (rule.condition, rule.requirement)
            for condition in conditions_of(predicate)
        )
        return team_names(conditions)

    def to_json(self) -> dict[str, Any]:
        """The merged policy document, as digested."""
        return dict(self.document)
