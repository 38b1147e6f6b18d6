"""The local forge's foundation: repositories, rows, records and the shared internals.

:class:`LocalForgeBase` owns the repositories (bare git repositories on disk plus their rows) and
the helpers every part of the local forge uses: ledger events, row lookups, head
synchronization and turning rows into records. See :mod:`forge.local` for the whole picture.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

from sqlalchemy import Row, and_, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from writgate import db
from writgate.errors import StoreError
from writgate.git import GitError
from writgate.ids import new_id
from writgate.ledger import Ledger

from . import _bare
from .errors import ForgeInputError, ForgeNotFound
from .protocol import (
    Annotation,
    CheckRun,
    CheckState,
    CommitStatus,
    PullRequest,
    Review,
    check_state,
)
from .tables import (
    check_runs,
    commit_statuses,
    pull_requests,
    repositories,
    reviews,
)

__all__ = [
    "DEFAULT_REQUIRED_CONTEXTS",
    "LocalForgeBase",
    "Page",
    "Repository",
    "split_repository",
    "translate_store_errors",
]

T = TypeVar("T")
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"  # writgate serve's default address
DEFAULT_REQUIRED_CONTEXTS: tuple[str, ...] = ("writgate/merge-gate",)
_ORG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")  # as writgate.auth accepts for API keys
_NAME_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_DESCRIPTION_LIMIT = 140  # GitHub's limit for a commit status description


def translate_store_errors(cls: type[T]) -> type[T]:
    """Make every public coroutine method of ``cls`` raise ``StoreError`` for database failures.

    SQLAlchemy's and the driver's exceptions stop here (the boundary): callers see one
    ``StoreError`` naming the operation and the driver error's type, never a driver traceback.
    """
    for name, method in list(vars(cls).items()):
        if name.startswith("_") or not inspect.iscoroutinefunction(method):
            continue

        def wrap(method: Callable[..., Awaitable[Any]], name: str = name) -> Any:
            @functools.wraps(method)
            async def translated(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await method(*args, **kwargs)
                except SQLAlchemyError as exc:
                    original = getattr(exc, "orig", None) or exc
                    raise StoreError(
                        f"local forge: {name} failed: {type(original).__name__}"
                    ) from exc

            return translated

        setattr(cls, name, wrap(method))
    return cls


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


@translate_store_errors
class LocalForgeBase:
    """Repositories and internals of :class:`~forge.local.LocalForge` (one org per instance)."""

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
        public_url: str | None = None,
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
        # Where people reach this server: pull request URLs point at its API.
        self.public_url = (
            public_url or os.environ.get("WRITGATE_PUBLIC_URL") or DEFAULT_PUBLIC_URL
        ).rstrip("/")

    def pull_request_url(self, repository: str, number: int) -> str:
        """The API URL of a pull request of this forge."""
        return f"{self.public_url}/api/v1/forge/local/repositories/{repository}/pulls/{number}"

    def for_org(self, org: str) -> Self:
        """The same forge acting for ``org``."""
        if org == self.org:
            return self
        return type(self)(
            engine=self.engine,
            ledger=self.ledger,
            home=self.home,
            org=org,
            default_required_contexts=self.default_required_contexts,
            bot_user=self.bot_user,
            public_url=self.public_url,
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

    # -- internals ---------------------------------------------------------------------------

    async def _commit(self, repo: Repository, sha: str) -> str:
        full = await _bare.resolve_commit(repo.path, sha) if sha else None
        if full is None:
            raise ForgeInputError(f"no commit found for SHA {sha!r} in {repo.name}", field="sha")
        return full

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
                url=self.pull_request_url(repos[row.repository_id].name, row.number),
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
