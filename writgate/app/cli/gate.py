"""``writgate gate check``: the merge gate in CI.

Exit codes: ``0`` allow, ``1`` block, ``3`` pending, ``2`` usage or input error (and any other
failure, so that ``1`` always means the gate blocked). Writes the Markdown summary to
``$GITHUB_STEP_SUMMARY`` when it is set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from judge.gate import Verdict, decide, pr_state_of
from judge.publish import render_check_summary
from judge.store import GateDecision
from writgate.app.database import Database
from writgate.errors import InputError, WritgateError
from writgate.settings import Settings

from ._common import run_async, with_database
from .review import add_reviewer_arguments, load_reviewer_config

EXIT = {"allow": 0, "block": 1, "pending": 3}
USAGE_ERROR = 2


def register(commands: Any) -> None:
    parser = commands.add_parser("gate", help="the merge gate")
    actions = parser.add_subparsers(dest="gate_command", metavar="ACTION")
    actions.required = True
    check = actions.add_parser(
        "check",
        help="evaluate a policy over a change or a passport (exit 0 allow, 1 block, 3 pending)",
    )
    source = check.add_argument_group("the change (either --repo/--base/--head or --passport)")
    source.add_argument("--repo", type=Path, help="path of the git repository")
    source.add_argument("--base", help="base revision")
    source.add_argument("--head", help="head revision")
    source.add_argument("--passport", type=Path, help="a passport file (statement or DSSE)")
    source.add_argument(
        "--pull-request",
        type=int,
        metavar="N",
        help="judge pull request N of --repository on the local forge (reviews, passport, gate)",
    )
    check.add_argument("--policy", required=True, type=Path, help="the policy file")
    check.add_argument("--pr", type=Path, metavar="PR_STATE.json", help="the PR state (JSON)")
    check.add_argument("--repository", help="repository name (OWNER/NAME)")
    add_reviewer_arguments(check)
    check.add_argument(
        "--format", choices=("text", "json", "markdown"), default="text", help="output format"
    )
    check.add_argument(
        "--publish",
        action="store_true",
        help="store the decision and post the status checks on the configured forge "
        "(needs --repository and a PR state with a number)",
    )
    check.add_argument(
        "--server",
        metavar="URL",
        default=os.environ.get("WRITGATE_SERVER") or None,
        help="evaluate on this writgate server (default $WRITGATE_SERVER; key in "
        "$WRITGATE_API_KEY) instead of locally: with --pull-request or --passport",
    )
    check.set_defaults(handler=_check)


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read the {what}: {exc.strerror or exc}", file=str(path)) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"the {what} is not JSON: {exc.msg}", file=str(path), line=exc.lineno, column=exc.colno
        ) from exc


def _pr_facts(pr_state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not pr_state or not isinstance(pr_state.get("number"), int):
        return None
    return {
        "number": pr_state["number"],
        "url": pr_state.get("url"),
        "draft": bool(pr_state.get("draft", False)),
        "title": pr_state.get("title"),
        "author": pr_state.get("author"),
        "labels": list(pr_state.get("labels") or []),
    }


async def _statement(args: argparse.Namespace, pr_state: Mapping[str, Any] | None) -> Any:
    from judge import review_change
    from passport import build_passport, load_passport

    if args.passport is not None:
        loaded = load_passport(args.passport)
        return loaded.statement, loaded.envelope
    config = load_reviewer_config(args.config)
    result = await review_change(
        args.repo, args.base, args.head, reviewers=args.reviewers, config=config
    )
    statement = await build_passport(
        args.repo,
        args.base,
        args.head,
        repository=args.repository,
        pull_request=_pr_facts(pr_state),
        reviews=result.to_passport_reviews(),
    )
    return statement, None


def _check_arguments(args: argparse.Namespace) -> None:
    with_repo = args.repo is not None or args.base is not None or args.head is not None
    sources = [with_repo, args.passport is not None, args.pull_request is not None]
    if sum(sources) > 1:
        raise InputError("give one of --repo/--base/--head, --passport or --pull-request, not both")
    if args.pull_request is not None:
        if not args.repository:
            raise InputError("--pull-request needs --repository OWNER/NAME")
        if args.pr is not None:
            raise InputError("--pull-request reads the PR state from the forge; drop --pr")
        return
    if args.passport is None and not (args.repo and args.base and args.head):
        raise InputError("give --repo, --base and --head, --passport, or --pull-request")
    if args.passport is not None and (args.reviewers or args.config):
        raise InputError("--reviewers and --config need --repo/--base/--head")


def _markdown(verdict: Verdict, statement: Mapping[str, Any], passport: str, url: str | None,
              decision_id: str) -> str:  # fmt: skip
    preview = GateDecision(
        id=decision_id,
        decision=verdict.decision,
        status="current",
        rules=verdict.rules,
        policy_name=verdict.policy_name,
        policy_digest=verdict.policy_digest,
        passport_id=passport,
        head_sha=verdict.head_sha,
    )
    return render_check_summary(preview, statement, url=url)


def _text(verdict: Verdict, passport: str) -> str:
    lines = [f"decision: {verdict.decision} (policy {verdict.policy_name}, {passport[:19]}…)"]
    for rule in verdict.rules:
        reasons = "; ".join(rule.get("reasons") or []) or rule.get("message") or ""
        lines.append(f"  {rule['state']:<11} {rule['name']} [{rule['kind']}]" + (
            f": {reasons}" if reasons else ""
        ))  # fmt: skip
    return "\n".join(lines) + "\n"


def _check(args: argparse.Namespace) -> int:
    try:
        return _run_check(args)
    except WritgateError as exc:
        # Every failure exits 2: in CI, 1 must only ever mean "the gate blocked".
        print(f"writgate: error: {exc}", file=sys.stderr)
        return USAGE_ERROR


def _run_check(args: argparse.Namespace) -> int:
    from policies import load_policy

    _check_arguments(args)
    policy = load_policy(args.policy)
    if args.server:
        return _check_remote(args)
    pr_state = None
    if args.pr is not None:
        data = _read_json(args.pr, "PR state")
        if not isinstance(data, dict):
            raise InputError("the PR state must be a JSON object", file=str(args.pr))
        try:
            pr_state = pr_state_of(data)
        except InputError as exc:
            exc.file = str(args.pr)
            raise
    if args.pull_request is not None:
        verdict_json = run_async(lambda: with_database(_judge_forge_pr(args, policy)))
        stored, statement = verdict_json
        return _report(
            args,
            Verdict(stored.decision, list(stored.rules), stored.policy_name,
                    stored.policy_digest, stored.head_sha),
            statement,
            stored.id if args.publish else "",
            (stored.publication or {}).get("status", {}).get("targetUrl"),
        )  # fmt: skip
    if args.publish and (not args.repository or not pr_state or "number" not in pr_state):
        raise InputError("--publish needs --repository and a --pr state with a number")
    statement, envelope = run_async(lambda: _statement(args, pr_state))
    verdict = decide(policy, statement, pr_state)
    decision_id = ""
    url = None
    if args.publish:

        async def publish(database: Database, settings: Settings) -> GateDecision:
            from forge import LocalForge
            from judge.gate import MergeGate, public_url_from_env

            forge = LocalForge(
                engine=database.engine, ledger=database.ledger, home=settings.home,
                org=settings.org,
            )  # fmt: skip
            gate = MergeGate(
                engine=database.engine, ledger=database.ledger, forge=forge,
                public_url=public_url_from_env(), home=settings.home,
            )  # fmt: skip
            return await gate.evaluate(
                settings.org, policy=policy, statement=statement, pr=pr_state,
                repository=args.repository, publish=True, envelope=envelope,
            )  # fmt: skip

        stored = run_async(lambda: with_database(publish))
        decision_id = stored.id
        url = (stored.publication or {}).get("status", {}).get("targetUrl")
        verdict = Verdict(
            stored.decision, list(stored.rules), stored.policy_name, stored.policy_digest,
            stored.head_sha,
        )  # fmt: skip
    return _report(args, verdict, statement, decision_id, url)


def _check_remote(args: argparse.Namespace) -> int:
    """The same check, evaluated by a server (its forge, its stored decisions and passports)."""
    from writgate.client import Client

    if args.repo is not None:
        raise InputError("--server judges --pull-request or --passport; --repo is a local path")
    passport = _read_json(args.passport, "passport") if args.passport is not None else None
    if passport is not None and not isinstance(passport, dict):
        raise InputError("the passport must be a JSON object", file=str(args.passport))
    pr_state = _read_json(args.pr, "PR state") if args.pr is not None else None
    if pr_state is not None and not isinstance(pr_state, dict):
        raise InputError("the PR state must be a JSON object", file=str(args.pr))
    config = load_reviewer_config(args.config) if args.config is not None else None
    with Client(args.server) as client:
        decision = client.evaluate_gate(
            args.policy.read_text(encoding="utf-8"), passport=passport, pr_state=pr_state,
            repository=args.repository, pull_request=args.pull_request,
            reviewers=args.reviewers, config=config, publish=args.publish,
        )  # fmt: skip
        statement = client.get_passport(decision.passport or decision.passportId).statement
    verdict = Verdict(
        decision.decision, [rule.model_dump() for rule in decision.rules], decision.policyName,
        decision.policyDigest, decision.headSha,
    )  # fmt: skip
    url = ((decision.publication or {}).get("status") or {}).get("targetUrl")
    return _report(args, verdict, statement, decision.id if args.publish else "", url)


def _judge_forge_pr(
    args: argparse.Namespace, policy: Any
) -> Callable[[Database, Settings], Awaitable[tuple[GateDecision, dict[str, Any]]]]:
    async def judge(database: Database, settings: Settings) -> tuple[GateDecision, dict[str, Any]]:
        from forge import LocalForge
        from judge.gate import MergeGate, public_url_from_env
        from judge.pull_requests import judge_pull_request

        forge = LocalForge(
            engine=database.engine, ledger=database.ledger, home=settings.home, org=settings.org
        )
        gate = MergeGate(
            engine=database.engine, ledger=database.ledger, forge=forge,
            public_url=public_url_from_env(), home=settings.home,
            allow_program_reviewers=True,  # the operator's own command line
        )  # fmt: skip
        verdict = await judge_pull_request(
            gate, settings.org, repository=args.repository, number=args.pull_request,
            policy=policy, home=settings.home, reviewers=args.reviewers,
            config=load_reviewer_config(args.config), publish=args.publish,
        )  # fmt: skip
        return verdict.decision, verdict.statement

    return judge


def _report(
    args: argparse.Namespace,
    verdict: Verdict,
    statement: Mapping[str, Any],
    decision_id: str,
    url: str | None,
) -> int:
    from passport import passport_id

    digest = passport_id(statement)
    markdown = _markdown(verdict, statement, digest, url, decision_id)
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        try:
            with open(summary_file, "a", encoding="utf-8") as handle:
                handle.write(markdown + "\n")
        except OSError as exc:
            raise InputError(
                f"cannot write the job summary: {exc.strerror or exc}", file=summary_file
            ) from exc
    if args.format == "json":
        output: dict[str, Any] = {
            "decision": verdict.decision,
            "rules": [
                {"name": r["name"], "state": r["state"], "reasons": list(r.get("reasons") or [])}
                for r in verdict.rules
            ],
            "policyDigest": verdict.policy_digest,
            "passportId": digest,
        }
        if decision_id:
            output["decisionId"] = decision_id
        sys.stdout.write(json.dumps(output, indent=2) + "\n")
    elif args.format == "markdown":
        sys.stdout.write(markdown)
    else:
        sys.stdout.write(_text(verdict, digest))
    return EXIT[verdict.decision]
