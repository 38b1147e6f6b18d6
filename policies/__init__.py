"""The policy language: declarative merge rules over Change Passports (DESIGN.md §9).

Load a policy with :func:`load_policy` / :func:`parse_policy` and decide a passport statement (plus
an optional PR state) with :func:`evaluate`. The package is pure: reading the policy (and cases)
files it is given is its only I/O.
"""

from __future__ import annotations

from .errors import PolicyError
from .evaluator import Decision, RuleResult, RuleState, evaluate
from .loader import LANGUAGE_VERSION, LIBRARY_DIR, library_path, load_policy, parse_policy
from .model import Policy, Rule

__all__ = [  # noqa: RUF022 (plain sorted order, checked by a test)
    "Decision",
    "LANGUAGE_VERSION",
    "LIBRARY_DIR",
    "Policy",
    "PolicyError",
    "Rule",
    "RuleResult",
    "RuleState",
    "evaluate",
    "library_path",
    "load_policy",
    "parse_policy",
]
