"""Commit statuses, check runs (with annotations) and persistent comments of the local forge."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from writgate import db

from ._local_base import (
    _DESCRIPTION_LIMIT,
    LocalForgeBase,
    _annotation,
    _check_run,
    _now,
    _status,
    _truncate,
    _utc,
    translate_store_errors,
)
from .errors import ForgeInputError, ForgeNotFound
from .protocol import (
    ANNOTATION_LEVELS,
    CHECK_CONCLUSIONS,
    CHECK_STATUSES,
    STATUS_STATES,
    Annotation,
    CheckRun,
    Comment,
    CommitStatus,
    StatusState,
    hidden_marker,
)
from .tables import (
    check_annotations,
    check_runs,
    comments,
    commit_statuses,
)

__all__ = ["LocalChecks"]


@translate_store_errors
class LocalChecks(LocalForgeBase):
    """Statuses, check runs and comments: the parts of the local forge a CI or a judge writes."""

    async def set_commit_status(
        self,
        repository: str,
        sha: str,
        *,
        context: str,
        state: StatusState,
        description: str,
        target_url: str | None = None,
        creator: str | None = None,
    ) -> CommitStatus:
        """Report ``state`` for ``context`` on ``sha`` (descriptions past 140 chars are cut)."""
        if state not in STATUS_STATES:
            raise ForgeInputError(
                f"state must be one of {', '.join(STATUS_STATES)}, not {state!r}", field="state"
            )
        if not context.strip() or len(context) > 255:
            raise ForgeInputError("context must be 1 to 255 characters", field="context")
        repo = await self.get_repository(repository)
        full = await self._commit(repo, sha)
        description = _truncate(description, _DESCRIPTION_LIMIT)
        now = _now()
        creator = creator or self.bot_user
        async with self.ledger.transaction() as conn:
            status_id = (
                await conn.execute(
                    commit_statuses.insert()
                    .values(
                        org_id=self.org,
                        repository_id=repo.id,
                        sha=full,
                        context=context,
                        state=state,
                        description=description,
                        target_url=target_url,
                        creator=creator,
                        created_at=now,
                    )
                    .returning(commit_statuses.c.id)
                )
            ).scalar_one()
            for pr_id, number in await self._prs_at(conn, repo, full):
                await self._event(
                    conn,
                    pr_id,
                    "status.set",
                    repo,
                    number,
                    sha=full,
                    context=context,
                    state=state,
                    description=description,
                    targetUrl=target_url,
                )
        return CommitStatus(
            id=status_id,
            sha=full,
            context=context,
            state=state,
            description=description,
            target_url=target_url,
            created_at=now,
            creator=creator,
        )

    async def list_commit_statuses(self, repository: str, sha: str) -> list[CommitStatus]:
        """Every status reported on ``sha``, newest first."""
        repo = await self.get_repository(repository)
        full = await self._commit(repo, sha)
        async with db.read(self.engine) as conn:
            rows = (
                await conn.execute(
                    select(commit_statuses)
                    .where(
                        commit_statuses.c.org_id == self.org,
                        commit_statuses.c.repository_id == repo.id,
                        commit_statuses.c.sha == full,
                    )
                    .order_by(commit_statuses.c.id.desc())
                )
            ).all()
        return [_status(row) for row in rows]

    async def create_check_run(
        self,
        repository: str,
        sha: str,
        *,
        name: str,
        status: str,
        conclusion: str | None,
        title: str,
        summary: str,
        annotations: Sequence[Annotation] = (),
    ) -> CheckRun:
        """Create a check run on ``sha`` with its annotations."""
        if not name.strip():
            raise ForgeInputError("a check run needs a name", field="name")
        status, conclusion = _check_state(status, conclusion)
        _validate_annotations(annotations)
        repo = await self.get_repository(repository)
        full = await self._commit(repo, sha)
        now = _now()
        async with self.ledger.transaction() as conn:
            run_id = (
                await conn.execute(
                    check_runs.insert()
                    .values(
                        org_id=self.org,
                        repository_id=repo.id,
                        head_sha=full,
                        name=name,
                        status=status,
                        conclusion=conclusion,
                        title=title,
                        summary=summary,
                        started_at=now,
                        completed_at=now if status == "completed" else None,
                    )
                    .returning(check_runs.c.id)
                )
            ).scalar_one()
            await _insert_annotations(conn, run_id, annotations)
            for pr_id, number in await self._prs_at(conn, repo, full):
                await self._event(
                    conn,
                    pr_id,
                    "check_run.created",
                    repo,
                    number,
                    checkRunId=run_id,
                    sha=full,
                    name=name,
                    status=status,
                    conclusion=conclusion,
                    annotations=len(annotations),
                )
        return await self.get_check_run(repository, run_id)

    async def update_check_run(
        self,
        repository: str,
        check_run_id: int,
        *,
        status: str | None = None,
        conclusion: str | None = None,
        title: str | None = None,
        summary: str | None = None,
        annotations: Sequence[Annotation] = (),
    ) -> CheckRun:
        """Update a check run; ``annotations`` are added to those it already has."""
        current = await self.get_check_run(repository, check_run_id, with_annotations=False)
        repo = await self.get_repository(repository)
        if status is not None or conclusion is not None:
            status, conclusion = _check_state(status or current.status, conclusion)
        _validate_annotations(annotations)
        values: dict[str, Any] = {}
        if status is not None:
            values["status"] = status
            values["conclusion"] = conclusion
            if status == "completed" and current.completed_at is None:
                values["completed_at"] = _now()
            elif status != "completed":
                values["completed_at"] = None  # re-run: in progress again
        if title is not None:
            values["title"] = title
        if summary is not None:
            values["summary"] = summary
        async with self.ledger.transaction() as conn:
            if values:
                await conn.execute(
                    update(check_runs)
                    .where(check_runs.c.id == check_run_id, check_runs.c.org_id == self.org)
                    .values(**values)
                )
            await _insert_annotations(conn, check_run_id, annotations)
            for pr_id, number in await self._prs_at(conn, repo, current.head_sha):
                await self._event(
                    conn,
                    pr_id,
                    "check_run.updated",
                    repo,
                    number,
                    checkRunId=check_run_id,
                    sha=current.head_sha,
                    name=current.name,
                    status=values.get("status", current.status),
                    conclusion=values.get("conclusion", current.conclusion),
                    annotations=len(annotations),
                )
        return await self.get_check_run(repository, check_run_id)

    async def get_check_run(
        self, repository: str, check_run_id: int, *, with_annotations: bool = True
    ) -> CheckRun:
        """One check run (with its annotations unless told otherwise)."""
        repo = await self.get_repository(repository)
        async with db.read(self.engine) as conn:
            row = (
                await conn.execute(
                    select(check_runs).where(
                        check_runs.c.id == check_run_id,
                        check_runs.c.org_id == self.org,
                        check_runs.c.repository_id == repo.id,
                    )
                )
            ).first()
            if row is None:
                raise ForgeNotFound(
                    f"check run {check_run_id} does not exist in {repository}",
                    field="check_run_id",
                )
            counts = await _annotation_counts(conn, [row.id])
            found: tuple[Annotation, ...] = ()
            if with_annotations:
                found = tuple(
                    _annotation(a)
                    for a in (
                        await conn.execute(
                            select(check_annotations)
                            .where(check_annotations.c.check_run_id == row.id)
                            .order_by(check_annotations.c.id)
                        )
                    ).all()
                )
        return _check_run(row, counts.get(row.id, 0), found)

    async def list_check_runs(self, repository: str, sha: str) -> list[CheckRun]:
        """The check runs on ``sha``, newest first (annotations not included)."""
        repo = await self.get_repository(repository)
        full = await self._commit(repo, sha)
        async with db.read(self.engine) as conn:
            rows = (
                await conn.execute(
                    select(check_runs)
                    .where(
                        check_runs.c.org_id == self.org,
                        check_runs.c.repository_id == repo.id,
                        check_runs.c.head_sha == full,
                    )
                    .order_by(check_runs.c.id.desc())
                )
            ).all()
            counts = await _annotation_counts(conn, [row.id for row in rows])
        return [_check_run(row, counts.get(row.id, 0)) for row in rows]

    # -- comments ----------------------------------------------------------------------------

    async def upsert_comment(
        self, repository: str, number: int, *, marker: str, body: str
    ) -> Comment:
        """Create or update the one comment that carries ``<!-- marker -->``."""
        if not marker.strip() or "--" in marker:
            raise ForgeInputError(
                "a marker must be non-empty and must not contain '--'", field="marker"
            )
        hidden = hidden_marker(marker)
        text = body if hidden in body else f"{hidden}\n{body}"
        repo, row = await self._pull_request_row(repository, number)
        now = _now()
        async with self.ledger.transaction() as conn:
            existing = [
                c
                for c in (
                    await conn.execute(
                        select(comments)
                        .where(comments.c.pull_request_id == row.id, comments.c.org_id == self.org)
                        .order_by(comments.c.id)
                    )
                ).all()
                if hidden in c.body
            ]
            if existing:
                comment_id = existing[0].id
                created = _utc(existing[0].created_at)
                await conn.execute(
                    update(comments)
                    .where(comments.c.id == comment_id)
                    .values(body=text, updated_at=now)
                )
                event = "comment.updated"
            else:
                comment_id = (
                    await conn.execute(
                        comments.insert()
                        .values(
                            org_id=self.org,
                            pull_request_id=row.id,
                            author=self.bot_user,
                            body=text,
                            created_at=now,
                            updated_at=now,
                        )
                        .returning(comments.c.id)
                    )
                ).scalar_one()
                created = now
                event = "comment.created"
            await self._event(
                conn, row.id, event, repo, number, commentId=comment_id, marker=marker
            )
        return Comment(
            id=comment_id, body=text, author=self.bot_user, created_at=created, updated_at=now
        )

    async def list_comments(self, repository: str, number: int) -> list[Comment]:
        """The pull request's comments, oldest first."""
        _repo, row = await self._pull_request_row(repository, number)
        async with db.read(self.engine) as conn:
            rows = (
                await conn.execute(
                    select(comments)
                    .where(comments.c.pull_request_id == row.id, comments.c.org_id == self.org)
                    .order_by(comments.c.id)
                )
            ).all()
        return [
            Comment(
                id=c.id,
                body=c.body,
                author=c.author,
                created_at=_utc(c.created_at),
                updated_at=_utc(c.updated_at),
            )
            for c in rows
        ]


