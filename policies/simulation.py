"""Simulation: re-decide past passports under a policy and show what would change, and why.

The caller supplies the passports (the CLI reads them from the passport store); with a baseline
policy each passport is decided twice and the differences are reported rule by rule; without one,
each passport's new decision is listed with the rules that made it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .evaluator import Decision, evaluate
from .explain import summarize
from .model import Policy

__all__ = [
    "RuleChange",
    "SimulatedPassport",
    "Simulation",
    "SimulationInput",
    "render_simulation",
    "simulate",
]


@dataclass(frozen=True)
class SimulationInput:
    """A stored passport to re-decide."""

    passport_id: str
    statement: Mapping[str, Any]
    pr: Mapping[str, Any] | None = None
    label: str = ""
    created_at: str | None = None


@dataclass(frozen=True)
class RuleChange:
    """A rule whose state differs between the baseline and the new policy."""

    name: str
    before: str | None  # None: the rule is new
    after: str | None  # None: the rule was removed
    reasons: list[str]

    def to_json(self) -> dict[str, Any]:
        """The change as JSON."""
        return {
            "name": self.name,
            "before": self.before,
            "after": self.after,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class SimulatedPassport:
    """One passport's decision under the new policy (and the baseline)."""

    input: SimulationInput
    decision: Decision
    baseline: Decision | None = None
    rule_changes: list[RuleChange] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """The decision differs from the baseline's."""
        return self.baseline is not None and self.baseline.decision != self.decision.decision

    def to_json(self) -> dict[str, Any]:
        """The passport's outcome as JSON, every rule included."""
        return {
            "passportId": self.input.passport_id,
            "label": self.input.label,
            "createdAt": self.input.created_at,
            "decision": self.decision.decision,
            "baselineDecision": self.baseline.decision if self.baseline else None,
            "changed": self.changed,
            "why": summarize(self.decision),
            "ruleChanges": [change.to_json() for change in self.rule_changes],
            "rules": [rule.to_json() for rule in self.decision.rules],
        }


@dataclass(frozen=True)
class Simulation:
    """The outcome of a simulation run."""

    policy: Policy
    baseline: Policy | None
    passports: list[SimulatedPassport]

    @property
    def changed(self) -> list[SimulatedPassport]:
        """The passports whose decision differs from the baseline's."""
        return [p for p in self.passports if p.changed]

    def transitions(self) -> dict[str, int]:
        """``{"allow -> block": 2, …}`` over the changed passports."""
        counts = Counter(
            f"{p.baseline.decision} -> {p.decision.decision}"
            for p in self.changed
            if p.baseline is not None
        )
        return dict(sorted(counts.items()))

    def to_json(self) -> dict[str, Any]:
        """The whole simulation: policies, summary and every passport."""
        decisions = Counter(p.decision.decision for p in self.passports)
        return {
            "policy": {"name": self.policy.name, "digest": self.policy.digest},
            "baseline": (
                {"name": self.baseline.name, "digest": self.baseline.digest}
                if self.baseline
                else None
            ),
            "summary": {
                "passports": len(self.passports),
                "decisions": {d: decisions.get(d, 0) for d in ("allow", "block", "pending")},
                "changed": len(self.changed),
                "transitions": self.transitions(),
            },
            "passports": [p.to_json() for p in self.passports],
        }


def _rule_changes(before: Decision, after: Decision) -> list[RuleChange]:
    old = {r.name: r for r in before.rules}
    new = {r.name: r for r in after.rules}
    changes = []
    for name, result in new.items():
        previous = old.get(name)
        if previous is None or previous.state != result.state:
            changes.append(
                RuleChange(name, previous.state if previous else None, result.state, result.reasons)
            )
    for name, result in old.items():
        if name not in new:
            changes.append(RuleChange(name, result.state, None, result.reasons))
    return changes


def simulate(
    policy: Policy,
    passports: Iterable[SimulationInput],
    *,
    baseline: Policy | None = None,
) -> Simulation:
    """Decide every passport under ``policy`` (and ``baseline``) and collect the differences."""
    results = []
    for item in passports:
        decision = evaluate(policy, item.statement, item.pr)
        if baseline is None:
            results.append(SimulatedPassport(item, decision))
            continue
        before = evaluate(baseline, item.statement, item.pr)
        results.append(SimulatedPassport(item, decision, before, _rule_changes(before, decision)))
    return Simulation(policy, baseline, results)


def render_simulation(simulation: Simulation) -> str:
    """The simulation as text: one block per passport that matters, then a summary."""
    lines = []
    summary = simulation.to_json()["summary"]
    for item in simulation.passports:
        short = item.input.passport_id.removeprefix("sha256:")[:12]
        label = f"{short} {item.input.label}".rstrip()
        if simulation.baseline is None:
            lines.append(f"{label}: {item.decision.decision} — {summarize(item.decision)}")
            continue
        if not item.changed:
            continue
        assert item.baseline is not None
        lines.append(
            f"{label}: {item.baseline.decision} -> {item.decision.decision}"
            f" — {summarize(item.decision)}"
        )
        for change in item.rule_changes:
            before = change.before or "(new rule)"
            after = change.after or "(removed)"
            why = "; ".join(change.reasons)
            lines.append(f"    {change.name}: {before} -> {after}" + (f" ({why})" if why else ""))
    counts = ", ".join(f"{n} {d}" for d, n in summary["decisions"].items())
    total = summary["passports"]
    if simulation.baseline is None:
        lines.append(f"{total} passport{'s' if total != 1 else ''} decided: {counts}")
    else:
        moves = ", ".join(f"{n} {t}" for t, n in summary["transitions"].items())
        lines.append(
            f"{total} passport{'s' if total != 1 else ''}: {summary['changed']} decision"
            f"{'s' if summary['changed'] != 1 else ''} would change"
            + (f" ({moves})" if moves else "")
            + f"; now {counts}"
        )
    return "\n".join(lines)
