"""Explanations: a decision as text a person reads in a terminal, a log or a status description."""

from __future__ import annotations

from .evaluator import Decision, RuleResult

__all__ = ["explain", "summarize"]

_MARKS = {
    "satisfied": "ok",
    "unsatisfied": "NO",
    "pending": "..",
    "skipped": "--",
    "error": "!!",
}


def summarize(decision: Decision, *, limit: int = 140) -> str:
    """One line: the decision and the rules that made it (at most ``limit`` characters)."""
    deciding = decision.deciding_rules
    if deciding:
        verb = {"block": "blocked by", "pending": "waiting for", "allow": "allowed by"}
        line = f"{verb[decision.decision]} " + ", ".join(r.name for r in deciding)
    else:
        line = f"{decision.decision}: no rule applies (the policy's default)"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def explain_rule(result: RuleResult) -> list[str]:
    """The lines for one rule: its state, kind and name, then its message and reasons."""
    lines = [f"[{_MARKS[result.state]}] {result.name} ({result.kind}): {result.state}"]
    if result.message and result.state in ("unsatisfied", "pending", "error"):
        lines.append(f"      {result.message}")
    lines.extend(f"      - {reason}" for reason in result.reasons)
    return lines


def explain(decision: Decision, *, skipped: bool = True) -> str:
    """The decision, then every rule (``skipped=False`` leaves out the skipped ones)."""
    lines = [
        f"decision: {decision.decision} ({summarize(decision)})",
        f"policy: {decision.policy_name} {decision.policy_digest}",
    ]
    for result in decision.rules:
        if skipped or result.state != "skipped":
            lines.extend(explain_rule(result))
    return "\n".join(lines)
