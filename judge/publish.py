"""Status checks on the forge: the commit status, the check run and the passport comment.

- Commit status ``writgate/merge-gate``: ``success`` / ``failure`` / ``pending`` with a
  description of at most 140 characters (the decision and its first reason) and a link to the
  decision's dashboard page.
- Check run ``writgate merge gate``: a Markdown summary (decision, every rule's state and reasons,
  passport summary) and one annotation per finding with a line (the forge sends them 50 per
  request). One check run per head: re-publishing updates it, and annotations are sent once.
- One PR comment carrying the rendered passport, updated in place.

Publishing twice is harmless: the status is simply reported again, the check run and the comment
are updated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from .store import GateDecision

if TYPE_CHECKING:
    from forge import Annotation, Forge

__all__ = ["MAX_ANNOTATIONS", "Publisher", "render_check_summary", "status_description"]

MAX_ANNOTATIONS = 1000
_DESCRIPTION_LIMIT = 140
_STATE = {"allow": "success", "block": "failure", "pending": "pending"}
_LABEL = {"allow": "Allowed", "block": "Blocked", "pending": "Pending"}
_LEVEL = {"error": "failure", "warning": "warning", "info": "notice"}
_STATE_ICONS = {
    "satisfied": "✅",
    "unsatisfied": "❌",
    "pending": "⏳",
    "skipped": "⏭",
    "error": "⚠️",
}
_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=jinja2.ChainableUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    trim_blocks=False,
)


def _markdown_text(value: Any) -> str:
    """Text safe inside a Markdown table cell (pipes and newlines escaped, HTML neutralised)."""
    text = str(value)
    return (
        text.replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\r", " ")
        .replace("\n", " ")
    )


_environment.filters["md"] = _markdown_text


def _truncate(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def status_description(decision: GateDecision) -> str:
    """``Blocked: <first reason>`` in at most 140 characters."""
    reasons = decision.reasons
    label = _LABEL.get(decision.decision, decision.decision)
    text = f"{label}: {reasons[0]}" if reasons else f"{label} by policy {decision.policy_name}"
    return _truncate(text, _DESCRIPTION_LIMIT)


def _findings(statement: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    for review in (statement.get("predicate") or {}).get("reviews") or []:
        if isinstance(review, Mapping):
            found.extend(f for f in review.get("findings") or [] if isinstance(f, Mapping))
    return found


def annotations_for(statement: Mapping[str, Any]) -> list[Annotation]:
    """One annotation per finding that has a path and a line, most severe first."""
    from forge import Annotation

    order = {"error": 0, "warning": 1, "info": 2}
    located = [
        f
        for f in _findings(statement)
        if isinstance(f.get("path"), str) and isinstance(f.get("startLine"), int)
    ]
    located.sort(key=lambda f: (order.get(str(f.get("severity")), 3), f["path"], f["startLine"]))
    annotations = []
    for finding in located[:MAX_ANNOTATIONS]:
        start = int(finding["startLine"])
        end = finding.get("endLine")
        end_line = end if isinstance(end, int) and end >= start else start
        message = str(finding.get("message") or "")
        if finding.get("suggestion"):
            message += f"\n\nSuggestion: {finding['suggestion']}"
        annotations.append(
            Annotation(
                path=str(finding["path"]),
                start_line=start,
                end_line=end_line,
                annotation_level=_LEVEL.get(str(finding.get("severity")), "notice"),  # type: ignore[arg-type]
                message=_truncate(message, 4000) if "\n" not in message else message[:4000],
                title=f"{finding.get('reviewer')}/{finding.get('rule')}"[:255],
            )
        )
    return annotations


def render_check_summary(
    decision: GateDecision,
    statement: Mapping[str, Any],
    *,
    url: str | None = None,
    annotated: int = 0,
) -> str:
    """The check run's Markdown summary."""
    predicate = statement.get("predicate") or {}
    return _environment.get_template("check_summary.md.j2").render(
        decision=decision,
        reasons=decision.reasons,
        predicate=predicate,
        reviews=[r for r in predicate.get("reviews") or [] if isinstance(r, Mapping)],
        url=url,
        state_icons=_STATE_ICONS,
        annotated=annotated,
        total_findings=len(_findings(statement)),
    )


