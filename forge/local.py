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

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import Row, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from writgate import db
from writgate.git import GitError
from writgate.ids import is_id, new_id
from writgate.ledger import Ledger

from . import _bare
from .errors import ForgeConflict, ForgeInputError, ForgeNotFound, MergeRefused
from .protocol import (
    ANNOTATION_LEVELS,
    CHECK_CONCLUSIONS,
    CHECK_STATUSES,
    REVIEW_STATES,
    STATUS_STATES,
    Annotation,
    CheckRun,
    CheckState,
    Comment,
    Commit,
    CommitStatus,
    PullRequest,
    PullRequestFile,
    Review,
    StatusState,
    check_state,
    hidden_marker,
)
from .tables import (
    check_annotations,
    check_runs,
    comments,
    commit_statuses,
    pull_requests,
    repositories,
    reviews,
)

__all__ = ["DEFAULT_REQUIRED_CONTEXTS", "LocalForge", "Page", "Repository"]

T = TypeVar("T")
DEFAULT_REQUIRED_CONTEXTS: tuple[str, ...] = ("writgate/merge-gate",)
_ORG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")  # as writgate.auth accepts for API keys
_NAME_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_DESCRIPTION_LIMIT = 140  # GitHub's limit for a commit status description


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def split_repository(name: str) -> tuple[str, str]:
    """``("owner", "name")`` of ``"owner/name"``; a bad name raises :class:`ForgeInputError`."""
    owner, sep, repo = name.partition("/")
    valid = (
        sep
        and _NAME_PART.match(owner)
        and _NAME_PART.match(repo)
        and not repo.endswith(".git")
        and ".." not in name
    )
    if not valid:
        raise ForgeInputError(
            f"{name!r} is not a repository name: use OWNER/NAME (letters, digits, '.', '_', '-')",
            field="repository",
        )
    return owner, repo


