"""The GitHub forge: the :class:`~forge.protocol.Forge` protocol over GitHub's REST API v3.

Requests and responses follow GitHub's published OpenAPI description (the tests validate every
exchange against ``shared/github-openapi/subset.json``). Three calls use endpoints outside that
subset: ``find_pull_request`` (``GET /repos/{o}/{r}/pulls?head=``), ``merge_pull_request``
(``PUT …/pulls/{n}/merge``) and reading a check run before adding annotations to it without a new
title/summary (``GET …/check-runs/{id}``); changing the draft flag needs GraphQL
(``convertPullRequestToDraft`` / ``markPullRequestReadyForReview``).

Pushes go over HTTPS with the token in an ``http.extraHeader`` passed to git through
``GIT_CONFIG_*`` environment variables, so it is in no URL, argument list, log or error.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx

from writgate.git import GitError, run_git

from .errors import ForgeAuthError, ForgeConflict, ForgeError, ForgeInputError, MergeRefused
from .github_http import DEFAULT_API_URL, GitHubApp, GitHubAuth, GitHubClient, TokenAuth
from .protocol import (
    FILE_STATUSES,
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

__all__ = ["ANNOTATIONS_PER_REQUEST", "GitHubApp", "GitHubForge", "TokenAuth"]

ANNOTATIONS_PER_REQUEST = 50  # GitHub accepts at most 50 annotations per check run request
_REVIEW_STATES = {
    "APPROVED": "approved",
    "CHANGES_REQUESTED": "changes_requested",
    "COMMENTED": "commented",
}


def _split(repository: str) -> str:
    owner, sep, name = repository.partition("/")
    if not sep or not owner or not name or "/" in name:
        raise ForgeInputError(
            f"{repository!r} is not a repository name: use OWNER/NAME", field="repository"
        )
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None  # a timestamp is informative only; never fail a call over one


def _default_web_url(api_url: str) -> str:
    parts = urlsplit(api_url.rstrip("/"))
    if parts.netloc == "api.github.com":
        return "https://github.com"
    # GitHub Enterprise Server: https://HOST/api/v3 -> https://HOST
    return f"{parts.scheme}://{parts.netloc}"


class GitHubForge:
    """GitHub (github.com or Enterprise Server) as a :class:`~forge.protocol.Forge`."""

    name = "github"

    def __init__(
        self,
        *,
        auth: GitHubAuth,
        api_url: str = DEFAULT_API_URL,
        web_url: str | None = None,
        client: GitHubClient | None = None,
        http: httpx.AsyncClient | None = None,
        **client_options: Any,
    ):
        self.client = client or GitHubClient(
            auth=auth, base_url=api_url, http=http, **client_options
        )
        self.api_url = self.client.base_url
        self.web_url = (web_url or _default_web_url(self.api_url)).rstrip("/")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> GitHubForge:
        """A forge from ``WRITGATE_GITHUB_*``: a token, or an App id + key + installation."""
        env = os.environ if environ is None else environ
        api_url = env.get("WRITGATE_GITHUB_API_URL") or DEFAULT_API_URL
        web_url = env.get("WRITGATE_GITHUB_WEB_URL") or None
        token = env.get("WRITGATE_GITHUB_TOKEN")
        auth: GitHubAuth
        if token:
            auth = TokenAuth(token)
        elif env.get("WRITGATE_GITHUB_APP_ID"):
            key = env.get("WRITGATE_GITHUB_APP_PRIVATE_KEY")
            key_file = env.get("WRITGATE_GITHUB_APP_PRIVATE_KEY_FILE")
            if not key and key_file:
                try:
                    key = Path(key_file).read_text()
                except OSError as exc:
                    raise ForgeAuthError(
                        f"cannot read WRITGATE_GITHUB_APP_PRIVATE_KEY_FILE {key_file}: "
                        f"{exc.strerror}"
                    ) from exc
            installation = env.get("WRITGATE_GITHUB_APP_INSTALLATION_ID", "")
            if not key or not installation.isdigit():
                raise ForgeAuthError(
                    "a GitHub App needs WRITGATE_GITHUB_APP_PRIVATE_KEY(_FILE) and a numeric "
                    "WRITGATE_GITHUB_APP_INSTALLATION_ID"
                )
            auth = GitHubApp(
                app_id=env["WRITGATE_GITHUB_APP_ID"],
                private_key=key,
                installation_id=int(installation),
            )
        else:
            raise ForgeAuthError(
                "set WRITGATE_GITHUB_TOKEN, or WRITGATE_GITHUB_APP_ID with the App's key and "
                "installation id"
            )
        return cls(auth=auth, api_url=api_url, web_url=web_url, **options)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self.client.aclose()

    # -- git -----------------------------------------------------------------------------------

    async def clone_url(self, repository: str) -> str:
        """``https://github.com/OWNER/NAME.git`` (no credential: fetches of private repositories
        need one from the caller's own git configuration)."""
        _split(repository)
        return f"{self.web_url}/{repository}.git"

    async def _git_token(self) -> str:
        auth = self.client.auth
        if isinstance(auth, GitHubApp):
            return await auth.installation_token(self.client)
        if isinstance(auth, TokenAuth):
            return auth.git_token
        raise ForgeAuthError("this GitHub credential cannot push with git")

    async def push_branch(
        self, repository: str, workdir: Path, branch: str, *, force: bool = False
    ) -> str:
        """Push ``workdir``'s HEAD to ``branch`` over HTTPS (the token goes in a header)."""
        url = await self.clone_url(repository)
        sha = (
            (await run_git(["rev-parse", "--verify", "HEAD^{commit}"], cwd=workdir))
            .decode()
            .strip()
        )
        token = await self._git_token()
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env = {
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
            "GIT_CONFIG_KEY_1": "credential.helper",
            "GIT_CONFIG_VALUE_1": "",
        }
        refspec = f"{'+' if force else ''}{sha}:refs/heads/{branch}"
        try:
            await run_git(["push", "--quiet", "--no-verify", url, refspec], cwd=workdir, env=env)
        except GitError as exc:
            message = self.client.scrub(exc.message, [basic])
            if "rejected" in message or "non-fast-forward" in message or "fetch first" in message:
                raise MergeRefused(
                    f"push to {branch!r} rejected: not a fast-forward (use force)",
                    code="push_rejected",
                ) from None
            raise ForgeError(f"pushing {branch!r} to {repository} failed: {message}") from None
        return sha

    # -- pull requests -------------------------------------------------------------------------

    def _pull_request(
        self,
        repository: str,
        data: Mapping[str, Any],
        reviews: Sequence[Review] = (),
        checks: Mapping[str, CheckState] | None = None,
    ) -> PullRequest:
        state = data.get("state", "open")
        if data.get("merged") or data.get("merged_at"):
            state = "merged"
        user = data.get("user") or {}
        return PullRequest(
            repository=repository,
            number=int(data["number"]),
            title=data.get("title") or "",
            body=data.get("body") or "",
            state=state,
            draft=bool(data.get("draft")),
            author=user.get("login") or "",
            base=data["base"]["ref"],
            base_sha=data["base"]["sha"],
            head=data["head"]["ref"],
            head_sha=data["head"]["sha"],
            labels=tuple(label["name"] for label in data.get("labels") or ()),
            reviews=tuple(reviews),
            checks=dict(checks or {}),
            url=data.get("html_url"),
            id=data.get("node_id"),
            merge_commit_sha=data.get("merge_commit_sha") if state == "merged" else None,
            created_at=_time(data.get("created_at")),
            updated_at=_time(data.get("updated_at")),
        )

    async def open_pull_request(
        self, repository: str, *, head: str, base: str, title: str, body: str, draft: bool
    ) -> PullRequest:
        """``POST /repos/{o}/{r}/pulls``."""
        data = await self.client.request(
            "POST",
            f"{_split(repository)}/pulls",
            json_body={"title": title, "head": head, "base": base, "body": body, "draft": draft},
        )
        return self._pull_request(repository, data)

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
        """``PATCH /repos/{o}/{r}/pulls/{n}`` (title, body, state); the draft flag via GraphQL."""
        changes: dict[str, Any] = {}
        if title is not None:
            changes["title"] = title
        if body is not None:
            changes["body"] = body
        if state is not None:
            changes["state"] = state
        if draft is not None:
            current = await self.get_pull_request(repository, number)
            if current.draft != draft:
                await self._set_draft(current, draft)
        if not changes:
            return await self.get_pull_request(repository, number)
        data = await self.client.request(
            "PATCH", f"{_split(repository)}/pulls/{number}", json_body=changes
        )
        return self._pull_request(repository, data)

    async def _set_draft(self, pr: PullRequest, draft: bool) -> None:
        # REST cannot change the flag; GraphQL can (by the pull request's node id).
        if not pr.id:
            raise ForgeInputError("GitHub gave no node id for this pull request", field="draft")
        mutation = "convertPullRequestToDraft" if draft else "markPullRequestReadyForReview"
        query = (
            f"mutation($id: ID!) {{ {mutation}(input: {{pullRequestId: $id}}) "
            "{ pullRequest { isDraft } } }"
        )
        await self.client.graphql(query, {"id": pr.id})

    async def merge_pull_request(self, repository: str, number: int) -> PullRequest:
        """``PUT …/pulls/{n}/merge``; GitHub's refusal becomes :class:`MergeRefused`."""
        current = await self.get_pull_request(repository, number)
        if current.state == "merged":
            return current
        try:
            await self.client.request(
                "PUT",
                f"{_split(repository)}/pulls/{number}/merge",
                json_body={"sha": current.head_sha},
            )
        except ForgeConflict as exc:
            raise MergeRefused(exc.message, reasons=[exc.message]) from None
        return await self.get_pull_request(repository, number)

    async def get_pull_request(self, repository: str, number: int) -> PullRequest:
        """The pull request with its reviews and the checks on its head."""
        base = _split(repository)
        data = await self.client.request("GET", f"{base}/pulls/{number}")
        reviews = await self._reviews(repository, number)
        checks = await self._checks(repository, data["head"]["sha"])
        return self._pull_request(repository, data, reviews, checks)

    async def _reviews(self, repository: str, number: int) -> list[Review]:
        found = []
        for item in await self.client.get_all(f"{_split(repository)}/pulls/{number}/reviews"):
            state = _REVIEW_STATES.get(item.get("state", ""))
            if state is None:
                continue  # PENDING and DISMISSED reviews do not count
            found.append(
                Review(
                    id=item.get("id"),
                    user=(item.get("user") or {}).get("login") or "",
                    state=state,  # type: ignore[arg-type]
                    commit_sha=item.get("commit_id") or "",
                    body=item.get("body") or "",
                    submitted_at=_time(item.get("submitted_at")),
                )
            )
        return found

    async def _checks(self, repository: str, sha: str) -> dict[str, CheckState]:
        checks: dict[str, CheckState] = {}
        combined = await self.client.request("GET", f"{_split(repository)}/commits/{sha}/status")
        for status in combined.get("statuses") or ():
            checks[status["context"]] = check_state(_status(sha, status))
        for run in await self.list_check_runs(repository, sha):
            checks[run.name] = run.check_state
        return checks

    async def find_pull_request(self, repository: str, *, head: str) -> PullRequest | None:
        """The open pull request from branch ``head`` of the same repository."""
        owner = repository.partition("/")[0]
        found = await self.client.request(
            "GET",
            f"{_split(repository)}/pulls",
            params={"head": f"{owner}:{head}", "state": "open", "per_page": 1},
        )
        if not found:
            return None
        return await self.get_pull_request(repository, int(found[0]["number"]))

    async def list_files(self, repository: str, number: int) -> list[PullRequestFile]:
        """``GET …/pulls/{n}/files``, every page."""
        files = []
        for item in await self.client.get_all(f"{_split(repository)}/pulls/{number}/files"):
            status = item.get("status", "modified")
            additions, deletions = int(item.get("additions", 0)), int(item.get("deletions", 0))
            files.append(
                PullRequestFile(
                    filename=item["filename"],
                    status=status if status in FILE_STATUSES else "changed",
                    additions=additions,
                    deletions=deletions,
                    previous_filename=item.get("previous_filename"),
                    # GitHub sends no patch for a binary file (nor for a huge one).
                    binary="patch" not in item and additions + deletions == 0,
                )
            )
        return files

    async def list_commits(self, repository: str, number: int) -> list[Commit]:
        """``GET …/pulls/{n}/commits``, every page."""
        commits = []
        for item in await self.client.get_all(f"{_split(repository)}/pulls/{number}/commits"):
            commit = item.get("commit") or {}
            author = (item.get("author") or {}).get("login") or (commit.get("author") or {}).get(
                "name", ""
            )
            commits.append(
                Commit(
                    sha=item["sha"],
                    message=commit.get("message", ""),
                    author=author,
                    parents=tuple(p["sha"] for p in item.get("parents") or ()),
                )
            )
        return commits

    async def add_labels(self, repository: str, number: int, labels: Sequence[str]) -> list[str]:
        """``POST …/issues/{n}/labels``; the pull request's labels afterwards."""
        found = await self.client.request(
            "POST",
            f"{_split(repository)}/issues/{number}/labels",
            json_body={"labels": list(labels)},
        )
        return [label["name"] for label in found]

    # -- statuses and check runs ---------------------------------------------------------------

    async def set_commit_status(
        self,
        repository: str,
        sha: str,
        *,
        context: str,
        state: StatusState,
        description: str,
        target_url: str | None = None,
    ) -> CommitStatus:
        """``POST …/statuses/{sha}`` (descriptions are cut to GitHub's 140 characters)."""
        body: dict[str, Any] = {
            "state": state,
            "context": context,
            "description": description if len(description) <= 140 else description[:139] + "…",
        }
        if target_url:
            body["target_url"] = target_url
        data = await self.client.request(
            "POST", f"{_split(repository)}/statuses/{sha}", json_body=body
        )
        return _status(sha, data)

    async def list_commit_statuses(self, repository: str, sha: str) -> list[CommitStatus]:
        """``GET …/commits/{ref}/statuses``, every page, newest first."""
        items = await self.client.get_all(f"{_split(repository)}/commits/{sha}/statuses")
        return [_status(sha, item) for item in items]

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
        """``POST …/check-runs``, then ``PATCH`` for annotations past the first 50."""
        batches = _batches(annotations)
        body: dict[str, Any] = {"name": name, "head_sha": sha, "status": status}
        if conclusion is not None:
            body["conclusion"] = conclusion
        body["output"] = {"title": title, "summary": summary, "annotations": batches[0]}
        data = await self.client.request("POST", f"{_split(repository)}/check-runs", json_body=body)
        for batch in batches[1:]:
            data = await self.client.request(
                "PATCH",
                f"{_split(repository)}/check-runs/{data['id']}",
                json_body={"output": {"title": title, "summary": summary, "annotations": batch}},
            )
        return _check_run(data)

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
        """``PATCH …/check-runs/{id}``, 50 annotations per request."""
        path = f"{_split(repository)}/check-runs/{check_run_id}"
        if (annotations or title is not None or summary is not None) and (
            title is None or summary is None
        ):
            # GitHub needs both title and summary with any output: keep the current ones.
            current = await self.client.request("GET", path)
            output = current.get("output") or {}
            title = output.get("title") or "" if title is None else title
            summary = output.get("summary") or "" if summary is None else summary
        batches = _batches(annotations)
        body: dict[str, Any] = {}
        if status is not None:
            body["status"] = status
        if conclusion is not None:
            body["conclusion"] = conclusion
        if title is not None and summary is not None:
            body["output"] = {"title": title, "summary": summary, "annotations": batches[0]}
        data = await self.client.request("PATCH", path, json_body=body)
        for batch in batches[1:]:
            data = await self.client.request(
                "PATCH",
                path,
                json_body={"output": {"title": title, "summary": summary, "annotations": batch}},
            )
        return _check_run(data)

    async def list_check_runs(self, repository: str, sha: str) -> list[CheckRun]:
        """``GET …/commits/{ref}/check-runs`` (latest run per name), every page."""
        items = await self.client.get_all(
            f"{_split(repository)}/commits/{sha}/check-runs", key="check_runs"
        )
        return [_check_run(item) for item in items]

    # -- comments ------------------------------------------------------------------------------

    async def upsert_comment(
        self, repository: str, number: int, *, marker: str, body: str
    ) -> Comment:
        """Update the comment carrying ``<!-- marker -->`` in place, or create it."""
        hidden = hidden_marker(marker)
        text = body if hidden in body else f"{hidden}\n{body}"
        base = _split(repository)
        async for page in self.client.pages(f"{base}/issues/{number}/comments"):
            for item in page:
                if hidden in (item.get("body") or ""):
                    data = await self.client.request(
                        "PATCH", f"{base}/issues/comments/{item['id']}", json_body={"body": text}
                    )
                    return _comment(data)
        data = await self.client.request(
            "POST", f"{base}/issues/{number}/comments", json_body={"body": text}
        )
        return _comment(data)


