"""Evaluate a policy over a passport statement and a PR state (DESIGN.md §9).

Every rule gets a state:

- ``skipped``: its ``if`` does not hold;
- ``satisfied``: it is content — a ``require`` whose predicate holds, an ``allow`` that applies;
- ``unsatisfied``: it objects — a ``block`` or ``warn`` that applies, a ``require`` whose predicate
  is false (it cannot become true without a new push: failed validation, findings, a failed check);
- ``pending``: it waits for approvals or checks (in its ``if`` or its ``require``);
- ``error``: the input lacks a fact it needs; an error never turns into ``allow``.

The decision:

1. a ``block`` rule that applies, or a ``block``/``require`` rule in ``error``, or a ``require``
   that is ``unsatisfied`` -> ``block``;
2. else a ``block`` or ``require`` rule that is ``pending`` -> ``pending``;
3. else at least one ``require`` or ``allow`` rule satisfied -> ``allow``;
4. else ``defaults.whenNoRuleApplies`` (default ``pending``) — except that a default of ``block``
   gives ``pending`` while an ``allow`` rule is still pending (it may yet apply).

``warn`` rules never change the decision.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .facts import Facts
from .model import DecisionValue, Policy, Rule, RuleKind, evaluate_predicate
from .truth import Truth

__all__ = ["Decision", "RuleResult", "RuleState", "evaluate"]

RuleState = Literal["satisfied", "unsatisfied", "pending", "skipped", "error"]


@dataclass(frozen=True)
class RuleResult:
    """The state of one rule and the reasons for it."""

    name: str
    kind: RuleKind
    state: RuleState
    reasons: list[str]
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"name", "kind", "state", "reasons", "message"}``."""
        return {
            "name": self.name,
            "kind": self.kind,
            "state": self.state,
            "reasons": list(self.reasons),
            "message": self.message,
        }


@dataclass(frozen=True)
class Decision:
    """The gate's verdict: allow, block or pending, with every rule's result."""

    decision: DecisionValue
    rules: list[RuleResult]
    policy_name: str
    policy_digest: str

    def rule(self, name: str) -> RuleResult:
        """The result of the rule called ``name`` (KeyError when there is none)."""
        for result in self.rules:
            if result.name == name:
                return result
        raise KeyError(name)

    @property
    def deciding_rules(self) -> list[RuleResult]:
        """The rules that made the decision what it is (empty when the default applied)."""
        if self.decision == "block":
            return [r for r in self.rules if _blocks(r)]
        if self.decision == "pending":
            return [r for r in self.rules if r.state == "pending" and r.kind != "warn"]
        return [r for r in self.rules if r.state == "satisfied"]

    def to_json(self) -> dict[str, Any]:
        """``{"decision", "rules", "policyName", "policyDigest"}`` (contract 4)."""
        return {
            "decision": self.decision,
            "rules": [r.to_json() for r in self.rules],
            "policyName": self.policy_name,
            "policyDigest": self.policy_digest,
        }


def _blocks(result: RuleResult) -> bool:
    """An applying block, or a block/require that is unsatisfied or in error."""
    return result.kind in ("block", "require") and result.state in ("unsatisfied", "error")


_IF_STATE: dict[Truth, RuleState] = {
    Truth.FALSE: "skipped",
    Truth.PENDING: "pending",
    Truth.ERROR: "error",
}
_REQUIRE_STATE: dict[Truth, RuleState] = {
    Truth.TRUE: "satisfied",
    Truth.FALSE: "unsatisfied",
    Truth.PENDING: "pending",
    Truth.ERROR: "error",
}


def _evaluate_rule(rule: Rule, facts: Facts) -> RuleResult:
    reasons: list[str] = []
    state: RuleState
    if rule.condition is not None:
        condition = evaluate_predicate(rule.condition, facts)
        reasons.extend(condition.reasons)
        if condition.truth is not Truth.TRUE:
            return RuleResult(
                rule.name, rule.kind, _IF_STATE[condition.truth], reasons, _message(rule)
            )
    if rule.kind == "require":
        assert rule.requirement is not None
        requirement = evaluate_predicate(rule.requirement, facts)
        reasons.extend(requirement.reasons)
        state = _REQUIRE_STATE[requirement.truth]
    elif rule.kind == "allow":
        state = "satisfied"
    else:
        state = "unsatisfied"
    if not reasons:
        reasons.append("applies to every change (no if)")
    return RuleResult(rule.name, rule.kind, state, reasons, _message(rule))


def _message(rule: Rule) -> str | None:
    return rule.message if rule.message is not None else rule.description


def evaluate(
    policy: Policy,
    statement: Mapping[str, Any],
    pr: Mapping[str, Any] | None = None,
    *,
    team_resolver: Callable[[str], Iterable[str] | None]
    | Mapping[str, Collection[str]]
    | None = None,
) -> Decision:
    """Decide ``statement`` (a passport statement, contract 1) with ``pr`` (PR state, contract 2).

    Teams named by ``approvals`` come from the policy's ``teams:`` section, else from
    ``team_resolver`` (a function of the team name returning its logins or None, or a mapping).
    Raises :class:`~policies.PolicyError` only when ``statement`` or ``pr`` is not an object;
    anything missing inside them makes the rules that need it ``error`` (or ``pending``).
    """
    resolver = team_resolver.get if isinstance(team_resolver, Mapping) else team_resolver
    facts = Facts(statement, pr, teams=policy.teams, team_resolver=resolver)
    results = [_evaluate_rule(rule, facts) for rule in policy.rules]
    return Decision(
        decision=_decide(policy, results),
        rules=results,
        policy_name=policy.name,
        policy_digest=policy.digest,
    )


def _decide(policy: Policy, results: list[RuleResult]) -> DecisionValue:
    if any(_blocks(r) for r in results):
        return "block"
    if any(r.state == "pending" and r.kind in ("block", "require") for r in results):
        return "pending"
    if any(r.state == "satisfied" and r.kind in ("require", "allow") for r in results):
        return "allow"
    if policy.when_no_rule_applies == "block" and any(
        r.state == "pending" and r.kind == "allow" for r in results
    ):
        return "pending"
    return policy.when_no_rule_applies