@dataclass(frozen=True)
class Repository:
    """A repository of the local forge."""

    name: str
    default_branch: str
    required_contexts: tuple[str, ...]
    path: Path
    id: str
    created_at: datetime | None = None

    @property
    def clone_url(self) -> str:
        """What ``git clone`` accepts: the bare repository's path."""
        return str(self.path)

    def to_json(self) -> dict[str, Any]:
        """The API/CLI shape."""
        return {
            "id": self.id,
            "name": self.name,
            "defaultBranch": self.default_branch,
            "requiredContexts": list(self.required_contexts),
            "cloneUrl": self.clone_url,
            "createdAt": self.created_at.isoformat().replace("+00:00", "Z")
            if self.created_at
            else None,
        }


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list and the cursor of the next one (None at the end)."""

    items: list[T]
    next_cursor: str | None


class LocalForge:
    """The embedded forge (see the module docstring); one instance serves one org.

    ``for_org(org)`` returns a view of the same forge for another org.
    """

    name = "local"

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        ledger: Ledger,
        home: Path,
        org: str = "default",
        default_required_contexts: Sequence[str] = DEFAULT_REQUIRED_CONTEXTS,
        bot_user: str = "writgate-bot",
    ):
        if not _ORG.match(org) or ".." in org:
            raise ForgeInputError(
                f"org {org!r} is invalid: use lower-case letters, digits, '.', '_' or '-'",
                field="org",
            )
        self.engine = engine
        self.ledger = ledger
        self.home = Path(home)
        self.org = org
        self.default_required_contexts = tuple(default_required_contexts)
        self.bot_user = bot_user

    def for_org(self, org: str) -> LocalForge:
        """The same forge acting for ``org``."""
        if org == self.org:
            return self
        return LocalForge(
            engine=self.engine,
            ledger=self.ledger,
            home=self.home,
            org=org,
            default_required_contexts=self.default_required_contexts,
            bot_user=self.bot_user,
        )

    # -- repositories ------------------------------------------------------------------------

    def repository_path(self, repository: str) -> Path:
        """Where the bare repository of ``repository`` lives (whether or not it exists)."""
        owner, name = split_repository(repository)
        root = self.home / "forge"
        if self.org != "default":
            root = root / "_orgs" / self.org
        return root / owner / f"{name}.git"

    def _repository(self, row: Row[Any]) -> Repository:
        return Repository(
            id=row.id,
            name=row.name,
            default_branch=row.default_branch,
            required_contexts=tuple(row.required_contexts),
            path=self.repository_path(row.name),
            created_at=_utc(row.created_at),
        )

    async def create_repository(
        self,
        name: str,
        from_dir: Path | None = None,
        default_branch: str = "main",
        *,
        required_contexts: Sequence[str] | None = None,
    ) -> Repository:
        """Create repository ``name`` (idempotent: an existing one is returned unchanged).

        With ``from_dir``, the new repository's first commit holds that directory's files.
        """
        path = self.repository_path(name)
        await _bare.validate_branch(default_branch, field="default_branch")
        existing = await self._find_repository(name)
        if existing is not None and (existing.path / "HEAD").exists():
            return existing
        if not (path / "HEAD").exists():
            await _bare.init_bare(path, default_branch)
        if from_dir is not None and not await _bare.branch_tips(path):
            try:
                await _bare.import_directory(
                    path, Path(from_dir), default_branch, f"Initial commit of {name}"
                )
            except GitError:
                if not await _bare.branch_tips(path):
                    raise
                # A concurrent creator imported first (update-ref refused to overwrite): fine.
        if existing is not None:
            return existing
        contexts = _contexts(
            self.default_required_contexts if required_contexts is None else required_contexts
        )
        try:
            async with db.write(self.engine) as conn:
                await conn.execute(
                    repositories.insert().values(
                        id=new_id("repo"),
                        org_id=self.org,
                        name=name,
                        default_branch=default_branch,
                        required_contexts=list(contexts),
                        next_number=1,
                        created_at=_now(),
                    )
                )
        except IntegrityError:
            pass  # created concurrently: return that one
        return await self.get_repository(name)

    async def _find_repository(self, name: str) -> Repository | None:
        split_repository(name)
        async with db.read(self.engine) as conn:
            row = (
                await conn.execute(
                    select(repositories).where(
                        repositories.c.org_id == self.org, repositories.c.name == name
                    )
                )
            ).first()
        return self._repository(row) if row else None

    async def get_repository(self, name: str) -> Repository:
        """Repository ``name``; :class:`ForgeNotFound` when it does not exist."""
        found = await self._find_repository(name)
        if found is None:
            raise ForgeNotFound(f"repository {name!r} does not exist", field="repository")
        return found

    async def list_repositories(self) -> list[Repository]:
        """Every repository of the org, by name."""
        async with db.read(self.engine) as conn:
            rows = (
                await conn.execute(
                    select(repositories)
                    .where(repositories.c.org_id == self.org)
                    .order_by(repositories.c.name)
                )
            ).all()
        return [self._repository(row) for row in rows]

    async def set_required_contexts(self, name: str, contexts: Sequence[str]) -> Repository:
        """Replace the contexts that must be ``success`` on a head before it may merge."""
        repo = await self.get_repository(name)
        async with db.write(self.engine) as conn:
            await conn.execute(
                update(repositories)
                .where(repositories.c.id == repo.id, repositories.c.org_id == self.org)
                .values(required_contexts=list(_contexts(contexts)))
            )
        return await self.get_repository(name)

    async def clone_url(self, repository: str) -> str:
        """The bare repository's path (git clones, fetches and pushes it directly)."""
        return (await self.get_repository(repository)).clone_url

    async def push_branch(
        self, repository: str, workdir: Path, branch: str, *, force: bool = False
    ) -> str:
        """Push ``workdir``'s HEAD to ``branch`` and bring its open pull requests up to date."""
        repo = await self.get_repository(repository)
        await _bare.validate_branch(branch)
        sha = await _bare.push(Path(workdir), repo.path, branch, force=force)
        await self._synchronize(repo, await self._open_rows(repo, head=branch))
        return sha

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

    # -- statuses and check runs -------------------------------------------------------------

    async def _commit(self, repo: Repository, sha: str) -> str:
        full = await _bare.resolve_commit(repo.path, sha) if sha else None
        if full is None:
            raise ForgeInputError(f"no commit found for SHA {sha!r} in {repo.name}", field="sha")
        return full

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

    # -- internals ---------------------------------------------------------------------------

    async def _event(
        self,
        conn: AsyncConnection,
        pr_id: str,
        type: str,
        repo: Repository,
        number: int,
        **data: Any,
    ) -> None:
        await self.ledger.append(
            conn,
            org_id=self.org,
            subject_id=pr_id,
            type=type,
            data={"forge": "local", "repository": repo.name, "number": number, **data},
        )

    async def _lock_repository(self, conn: AsyncConnection, repo: Repository) -> None:
        # Serializes PR creation per repository on PostgreSQL (SQLite's write lock already does).
        query = select(repositories.c.id).where(repositories.c.id == repo.id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        await conn.execute(query)

    async def _rows(
        self,
        conn: AsyncConnection,
        repo: Repository,
        *,
        head: str | None = None,
        states: Sequence[str] = (),
    ) -> Any:
        query = select(pull_requests).where(
            pull_requests.c.org_id == self.org, pull_requests.c.repository_id == repo.id
        )
        if head is not None:
            query = query.where(pull_requests.c.head_ref == head)
        if states:
            query = query.where(pull_requests.c.state.in_(states))
        return await conn.execute(query.order_by(pull_requests.c.number))

    async def _open_rows(self, repo: Repository, *, head: str | None = None) -> list[Row[Any]]:
        async with db.read(self.engine) as conn:
            return list((await self._rows(conn, repo, head=head, states=("open",))).all())

    async def _pull_request_row(self, repository: str, number: int) -> tuple[Repository, Row[Any]]:
        repo = await self.get_repository(repository)
        async with db.read(self.engine) as conn:
            row = (
                await conn.execute(
                    select(pull_requests).where(
                        pull_requests.c.org_id == self.org,
                        pull_requests.c.repository_id == repo.id,
                        pull_requests.c.number == number,
                    )
                )
            ).first()
        if row is None:
            raise ForgeNotFound(
                f"pull request #{number} does not exist in {repository}", field="number"
            )
        return repo, row

    async def _prs_at(
        self, conn: AsyncConnection, repo: Repository, sha: str
    ) -> list[tuple[str, int]]:
        rows = (
            await conn.execute(
                select(pull_requests.c.id, pull_requests.c.number).where(
                    pull_requests.c.org_id == self.org,
                    pull_requests.c.repository_id == repo.id,
                    pull_requests.c.head_sha == sha,
                )
            )
        ).all()
        return [(row.id, row.number) for row in rows]

    async def _synchronize(self, repo: Repository, rows: Sequence[Row[Any]]) -> list[Row[Any]]:
        """Record new branch tips of open pull requests (``pr.synchronize``); fresh rows back."""
        if not rows:
            return []
        tips = await _bare.branch_tips(repo.path)
        moved = [
            row
            for row in rows
            if row.state == "open" and tips.get(row.head_ref) not in (None, row.head_sha)
        ]
        if not moved:
            return list(rows)
        async with self.ledger.transaction() as conn:
            for row in moved:
                after = tips[row.head_ref]
                result = await conn.execute(
                    update(pull_requests)
                    .where(
                        pull_requests.c.id == row.id,
                        pull_requests.c.head_sha == row.head_sha,
                        pull_requests.c.state == "open",
                    )
                    .values(
                        head_sha=after,
                        base_sha=tips.get(row.base_ref, row.base_sha),
                        updated_at=_now(),
                    )
                )
                if result.rowcount == 1:  # another reader may have recorded it first
                    await self._event(
                        conn,
                        row.id,
                        "pr.synchronize",
                        repo,
                        row.number,
                        before=row.head_sha,
                        after=after,
                    )
            fresh = {
                r.id: r
                for r in (
                    await conn.execute(
                        select(pull_requests).where(
                            pull_requests.c.id.in_([row.id for row in rows])
                        )
                    )
                ).all()
            }
        return [fresh[row.id] for row in rows]

    async def _hydrate(
        self, conn: AsyncConnection, repos: Mapping[str, Repository], rows: Sequence[Row[Any]]
    ) -> list[PullRequest]:
        if not rows:
            return []
        ids = [row.id for row in rows]
        review_rows = (
            await conn.execute(
                select(reviews)
                .where(reviews.c.pull_request_id.in_(ids), reviews.c.org_id == self.org)
                .order_by(reviews.c.id)
            )
        ).all()
        by_pr: dict[str, list[Review]] = {}
        for r in review_rows:
            by_pr.setdefault(r.pull_request_id, []).append(
                Review(
                    id=r.id,
                    user=r.user,
                    state=r.state,
                    commit_sha=r.commit_sha,
                    body=r.body,
                    submitted_at=_utc(r.submitted_at),
                )
            )
        checks = await _checks_at(
            conn, self.org, {(row.repository_id, row.head_sha) for row in rows}
        )
        return [
            PullRequest(
                id=row.id,
                repository=repos[row.repository_id].name,
                number=row.number,
                title=row.title,
                body=row.body,
                state=row.state,
                draft=bool(row.draft),
                author=row.author,
                base=row.base_ref,
                base_sha=row.base_sha,
                head=row.head_ref,
                head_sha=row.head_sha,
                labels=tuple(row.labels),
                reviews=tuple(by_pr.get(row.id, ())),
                checks=checks.get((row.repository_id, row.head_sha), {}),
                merge_commit_sha=row.merge_commit_sha,
                created_at=_utc(row.created_at),
                updated_at=_utc(row.updated_at),
            )
            for row in rows
        ]


def _contexts(contexts: Iterable[str]) -> tuple[str, ...]:
    found = tuple(dict.fromkeys(c.strip() for c in contexts))
    for context in found:
        if not context or len(context) > 255:
            raise ForgeInputError(f"{context!r} is not a status context", field="required_contexts")
    return found


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


async def _checks_at(
    conn: AsyncConnection, org: str, keys: set[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, CheckState]]:
    """Latest state of every context (statuses, then check runs by name) per (repo, sha)."""
    found: dict[tuple[str, str], dict[str, CheckState]] = {}
    if not keys:
        return found
    condition = [
        and_(commit_statuses.c.repository_id == r, commit_statuses.c.sha == s) for r, s in keys
    ]
    for row in (
        await conn.execute(
            select(commit_statuses)
            .where(commit_statuses.c.org_id == org, or_(*condition))
            .order_by(commit_statuses.c.id)
        )
    ).all():
        found.setdefault((row.repository_id, row.sha), {})[row.context] = check_state(_status(row))
    run_condition = [
        and_(check_runs.c.repository_id == r, check_runs.c.head_sha == s) for r, s in keys
    ]
    for row in (
        await conn.execute(
            select(check_runs)
            .where(check_runs.c.org_id == org, or_(*run_condition))
            .order_by(check_runs.c.id)
        )
    ).all():
        found.setdefault((row.repository_id, row.head_sha), {})[row.name] = _check_run(
            row, 0
        ).check_state
    return found


def _status(row: Row[Any]) -> CommitStatus:
    return CommitStatus(
        id=row.id,
        sha=row.sha,
        context=row.context,
        state=row.state,
        description=row.description,
        target_url=row.target_url,
        created_at=_utc(row.created_at),
        creator=row.creator,
    )


def _check_run(row: Row[Any], count: int, annotations: tuple[Annotation, ...] = ()) -> CheckRun:
    return CheckRun(
        id=row.id,
        head_sha=row.head_sha,
        name=row.name,
        status=row.status,
        conclusion=row.conclusion,
        title=row.title,
        summary=row.summary,
        annotations_count=count,
        started_at=_utc(row.started_at),
        completed_at=_utc(row.completed_at),
        annotations=annotations,
    )


def _annotation(row: Row[Any]) -> Annotation:
    return Annotation(
        path=row.path,
        start_line=row.start_line,
        end_line=row.end_line,
        annotation_level=row.annotation_level,
        message=row.message,
        title=row.title,
        raw_details=row.raw_details,
        start_column=row.start_column,
        end_column=row.end_column,
    )
