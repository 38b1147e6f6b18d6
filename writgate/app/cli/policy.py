"""``writgate policy test|simulate|schema``: test, replay over stored passports, describe."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from passport import PassportStore, StoredPassport, load_passport
from policies import (
    CaseResult,
    Policy,
    SimulationInput,
    load_cases,
    load_policy,
    policy_schema,
    render_simulation,
    run_cases,
    simulate,
)
from writgate.app.database import Database
from writgate.errors import InputError
from writgate.settings import Settings

from ._common import print_json, run_async, with_database

_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def register(commands: Any) -> None:
    parser = commands.add_parser("policy", help="test, simulate and describe merge policies")
    actions = parser.add_subparsers(dest="policy_command", metavar="ACTION")
    actions.required = True

    test = actions.add_parser("test", help="run a policy's test cases")
    test.add_argument("policy", metavar="POLICY", help="policy file (or library:<name>)")
    test.add_argument("--cases", required=True, metavar="CASES.yaml", help="the cases file")
    test.add_argument("-v", "--verbose", action="store_true", help="show every rule of every case")
    test.add_argument("--json", action="store_true", help="print the results as JSON")
    test.set_defaults(handler=_test)

    sim = actions.add_parser("simulate", help="re-decide stored passports under a policy")
    sim.add_argument("policy", metavar="POLICY", help="policy file (or library:<name>)")
    sim.add_argument(
        "--since",
        default="30d",
        metavar="AGE",
        help="passports created within AGE (30d, 12h, 2w) or since a date (2026-11-01)",
    )
    sim.add_argument("--baseline", metavar="OLD_POLICY", help="compare with this policy")
    sim.add_argument(
        "--limit", type=int, default=1000, metavar="N", help="at most N passports (1-1000)"
    )
    sim.add_argument("--json", action="store_true", help="print the simulation as JSON")
    sim.set_defaults(handler=_simulate)

    schema = actions.add_parser("schema", help="print the JSON Schema of the policy language")
    schema.set_defaults(handler=_schema)


# -- policy test ---------------------------------------------------------------------------------


def _load_statement(path: Path) -> Mapping[str, Any]:
    return load_passport(path).statement


def _test(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    cases = load_cases(args.cases, load_passport=_load_statement)
    results = run_cases(policy, cases)
    failed = [r for r in results if not r.passed]
    if args.json:
        print_json(
            {
                "policy": {"name": policy.name, "digest": policy.digest},
                "passed": len(results) - len(failed),
                "failed": len(failed),
                "cases": [_case_json(r) for r in results],
            }
        )
    else:
        _print_results(args, policy, results)
    return 1 if failed else 0


def _case_json(result: CaseResult) -> dict[str, Any]:
    return {
        "name": result.case.name,
        "line": result.case.line,
        "passed": result.passed,
        "failures": result.failures,
        "decision": result.decision.to_json(),
    }


def _print_results(args: argparse.Namespace, policy: Policy, results: list[CaseResult]) -> None:
    print(f"policy {policy.name} ({policy.digest[:19]}…), {len(results)} cases from {args.cases}")
    for result in results:
        status = "PASS" if result.passed else "FAIL"
        print(f"{status} {result.case.name} [{args.cases}:{result.case.line}]")
        for failure in result.failures:
            print(f"     {failure}")
        if args.verbose:
            for rule in result.decision.rules:
                reasons = "; ".join(rule.reasons)
                print(f"       {rule.name} ({rule.kind}): {rule.state} — {reasons}")
    failed = sum(1 for r in results if not r.passed)
    passed = len(results) - failed
    print(f"{passed} passed, {failed} failed")


# -- policy simulate -----------------------------------------------------------------------------


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """``30d`` / ``12h`` / ``2w`` ago, or an ISO date or date-time (UTC unless it says)."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(text.strip())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            "expected an age such as 30d, 12h or 2w, or a date such as 2026-11-01",
            field="--since",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _simulate(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 1000:
        raise InputError("must be between 1 and 1000", field="--limit")
    since = parse_since(args.since)
    policy = load_policy(args.policy)
    baseline = load_policy(args.baseline) if args.baseline else None

    async def read(database: Database, settings: Settings) -> list[StoredPassport]:
        store = PassportStore(engine=database.engine)
        return await store.list(settings.org, since=since, limit=args.limit)

    stored = run_async(lambda: with_database(read))
    inputs = [
        SimulationInput(
            passport_id=item.passport_id,
            statement=item.statement,
            label=f"{item.repository}@{item.head_sha[:12]}",
            created_at=item.created_at.isoformat().replace("+00:00", "Z"),
        )
        for item in reversed(stored)  # oldest first reads like a history
    ]
    simulation = simulate(policy, inputs, baseline=baseline)
    if args.json:
        print_json(simulation.to_json())
    elif not inputs:
        print(f"no passports created since {since.isoformat(timespec='seconds')}")
    else:
        print(render_simulation(simulation))
    return 0


# -- policy schema -------------------------------------------------------------------------------


def _schema(args: argparse.Namespace) -> int:
    json.dump(policy_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