def _batches(annotations: Sequence[Annotation]) -> list[list[dict[str, Any]]]:
    payload = [_annotation(a) for a in annotations]
    batches = [
        payload[i : i + ANNOTATIONS_PER_REQUEST]
        for i in range(0, len(payload), ANNOTATIONS_PER_REQUEST)
    ]
    return batches or [[]]


def _annotation(annotation: Annotation) -> dict[str, Any]:
    data: dict[str, Any] = {
        "path": annotation.path,
        "start_line": annotation.start_line,
        "end_line": annotation.end_line,
        "annotation_level": annotation.annotation_level,
        "message": annotation.message,
    }
    for key in ("title", "raw_details", "start_column", "end_column"):
        value = getattr(annotation, key)
        if value is not None:
            data[key] = value
    return data


def _status(sha: str, data: Mapping[str, Any]) -> CommitStatus:
    return CommitStatus(
        id=data.get("id"),
        sha=sha,
        context=data.get("context") or "default",
        state=data["state"],
        description=data.get("description") or "",
        target_url=data.get("target_url"),
        created_at=_time(data.get("created_at")),
        creator=(data.get("creator") or {}).get("login"),
    )


def _check_run(data: Mapping[str, Any]) -> CheckRun:
    output = data.get("output") or {}
    return CheckRun(
        id=int(data["id"]),
        head_sha=data["head_sha"],
        name=data["name"],
        status=data["status"],
        conclusion=data.get("conclusion"),
        title=output.get("title") or "",
        summary=output.get("summary") or "",
        annotations_count=int(output.get("annotations_count") or 0),
        url=data.get("html_url"),
        started_at=_time(data.get("started_at")),
        completed_at=_time(data.get("completed_at")),
    )


def _comment(data: Mapping[str, Any]) -> Comment:
    return Comment(
        id=int(data["id"]),
        body=data.get("body") or "",
        author=(data.get("user") or {}).get("login") or "",
        url=data.get("html_url"),
        created_at=_time(data.get("created_at")),
        updated_at=_time(data.get("updated_at")),
    )
