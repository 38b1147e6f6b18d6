"""The merge gate: a policy evaluated over a passport and the PR state, stored and published.

:class:`MergeGate` is the service the API, the CLI and the pipeline ``gate`` stage use:

- :meth:`MergeGate.evaluate` decides, stores the decision (earlier decisions of the PR become
  ``stale`` or ``superseded``) and, with ``publish``, posts the status checks (:mod:`.publish`).
- :meth:`MergeGate.refresh` re-evaluates a PR's current decision when its approvals or checks
  changed; when the PR has a new head it marks the old decision ``stale`` and the status pending.
- :meth:`MergeGate.merge_group` reuses the decision of the PR head for a merge-queue commit.
- :meth:`MergeGate.handle_forge_event` maps forge events (review, new head, status) to the above.

A passport made for another head than the PR's never allows: the decision is ``pending`` until
a passport for the current head is evaluated.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from writgate.errors import ConfigError, InputError, NotFoundError
from writgate.ledger import Event, Ledger

from .errors import MergeRefused
from .publish import Publisher
from .store import DecisionStore, GateDecision

if TYPE_CHECKING:
    from forge import Forge, PullRequest
    from policies import Policy

__all__ = [
    "DEFAULT_PUBLIC_URL",
    "MergeGate",
    "Verdict",
    "decide",
    "decision_url",
    "pr_state_of",
    "program_reviewers_from_env",
    "public_url_from_env",
]

DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"
_HEAD_RULE = "passport-matches-head"


def program_reviewers_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """``WRITGATE_ALLOW_PROGRAM_REVIEWERS=1``: the server may run command/agent reviewers."""
    env = os.environ if environ is None else environ
    return env.get("WRITGATE_ALLOW_PROGRAM_REVIEWERS", "").strip().lower() in ("1", "true", "yes")


def public_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``WRITGATE_PUBLIC_URL`` (the server's base URL for links), default 127.0.0.1:8080."""
    env = os.environ if environ is None else environ
    return (env.get("WRITGATE_PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/")


def decision_url(public_url: str, decision_id: str) -> str:
    """The dashboard page of a decision."""
    return f"{public_url.rstrip('/')}/gate/decisions/{decision_id}"


def pr_state_of(pr: PullRequest | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The PR state (contract 2) of a forge ``PullRequest`` or a mapping, type-checked."""
    if pr is None:
        return None
    to_state = getattr(pr, "to_pr_state", None)
    if callable(to_state):
        state = to_state()
        return dict(state)
    if not isinstance(pr, Mapping):
        raise InputError("the PR state must be a JSON object", field="pr")
    state = dict(pr)
    for key, kind in (("number", int), ("headSha", str), ("reviews", list), ("labels", list),
                      ("checks", dict), ("draft", bool)):  # fmt: skip
        if key in state and state[key] is not None and not isinstance(state[key], kind):
            raise InputError(f"must be of type {kind.__name__}", field=f"pr.{key}")
    return state


def _statement_head(statement: Mapping[str, Any]) -> str | None:
    change = (statement.get("predicate") or {}).get("change") or {}
    head = change.get("head") or {}
    sha = head.get("sha") if isinstance(head, Mapping) else None
    return sha if isinstance(sha, str) else None


def _statement_repository(statement: Mapping[str, Any]) -> str | None:
    change = (statement.get("predicate") or {}).get("change") or {}
    repository = change.get("repository")
    return repository if isinstance(repository, str) and repository else None


@dataclass(frozen=True)
class Verdict:
    """A decision before it is stored: the policy's decision, adjusted for the PR head."""

    decision: str
    rules: list[dict[str, Any]]
    policy_name: str
    policy_digest: str
    head_sha: str | None


def decide(
    policy: Policy, statement: Mapping[str, Any], pr_state: Mapping[str, Any] | None
) -> Verdict:
    """Evaluate ``policy``; a passport for another head than the PR's is ``pending``."""
    from policies import evaluate

    result = evaluate(policy, statement, pr_state)
    decision: str = result.decision
    rules = [rule.to_json() for rule in result.rules]
    passport_head = _statement_head(statement)
    pr_head = pr_state.get("headSha") if pr_state else None
    if isinstance(pr_head, str) and pr_head and passport_head and pr_head != passport_head:
        decision = "pending"
        rules.insert(0, {
            "name": _HEAD_RULE,
            "kind": "require",
            "state": "pending",
            "reasons": [
                f"the passport is for {passport_head[:12]} but the pull request head is "
                f"{pr_head[:12]}: build and evaluate a passport for the new head"
            ],
            "message": None,
        })  # fmt: skip
    head = pr_head if isinstance(pr_head, str) and pr_head else passport_head
    return Verdict(decision, rules, result.policy_name, result.policy_digest, head)


class MergeGate:
    """Evaluates policies over passports and PR states; stores and publishes decisions."""

    status_context = "writgate/merge-gate"

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        ledger: Ledger | None = None,
        forge: Forge | None = None,
        public_url: str | None = None,
        home: Path | None = None,
        allow_program_reviewers: bool = False,
    ):
        from passport import PassportStore

        # Reviews the gate runs itself (PRs judged over the API) configure reviewers from
        # requests and from the repositories' own .writgate.yml: programs stay off by default.
        self.allow_program_reviewers = allow_program_reviewers
        self.home = Path(home) if home is not None else Path(".writgate").absolute()
        self.engine = engine
        self.ledger = ledger or Ledger(engine=engine)
        self.forge = forge
        self.public_url = (public_url or public_url_from_env()).rstrip("/")
        self.decisions = DecisionStore(engine=engine, ledger=self.ledger)
        self.passports = PassportStore(engine=engine)

    def forge_for(self, org_id: str) -> Forge:
        if self.forge is None:
            raise ConfigError("publishing needs a forge; none is configured for the merge gate")
        for_org = getattr(self.forge, "for_org", None)
        forge: Forge = for_org(org_id) if callable(for_org) else self.forge
        return forge

    def publisher(self, org_id: str) -> Publisher:
        """The status-check publisher for ``org_id``."""
        return Publisher(
            forge=self.forge_for(org_id),
            public_url=self.public_url,
            context=self.status_context,
        )

    async def evaluate(
        self,
        org_id: str,
        *,
        policy: Policy,
        statement: Mapping[str, Any],
        pr: PullRequest | Mapping[str, Any] | None = None,
        repository: str | None = None,
        publish: bool = False,
        envelope: Mapping[str, Any] | None = None,
    ) -> GateDecision:
        """Decide, store the decision, and publish it when ``publish`` (needs a forge and a PR)."""
        from passport import check_statement, passport_id

        statement = check_statement(dict(statement), "statement")
        pr_state = pr_state_of(pr)
        repository = (
            repository or getattr(pr, "repository", None) or _statement_repository(statement)
        )
        verdict = decide(policy, statement, pr_state)
        stored = await self.passports.save(org_id, statement, envelope)
        decision = await self.decisions.record(
            org_id,
            decision=verdict.decision,
            rules=verdict.rules,
            policy_name=verdict.policy_name,
            policy_digest=verdict.policy_digest,
            policy=policy.to_json(),
            passport_id=passport_id(statement),
            passport_ref=stored.id,
            head_sha=verdict.head_sha,
            repository=repository,
            pr_number=pr_state.get("number") if pr_state else None,
            pr_state=pr_state,
        )
        if publish:
            decision = await self.publish(org_id, decision, statement=statement)
        return decision

    async def publish(
        self, org_id: str, decision: GateDecision, *, statement: Mapping[str, Any]
    ) -> GateDecision:
        """Post the commit status, the check run and the passport comment of ``decision``."""
        if decision.repository is None or decision.head_sha is None:
            raise InputError(
                "publishing needs the repository and the head commit", field="repository"
            )
        publication = await self.publisher(org_id).publish(decision, statement)
        return await self.decisions.set_publication(org_id, decision.id, publication)

    async def get(self, org_id: str, decision_id: str) -> GateDecision:
        """A stored decision."""
        return await self.decisions.get(org_id, decision_id)

    async def refresh(
        self, org_id: str, *, repository: str, number: int, publish: bool = True
    ) -> GateDecision | None:
        """Re-evaluate the PR's current decision with its current approvals and checks.

        Returns the new decision, or ``None`` when the PR has no decision for its head (a new
        head: the old decisions are marked ``stale`` and the status set back to pending).
        """
        from policies import parse_policy

        forge = self.forge_for(org_id)
        pr = await forge.get_pull_request(repository, number)
        current = await self.decisions.current(org_id, repository=repository, pr_number=number)
        if current is None or current.head_sha != pr.head_sha:
            await self.synchronize(org_id, pr=pr, publish=publish)
            return None
        if current.passport_ref is None:
            raise NotFoundError(f"decision {current.id} has no stored passport")
        stored = await self.passports.get(org_id, current.passport_ref)
        policy = parse_policy(json.dumps(dict(current.policy)), source=f"decision {current.id}")
        return await self.evaluate(
            org_id,
            policy=policy,
            statement=stored.statement,
            pr=pr,
            repository=repository,
            publish=publish,
        )

    async def synchronize(self, org_id: str, *, pr: PullRequest, publish: bool = True) -> list[str]:
        """A PR got a new head: mark older decisions stale, set the status back to pending."""
        stale = await self.decisions.mark_stale(
            org_id, repository=pr.repository, pr_number=pr.number, head_sha=pr.head_sha
        )
        if publish:
            await self.publisher(org_id).pending(
                pr.repository,
                pr.head_sha,
                "Waiting for a review and a passport of this head.",
            )
        return stale

    async def merge_group(
        self,
        org_id: str,
        *,
        repository: str,
        head_sha: str,
        merge_group_sha: str,
        publish: bool = True,
    ) -> GateDecision:
        """Reuse the current decision of the PR head ``head_sha`` for a merge-queue commit."""
        decision = await self.decisions.current(org_id, repository=repository, head_sha=head_sha)
        if decision is None:
            if publish:
                await self.publisher(org_id).pending(
                    repository, merge_group_sha, "No merge-gate decision for the PR head yet."
                )
            raise NotFoundError(
                f"no current merge-gate decision for {repository}@{head_sha[:12]}",
                field="headSha",
            )
        if publish:
            await self.publisher(org_id).status(repository, merge_group_sha, decision)
        return decision

    async def merge(self, org_id: str, *, repository: str, number: int) -> PullRequest:
        """Merge the PR through the forge, only when its current decision allows its head."""
        forge = self.forge_for(org_id)
        pr = await forge.get_pull_request(repository, number)
        current = await self.decisions.current(org_id, repository=repository, pr_number=number)
        if current is None or current.head_sha != pr.head_sha:
            raise MergeRefused(
                f"pull request #{number} has no merge-gate decision for head {pr.head_sha[:12]}"
            )
        if current.decision != "allow":
            reasons = current.reasons
            raise MergeRefused(
                f"the merge gate says {current.decision} for #{number}"
                + (f": {reasons[0]}" if reasons else ""),
                decision=current.id,
            )
        return await forge.merge_pull_request(repository, number)

    async def handle_forge_event(self, org_id: str, event: Event) -> GateDecision | None:
        """React to a forge ledger event: a review or another context's status re-evaluates, a
        new head (``pr.synchronize``) marks the decision stale."""
        data = event.data
        repository, number = data.get("repository"), data.get("number")
        if not isinstance(repository, str) or not isinstance(number, int):
            return None
        if event.type in ("pr.review", "pr.labeled", "pr.updated", "pr.synchronize"):
            return await self.refresh(org_id, repository=repository, number=number)
        own = (self.status_context, Publisher.check_name)
        if event.type == "status.set" and data.get("context") not in own:
            return await self.refresh(org_id, repository=repository, number=number)
        if event.type in ("check_run.created", "check_run.updated") and data.get("name") not in own:
            return await self.refresh(org_id, repository=repository, number=number)
        return None