def _check_state(status: str, conclusion: str | None) -> tuple[str, str | None]:
    if conclusion is not None and conclusion not in CHECK_CONCLUSIONS:
        raise ForgeInputError(
            f"conclusion must be one of {', '.join(CHECK_CONCLUSIONS)}, not {conclusion!r}",
            field="conclusion",
        )
    if conclusion is not None:
        status = "completed"  # as on GitHub: a conclusion completes the run
    if status not in CHECK_STATUSES:
        raise ForgeInputError(
            f"status must be one of {', '.join(CHECK_STATUSES)}, not {status!r}", field="status"
        )
    if status == "completed" and conclusion is None:
        raise ForgeInputError("a completed check run needs a conclusion", field="conclusion")
    return status, conclusion


def _validate_annotations(annotations: Sequence[Annotation]) -> None:
    for i, a in enumerate(annotations):
        where = f"annotations[{i}]"
        if a.annotation_level not in ANNOTATION_LEVELS:
            raise ForgeInputError(
                f"annotation_level must be one of {', '.join(ANNOTATION_LEVELS)}",
                field=f"{where}.annotation_level",
            )
        if not a.path:
            raise ForgeInputError("an annotation needs a path", field=f"{where}.path")
        if a.start_line < 1 or a.end_line < a.start_line:
            raise ForgeInputError(
                "lines must satisfy 1 <= start_line <= end_line", field=f"{where}.start_line"
            )
        if not a.message:
            raise ForgeInputError("an annotation needs a message", field=f"{where}.message")


async def _insert_annotations(
    conn: AsyncConnection, run_id: int, annotations: Sequence[Annotation]
) -> None:
    if not annotations:
        return
    await conn.execute(
        check_annotations.insert(),
        [
            {
                "check_run_id": run_id,
                "path": a.path,
                "start_line": a.start_line,
                "end_line": a.end_line,
                "start_column": a.start_column,
                "end_column": a.end_column,
                "annotation_level": a.annotation_level,
                "message": a.message,
                "title": a.title,
                "raw_details": a.raw_details,
            }
            for a in annotations
        ],
    )


async def _annotation_counts(conn: AsyncConnection, run_ids: Sequence[int]) -> dict[int, int]:
    if not run_ids:
        return {}
    rows = (
        await conn.execute(
            select(check_annotations.c.check_run_id, func.count())
            .where(check_annotations.c.check_run_id.in_(run_ids))
            .group_by(check_annotations.c.check_run_id)
        )
    ).all()
    return {int(run_id): int(count) for run_id, count in rows}
