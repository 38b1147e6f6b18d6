"""The ``gate`` stage: the merge-gate decision over the upstream passport, published as a status.

A ``block`` is an outcome, not a failure: the stage succeeds with ``outputs.decision``.
``publishStatus: false`` keeps the decision off the forge.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from judge import MergeGate
from passport import PassportStore
from policies import PolicyError, load_policy
from writgate.settings import Settings

from ..context import StageContext
from ..errors import StageFailure
from . import register

__all__ = ["run_gate"]


async def run_gate(ctx: StageContext) -> Mapping[str, Any]:
    """Evaluate the policy over the passport and the PR state; publish the status."""
    policy_path = ctx.params.get("policy")
    if not policy_path:
        raise StageFailure("with.policy is required (a policy file)", retryable=False)
    source = str(policy_path)
    try:
        policy = load_policy(source if source.startswith("library:") else ctx.resolve_path(source))
    except PolicyError as exc:
        raise StageFailure(f"policy: {exc}", retryable=False) from exc
    upstream = next(
        (s for s in ctx.upstream.values() if s.kind == "passport" and s.status == "succeeded"), None
    )
    if upstream is None or ctx.engine is None:
        raise StageFailure(
            f"stage {ctx.stage_id} needs an upstream passport stage", retryable=False
        )
    stored = await PassportStore(engine=ctx.engine).get(ctx.org_id, str(upstream.outputs["id"]))
    statement = stored.statement
    change = statement["predicate"]["change"]
    repository = change["repository"]
    forge = ctx.services["forge_for"](ctx.org_id)
    pr_ref = change.get("pullRequest")
    pr = await forge.get_pull_request(repository, int(pr_ref["number"])) if pr_ref else None
    settings = ctx.settings or Settings.from_env()
    gate = MergeGate(engine=ctx.engine, ledger=ctx.ledger, forge=forge, home=settings.home)
    decision = await gate.evaluate(
        ctx.org_id,
        policy=policy,
        statement=statement,
        pr=pr,
        repository=repository,
        publish=bool(ctx.params.get("publishStatus", True)),
        envelope=stored.envelope,
    )
    return {
        "decision": decision.decision,
        "decisionId": decision.id,
        "reasons": decision.reasons,
        "rules": [
            {"name": r["name"], "state": r["state"], "reasons": r["reasons"]}
            for r in decision.rules
        ],
        "policyDigest": decision.policy_digest,
        "headSha": decision.head_sha,
    }


register("gate", run_gate)