class Publisher:
    """Posts a decision's status checks on one forge."""

    check_name = "writgate merge gate"
    comment_marker = "writgate-passport"

    def __init__(self, *, forge: Forge, public_url: str, context: str = "writgate/merge-gate"):
        self.forge = forge
        self.public_url = public_url.rstrip("/")
        self.context = context

    def url(self, decision_id: str) -> str:
        """The dashboard page of a decision."""
        return f"{self.public_url}/gate/decisions/{decision_id}"

    async def status(self, repository: str, sha: str, decision: GateDecision) -> dict[str, Any]:
        """Report the decision as the commit status on ``sha``."""
        state = _STATE[decision.decision]
        description = status_description(decision)
        await self.forge.set_commit_status(
            repository,
            sha,
            context=self.context,
            state=state,  # type: ignore[arg-type]
            description=description,
            target_url=self.url(decision.id),
        )
        return {
            "context": self.context,
            "sha": sha,
            "state": state,
            "description": description,
            "targetUrl": self.url(decision.id),
        }

    async def pending(self, repository: str, sha: str, description: str) -> None:
        """A pending status with ``description`` (a new head, no decision yet)."""
        await self.forge.set_commit_status(
            repository,
            sha,
            context=self.context,
            state="pending",
            description=_truncate(description, _DESCRIPTION_LIMIT),
        )

    async def check_run(
        self, repository: str, sha: str, decision: GateDecision, statement: Mapping[str, Any]
    ) -> int:
        """Create or update the head's check run; annotations go with its creation only."""
        status, conclusion = (
            ("in_progress", None)
            if decision.decision == "pending"
            else ("completed", "success" if decision.decision == "allow" else "failure")
        )
        title = f"Merge gate: {decision.decision}"
        existing = [
            run for run in await self.forge.list_check_runs(repository, sha)
            if run.name == self.check_name
        ]  # fmt: skip
        if existing:
            run = existing[0]
            summary = render_check_summary(
                decision, statement, url=self.url(decision.id), annotated=run.annotations_count
            )
            updated = await self.forge.update_check_run(
                repository, run.id, status=status, conclusion=conclusion, title=title,
                summary=summary,
            )  # fmt: skip
            return updated.id
        annotations: Sequence[Annotation] = annotations_for(statement)
        summary = render_check_summary(
            decision, statement, url=self.url(decision.id), annotated=len(annotations)
        )
        created = await self.forge.create_check_run(
            repository, sha, name=self.check_name, status=status, conclusion=conclusion,
            title=title, summary=summary, annotations=annotations,
        )  # fmt: skip
        return created.id

    async def comment(
        self, repository: str, number: int, decision: GateDecision, statement: Mapping[str, Any]
    ) -> int:
        """Create or update the PR comment with the rendered passport and the decision."""
        from passport import render_markdown

        reasons = decision.reasons
        body = render_markdown(statement).rstrip() + (
            f"\n\n**Merge gate: {decision.decision}**"
            + (f" — {_truncate(reasons[0], 300)}" if reasons else "")
            + f" ([decision]({self.url(decision.id)}))\n"
        )
        comment = await self.forge.upsert_comment(
            repository, number, marker=self.comment_marker, body=body
        )
        return comment.id

    async def publish(self, decision: GateDecision, statement: Mapping[str, Any]) -> dict[str, Any]:
        """Status, check run and (for a PR) the comment; returns where they went."""
        assert decision.repository is not None and decision.head_sha is not None
        repository, sha = decision.repository, decision.head_sha
        publication: dict[str, Any] = {"status": await self.status(repository, sha, decision)}
        publication["checkRunId"] = await self.check_run(repository, sha, decision, statement)
        if decision.pr_number is not None:
            publication["commentId"] = await self.comment(
                repository, decision.pr_number, decision, statement
            )
        publication["publishedAt"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        return publication
