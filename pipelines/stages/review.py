"""The ``review`` stage: built-in and configured reviewers over the upstream change."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from judge import review_change

from ..context import StageContext
from . import register
from ._change import resolve_change

__all__ = ["run_review"]


async def run_review(ctx: StageContext) -> Mapping[str, Any]:
    """Review the change; findings are outputs, never a stage failure."""
    change = await resolve_change(ctx)
    names = ctx.params.get("reviewers")
    result = await review_change(
        change.repo,
        change.base,
        change.head,
        reviewers=list(names) if names is not None else None,
        config=ctx.params.get("config"),
    )
    by_severity = {"error": 0, "warning": 0, "info": 0}
    for finding in result.findings:
        by_severity[finding.severity] = by_severity.get(finding.severity, 0) + 1
    return {
        "findings": len(result.findings),
        "bySeverity": by_severity,
        "reviews": result.to_passport_reviews(),
        "failedReviewers": [outcome.name for outcome in result.failed],
    }


register("review", run_review)
