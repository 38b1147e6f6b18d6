"""Judging a pull request on a forge: fetch it, review it, build its passport, decide.

The PR's commits are fetched into a bare mirror under ``<home>/judge/mirrors`` (any forge: the
local forge's clone URL is a path, GitHub's an https URL), and the change reviewed is the PR's:
from the merge base of the base branch and the head, to the head (what GitHub shows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from writgate.git import GitError, mirror, run_git

from .errors import JudgeError
from .review import ReviewResult, review_change
from .store import GateDecision, ReviewRun, ReviewStore

if TYPE_CHECKING:
    from forge import Forge, PullRequest
    from policies import Policy

    from .gate import MergeGate

__all__ = ["PullRequestVerdict", "checkout_pull_request", "judge_pull_request"]


@dataclass(frozen=True)
class PullRequestVerdict:
    """What judging a PR produced."""

    decision: GateDecision
    review_run: ReviewRun
    statement: dict[str, Any]
    pull_request: PullRequest

    def to_json(self) -> dict[str, Any]:
        """API shape."""
        from passport import passport_id

        return {
            "decision": self.decision.to_json(),
            "reviewRun": self.review_run.to_json(with_findings=False),
            "passportId": passport_id(self.statement),
        }


async def checkout_pull_request(
    forge: Forge, repository: str, number: int, *, home: Path
) -> tuple[PullRequest, Path, str]:
    """The PR, a local bare mirror holding its commits, and the base commit of its change."""
    pr = await forge.get_pull_request(repository, number)
    url = await forge.clone_url(repository)
    refs = [pr.head_sha, f"refs/pull/{number}/head", f"refs/heads/{pr.base}"]
    try:
        path = await mirror(home / "judge" / "mirrors", url, refs=refs)
        base_tip = pr.base_sha
        tip = await run_git(
            ["rev-parse", "--verify", "--quiet", f"refs/heads/{pr.base}^{{commit}}"],
            cwd=path,
            check=False,
        )
        if pr.state == "open" and tip.strip():
            base_tip = tip.decode().strip()
        merge_base = (await run_git(["merge-base", base_tip, pr.head_sha], cwd=path)).decode()
    except GitError as exc:
        raise JudgeError(f"cannot fetch pull request #{number} of {repository}: {exc}") from exc
    return pr, path, merge_base.strip()


def _pull_request_facts(pr: PullRequest) -> dict[str, Any]:
    return {
        "number": pr.number,
        "url": pr.url,
        "draft": pr.draft,
        "title": pr.title,
        "author": pr.author,
        "labels": list(pr.labels),
    }


async def judge_pull_request(
    gate: MergeGate,
    org_id: str,
    *,
    repository: str,
    number: int,
    policy: Policy,
    home: Path,
    reviewers: Sequence[str] | None = None,
    config: Mapping[str, Any] | None = None,
    writer: Mapping[str, Any] | None = None,
    validation: Sequence[Mapping[str, Any]] = (),
    provenance_verified: bool = False,
    provenance_reason: str | None = None,
    publish: bool = True,
) -> PullRequestVerdict:
    """Review the PR, store the review run, build its passport and evaluate ``policy``."""
    from passport import NO_PROVENANCE, build_passport

    forge = gate.forge_for(org_id)
    pr, path, base = await checkout_pull_request(forge, repository, number, home=home)
    result: ReviewResult = await review_change(
        path,
        base,
        pr.head_sha,
        reviewers=reviewers,
        config=config,
        allow_programs=gate.allow_program_reviewers,
    )
    run = await ReviewStore(engine=gate.engine, ledger=gate.ledger).save(
        org_id,
        result,
        repository=repository,
        pr_number=number,
        base_ref=pr.base,
        head_ref=pr.head,
    )
    statement = await build_passport(
        path,
        base,
        pr.head_sha,
        repository=repository,
        pull_request=_pull_request_facts(pr),
        writer=writer,
        validation=validation,
        reviews=result.to_passport_reviews(),
        provenance_verified=provenance_verified,
        provenance_reason=provenance_reason or NO_PROVENANCE,
    )
    decision = await gate.evaluate(
        org_id, policy=policy, statement=statement, pr=pr, repository=repository, publish=publish
    )
    return PullRequestVerdict(
        decision=decision, review_run=run, statement=statement, pull_request=pr
    )
