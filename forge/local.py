"""The embedded local forge: bare git repositories on disk, pull requests in the database.

Repositories ``owner/name`` of the default org are bare repositories under
``<home>/forge/<owner>/<name>.git`` (other orgs: ``<home>/forge/_orgs/<org>/<owner>/<name>.git``);
anyone can ``git clone``, ``fetch`` and ``push`` them by path. Pull requests, reviews, labels,
commit statuses, check runs and comments live in the ``forge_*`` tables; every change to a pull
request is also an event in the ledger under the pull request's id (``pr_…``).

A pull request's head follows its branch: whenever a pull request is read, its branch tip is
compared with the recorded head, and a new tip is recorded (``pr.synchronize``). A review
records the head it was made on, so approvals of an older head are *stale*.

Merging is guarded like a protected branch on a real forge: it is refused while any required
context (default ``writgate/merge-gate``) is not ``success`` on the head commit, while the pull
request is a draft, or when the branches conflict.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from sqlalchemy import Row, select, update

from writgate import db
from writgate.ids import is_id, new_id

from . import _bare
from ._local_base import DEFAULT_REQUIRED_CONTEXTS, Page, Repository, _now, translate_store_errors
from ._local_checks import LocalChecks
from .errors import ForgeConflict, ForgeInputError, MergeRefused
from .protocol import (
    REVIEW_STATES,
    Commit,
    PullRequest,
    PullRequestFile,
    Review,
)
from .tables import (
    pull_requests,
    repositories,
    reviews,
)

__all__ = ["DEFAULT_REQUIRED_CONTEXTS", "LocalForge", "Page", "Repository"]


@translate_store_errors
class LocalForge(LocalChecks):
    """The embedded forge (see the module docstring); one instance serves one org.

    ``for_org(org)`` returns a view of the same forge for another org.
    """

    # -- pull requests -----------------------------------------------------------------------

    async def open_pull_request(
        self,
        repository: str,
        *,
        head: str,
        base: str,
        title: str,
        body: str = "",
        draft: bool = False,
        author: str | None = None,
    ) -> PullRequest:
        """Open a pull request from branch ``head`` into branch ``base``."""
        repo = await self.get_repository(repository)
        await _bare.validate_branch(head, field="head")
        await _bare.validate_branch(base, field="base")
        if not title.strip():
            raise ForgeInputError("a pull request needs a title", field="title")
        if head == base:
            raise ForgeInputError("head and base are the same branch", field="head")
        tips = await _bare.branch_tips(repo.path)
        if head not in tips:
            raise ForgeInputError(f"branch {head!r} does not exist in {repository}", field="head")
        if base not in tips:
            raise ForgeInputError(f"branch {base!r} does not exist in {repository}", field="base")
        if await _bare.is_ancestor(repo.path, tips[head], tips[base]):
            raise ForgeInputError(f"no commits between {base} and {head}", field="head")
        now = _now()
        pr_id = new_id("pr")
        async with self.ledger.transaction() as conn:
            await self._lock_repository(conn, repo)
            existing = (await self._rows(conn, repo, head=head, states=("open",))).first()
            if existing is not None:
                raise ForgeConflict(
                    f"a pull request already exists for {head}: #{existing.number}",
                    number=existing.number,
                )
            number = (
                await conn.execute(
                    update(repositories)
                    .where(repositories.c.id == repo.id)
                    .values(next_number=repositories.c.next_number + 1)
                    .returning(repositories.c.next_number)
                )
            ).scalar_one() - 1
            values = {
                "id": pr_id,
                "org_id": self.org,
                "repository_id": repo.id,
                "number": number,
                "title": title,
                "body": body,
                "state": "open",
                "draft": draft,
                "author": author or self.bot_user,
                "base_ref": base,
                "base_sha": tips[base],
                "head_ref": head,
                "head_sha": tips[head],
                "labels": [],
                "created_at": now,
                "updated_at": now,
            }
            await conn.execute(pull_requests.insert().values(**values))
            await self._event(
                conn,
                pr_id,
                "pr.opened",
                repo,
                number,
                title=title,
                draft=draft,
                author=values["author"],
                base=base,
                baseSha=tips[base],
                head=head,
                headSha=tips[head],
            )
        return await self.get_pull_request(repository, number)

    async def update_pull_request(
        self,
        repository: str,
        number: int,
        *,
        title: str | None = None,
        body: str | None = None,
        draft: bool | None = None,
        state: Literal["open", "closed"] | None = None,
    ) -> PullRequest:
        """Change title, body, draft flag or state (``closed`` closes, ``open`` reopens)."""
        if title is not None and not title.strip():
            raise ForgeInputError("a pull request needs a title", field="title")
        if state not in (None, "open", "closed"):
            raise ForgeInputError(f"state must be 'open' or 'closed', not {state!r}", field="state")
        repo, row = await self._pull_request_row(repository, number)
        if state == "open" and row.state == "open":
            state = None
        if state == "closed" and row.state == "closed":
            state = None
        if row.state == "merged" and state is not None:
            raise ForgeConflict(f"pull request #{number} is merged; it cannot be {state}")
        if state == "open":
            existing = await self._open_rows(repo, head=row.head_ref)
            if existing:
                raise ForgeConflict(
                    f"a pull request already exists for {row.head_ref}: #{existing[0].number}"
                )
        changes: dict[str, Any] = {}
        if title is not None and title != row.title:
            changes["title"] = title
        if body is not None and body != row.body:
            changes["body"] = body
        if draft is not None and draft != row.draft:
            changes["draft"] = draft
        if not changes and state is None:
            return await self.get_pull_request(repository, number)
        now = _now()
        values: dict[str, Any] = {**changes, "updated_at": now}
        if state is not None:
            values["state"] = state
            values["closed_at"] = now if state == "closed" else None
        async with self.ledger.transaction() as conn:
            await conn.execute(
                update(pull_requests).where(pull_requests.c.id == row.id).values(**values)
            )
            if changes:
                await self._event(conn, row.id, "pr.updated", repo, number, changes=changes)
            if state == "closed":
                await self._event(conn, row.id, "pr.closed", repo, number)
            elif state == "open":
                await self._event(conn, row.id, "pr.reopened", repo, number)
        return await self.get_pull_request(repository, number)

    async def close_pull_request(self, repository: str, number: int) -> PullRequest:
        """Close a pull request without merging it."""
        return await self.update_pull_request(repository, number, state="closed")

    async def get_pull_request(self, repository: str, number: int) -> PullRequest:
        """Pull request ``number`` with its reviews, labels and checks on the current head."""
        repo, row = await self._pull_request_row(repository, number)
        if row.state == "open":
            row = (await self._synchronize(repo, [row]))[0]
        async with db.read(self.engine) as conn:
            return (await self._hydrate(conn, {repo.id: repo}, [row]))[0]

    async def find_pull_request(self, repository: str, *, head: str) -> PullRequest | None:
        """The open pull request from branch ``head``, if any."""
        repo = await self.get_repository(repository)
        rows = await self._open_rows(repo, head=head)
        if not rows:
            return None
        return await self.get_pull_request(repository, rows[0].number)

    async def list_pull_requests(
        self,
        repository: str | None = None,
        *,
        state: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[PullRequest]:
        """Pull requests, newest first (of one repository, or of all), optionally by state."""
        if state not in (None, "all", "open", "closed", "merged"):
            raise ForgeInputError(
                f"state must be open, closed, merged or all, not {state!r}", field="state"
            )
        if cursor is not None and not is_id(cursor, "pr"):
            raise ForgeInputError("not a cursor returned by this list", field="cursor")
        limit = max(1, min(limit, 200))
        repos = {r.id: r for r in await self.list_repositories()}
        query = select(pull_requests).where(pull_requests.c.org_id == self.org)
        if repository is not None:
            repo = await self.get_repository(repository)
            query = query.where(pull_requests.c.repository_id == repo.id)
        if state not in (None, "all"):
            query = query.where(pull_requests.c.state == state)
        if cursor is not None:
            query = query.where(pull_requests.c.id < cursor)
        query = query.order_by(pull_requests.c.id.desc()).limit(limit + 1)
        async with db.read(self.engine) as conn:
            rows = list((await conn.execute(query)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        by_repo: dict[str, list[Row[Any]]] = {}
        for row in rows:
            if row.state == "open":
                by_repo.setdefault(row.repository_id, []).append(row)
        synced: dict[str, Row[Any]] = {}
        for repo_id, open_rows in by_repo.items():
            for fresh in await self._synchronize(repos[repo_id], open_rows):
                synced[fresh.id] = fresh
        rows = [synced.get(row.id, row) for row in rows]
        async with db.read(self.engine) as conn:
            items = await self._hydrate(conn, repos, rows)
        return Page(items=items, next_cursor=rows[-1].id if more and rows else None)

    async def list_files(self, repository: str, number: int) -> list[PullRequestFile]:
        """Files the pull request changes, compared with where its branch left the base."""
        pr = await self.get_pull_request(repository, number)
        repo = await self.get_repository(repository)
        return await _bare.changed_files(repo.path, await self._diff_base(repo, pr), pr.head_sha)

    async def list_commits(self, repository: str, number: int) -> list[Commit]:
        """The pull request's commits, oldest first."""
        pr = await self.get_pull_request(repository, number)
        repo = await self.get_repository(repository)
        return await _bare.commits_between(repo.path, await self._diff_base(repo, pr), pr.head_sha)

    async def _diff_base(self, repo: Repository, pr: PullRequest) -> str:
        base = pr.base_sha
        if pr.state == "open":
            base = await _bare.resolve_commit(repo.path, f"refs/heads/{pr.base}") or base
        found = await _bare.merge_base(repo.path, base, pr.head_sha)
        if found is None:
            raise ForgeConflict(f"{pr.head} shares no history with {pr.base}")
        return found

    # -- reviews and labels ------------------------------------------------------------------

    async def review(
        self,
        repository: str,
        number: int,
        *,
        user: str,
        state: Literal["approved", "changes_requested", "commented"],
        body: str = "",
    ) -> Review:
        """Record a review by ``user`` on the pull request's current head."""
        if state not in REVIEW_STATES:
            raise ForgeInputError(
                f"review state must be one of {', '.join(REVIEW_STATES)}, not {state!r}",
                field="state",
            )
        if not user.strip():
            raise ForgeInputError("a review needs a user", field="user")
        pr = await self.get_pull_request(repository, number)
        if pr.state != "open":
            raise ForgeConflict(f"pull request #{number} is {pr.state}; it cannot be reviewed")
        if state != "commented" and user == pr.author:
            raise ForgeConflict(f"{user} opened pull request #{number} and cannot review it")
        repo = await self.get_repository(repository)
        now = _now()
        assert pr.id is not None
        async with self.ledger.transaction() as conn:
            review_id = (
                await conn.execute(
                    reviews.insert()
                    .values(
                        org_id=self.org,
                        pull_request_id=pr.id,
                        user=user,
                        state=state,
                        commit_sha=pr.head_sha,
                        body=body,
                        submitted_at=now,
                    )
                    .returning(reviews.c.id)
                )
            ).scalar_one()
            await self._event(
                conn,
                pr.id,
                "pr.review",
                repo,
                number,
                reviewId=review_id,
                user=user,
                state=state,
                commitSha=pr.head_sha,
            )
        return Review(
            id=review_id,
            user=user,
            state=state,
            commit_sha=pr.head_sha,
            body=body,
            submitted_at=now,
        )

    async def approve(self, repository: str, number: int, *, user: str, body: str = "") -> Review:
        """Approve the pull request's current head as ``user``."""
        return await self.review(repository, number, user=user, state="approved", body=body)

    async def request_changes(
        self, repository: str, number: int, *, user: str, body: str = ""
    ) -> Review:
        """Request changes on the pull request's current head as ``user``."""
        return await self.review(
            repository, number, user=user, state="changes_requested", body=body
        )

    async def label(
        self,
        repository: str,
        number: int,
        *,
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
    ) -> PullRequest:
        """Add and remove labels (removing an absent label is not an error)."""
        add, remove = list(add), list(remove)
        for name in [*add, *remove]:
            if not name.strip() or len(name) > 100:
                raise ForgeInputError(f"{name!r} is not a label name", field="labels")
        repo, row = await self._pull_request_row(repository, number)
        async with self.ledger.transaction() as conn:
            current = (
                await conn.execute(
                    select(pull_requests.c.labels).where(pull_requests.c.id == row.id)
                )
            ).scalar_one()
            labels = [x for x in current if x not in remove]
            added = [x for x in dict.fromkeys(add) if x not in labels]
            removed = [x for x in current if x in remove]
            labels += added
            if added or removed:
                await conn.execute(
                    update(pull_requests)
                    .where(pull_requests.c.id == row.id)
                    .values(labels=labels, updated_at=_now())
                )
                await self._event(
                    conn,
                    row.id,
                    "pr.labeled",
                    repo,
                    number,
                    added=added,
                    removed=removed,
                    labels=labels,
                )
        return await self.get_pull_request(repository, number)

    # -- merging -----------------------------------------------------------------------------

    async def merge_blockers(self, repository: str, number: int) -> list[str]:
        """Why the pull request cannot merge now (empty when it can, as far as checks go)."""
        pr = await self.get_pull_request(repository, number)
        repo = await self.get_repository(repository)
        return _blockers(pr, repo)

    async def merge_pull_request(
        self, repository: str, number: int, *, merged_by: str | None = None
    ) -> PullRequest:
        """Merge into the base branch; :class:`MergeRefused` with every reason when it may not."""
        pr = await self.get_pull_request(repository, number)
        repo = await self.get_repository(repository)
        assert pr.id is not None
        if pr.state == "merged":
            return pr
        reasons = _blockers(pr, repo)
        if reasons:
            async with self.ledger.transaction() as conn:
                await self._event(
                    conn,
                    pr.id,
                    "pr.merge_refused",
                    repo,
                    number,
                    reasons=reasons,
                    headSha=pr.head_sha,
                )
            raise MergeRefused(
                f"pull request #{number} cannot be merged: " + "; ".join(reasons), reasons=reasons
            )
        author = merged_by or self.bot_user
        message = f"Merge pull request #{number} from {pr.head}\n\n{pr.title}"
        try:
            outcome = await _bare.merge(
                repo.path, base=pr.base, head_sha=pr.head_sha, message=message, author=author
            )
        except MergeRefused as exc:
            async with self.ledger.transaction() as conn:
                await self._event(
                    conn,
                    pr.id,
                    "pr.merge_refused",
                    repo,
                    number,
                    reasons=exc.reasons,
                    headSha=pr.head_sha,
                )
            raise
        now = _now()
        async with self.ledger.transaction() as conn:
            result = await conn.execute(
                update(pull_requests)
                .where(pull_requests.c.id == pr.id, pull_requests.c.state == "open")
                .values(
                    state="merged",
                    merge_commit_sha=outcome.sha,
                    base_sha=outcome.base_before,
                    merged_at=now,
                    closed_at=now,
                    updated_at=now,
                )
            )
            if result.rowcount == 1:
                await self._event(
                    conn,
                    pr.id,
                    "pr.merged",
                    repo,
                    number,
                    mergeCommitSha=outcome.sha,
                    method=outcome.method,
                    headSha=pr.head_sha,
                    mergedBy=author,
                )
        return await self.get_pull_request(repository, number)


def _blockers(pr: PullRequest, repo: Repository) -> list[str]:
    if pr.state != "open":
        return [f"pull request #{pr.number} is {pr.state}"]
    reasons = []
    if pr.draft:
        reasons.append(f"pull request #{pr.number} is a draft")
    for context in repo.required_contexts:
        state = pr.checks.get(context)
        if state != "success":
            reasons.append(
                f"required context {context!r} is {state or 'missing'} on {pr.head_sha[:12]}"
            )
    return reasons
