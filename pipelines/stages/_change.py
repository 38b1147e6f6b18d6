"""Where judge stages find the change: the upstream writer's outputs, or explicit ``with:``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from writgate.git import mirror
from writgate.settings import Settings

from ..context import StageContext
from ..errors import StageFailure

__all__ = ["ChangeRef", "resolve_change"]


@dataclass(frozen=True)
class ChangeRef:
    """A change to judge: a local repository holding both commits, and its forge identity."""

    repo: Path
    repository: str
    base: str
    head: str
    pull_request: dict[str, Any] | None
    writer: dict[str, Any] | None
    validation: dict[str, Any] | None


async def resolve_change(ctx: StageContext) -> ChangeRef:
    """The change of the upstream writer stage, or of ``with: {repo, base, head}``."""
    params = ctx.params
    if "repo" in params:
        repo = ctx.resolve_path(str(params["repo"]))
        return ChangeRef(
            repo=repo,
            repository=str(params.get("repository") or repo.name),
            base=str(params.get("base", "HEAD~1")),
            head=str(params.get("head", "HEAD")),
            pull_request=None,
            writer=None,
            validation=None,
        )
    upstream = ctx.upstream_of_kind("writer")
    if upstream is None:
        raise StageFailure(
            f"stage {ctx.stage_id} needs an upstream writer stage or with.repo", retryable=False
        )
    outputs = upstream.outputs
    repository = str(outputs["repository"])
    base, head = str(outputs["baseSha"]), str(outputs["headSha"])
    forge = ctx.services["forge_for"](ctx.org_id)
    settings = ctx.settings or Settings.from_env()
    url = await forge.clone_url(repository)
    local = await mirror(settings.home / "mirrors", url, refs=[base, head])
    pr = outputs.get("pullRequest")
    return ChangeRef(
        repo=local,
        repository=repository,
        base=base,
        head=head,
        pull_request=dict(pr) if pr else None,
        writer=dict(outputs.get("provenance") or {}) or None,
        validation=outputs.get("validation"),
    )
