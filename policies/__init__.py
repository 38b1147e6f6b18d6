"""The policy language: declarative merge rules over Change Passports (DESIGN.md §9).

Load a policy with :func:`load_policy` / :func:`parse_policy` and decide a passport statement (plus
an optional PR state) with :func:`evaluate`; explain the decision with :func:`explain` /
:func:`summarize`; test a policy with :func:`load_cases` / :func:`run_cases`; replay it over past
passports with :func:`simulate`. The package is pure: reading the policy (and cases) files it is
given is its only I/O.
"""

from __future__ import annotations

from .cases import CaseResult, PolicyCase, load_cases, run_cases
from .errors import PolicyError
from .evaluator import Decision, RuleResult, RuleState, evaluate
from .explain import explain, summarize
from .loader import LANGUAGE_VERSION, LIBRARY_DIR, library_path, load_policy, parse_policy
from .model import Policy, Rule
from .schema import policy_schema
from .simulation import Simulation, SimulationInput, render_simulation, simulate

__all__ = [  # noqa: RUF022 (plain sorted order, checked by a test)
    "CaseResult",
    "Decision",
    "LANGUAGE_VERSION",
    "LIBRARY_DIR",
    "Policy",
    "PolicyCase",
    "PolicyError",
    "Rule",
    "RuleResult",
    "RuleState",
    "Simulation",
    "SimulationInput",
    "evaluate",
    "explain",
    "library_path",
    "load_cases",
    "load_policy",
    "parse_policy",
    "policy_schema",
    "render_simulation",
    "run_cases",
    "simulate",
    "summarize",
]
