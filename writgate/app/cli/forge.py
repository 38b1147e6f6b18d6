"""``writgate forge …``: the local forge's repositories and pull requests, for people and tests.

The org is ``WRITGATE_ORG`` (default ``default``). ``merge`` exits 1 with the reason when the
merge is refused (a required context not ``success`` on the head, a draft, a conflict).
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from forge.local import LocalForge
from forge.protocol import PullRequest
from forge.webhooks import TriggerStore
from writgate.app.database import Database
from writgate.settings import Settings

from ._common import print_json, run_async, with_database

__all__ = ["register"]

T = TypeVar("T")


def register(commands: Any) -> None:
    parser = commands.add_parser("forge", help="the local forge: repositories and pull requests")
    actions = parser.add_subparsers(dest="forge_command", metavar="ACTION")
    actions.required = True

    repos = actions.add_parser("repos", help="list repositories")
    repos.add_argument("--json", action="store_true", help="machine-readable output")
    repos.set_defaults(handler=_repos)

    create = actions.add_parser("create-repo", help="create a repository (idempotent)")
    create.add_argument("name", metavar="OWNER/NAME")
    create.add_argument(
        "--from",
        dest="from_dir",
        type=Path,
        metavar="DIR",
        help="first commit holds this directory's files",
    )
    create.add_argument("--default-branch", default="main")
    create.add_argument(
        "--require",
        action="append",
        metavar="CONTEXT",
        help="context required to merge (repeatable; default writgate/merge-gate)",
    )
    create.add_argument("--json", action="store_true")
    create.set_defaults(handler=_create_repo)

    protect = actions.add_parser("protect", help="set the contexts required to merge")
    protect.add_argument("name", metavar="OWNER/NAME")
    protect.add_argument(
        "--require",
        action="append",
        default=[],
        metavar="CONTEXT",
        help="repeatable; none at all disables the check",
    )
    protect.set_defaults(handler=_protect)

    prs = actions.add_parser("prs", help="list pull requests, newest first")
    prs.add_argument("--repo", metavar="OWNER/NAME")
    prs.add_argument("--state", choices=("open", "closed", "merged", "all"), default="all")
    prs.add_argument("--limit", type=int, default=50)
    prs.add_argument("--json", action="store_true")
    prs.set_defaults(handler=_prs)

    opening = actions.add_parser("open", help="open a pull request from a pushed branch")
    opening.add_argument("--repo", required=True, metavar="OWNER/NAME")
    opening.add_argument("--head", required=True, metavar="BRANCH")
    opening.add_argument("--base", metavar="BRANCH", help="default: the default branch")
    opening.add_argument("--title", required=True)
    opening.add_argument("--body", default="")
    opening.add_argument("--draft", action="store_true")
    opening.add_argument("--author", metavar="USER")
    opening.add_argument("--json", action="store_true")
    opening.set_defaults(handler=_open)

    show = actions.add_parser("show", help="one pull request with its statuses and check runs")
    _pr_arguments(show)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_show)

    for name, state, helptext in (
        ("approve", "approved", "approve the current head as a user"),
        ("request-changes", "changes_requested", "request changes as a user"),
    ):
        review = actions.add_parser(name, help=helptext)
        _pr_arguments(review)
        review.add_argument("--as", dest="user", required=True, metavar="USER")
        review.add_argument("--body", default="")
        review.set_defaults(handler=_review, review_state=state)

    label = actions.add_parser("label", help="add and remove labels")
    _pr_arguments(label)
    label.add_argument("--add", action="append", default=[], metavar="LABEL")
    label.add_argument("--remove", action="append", default=[], metavar="LABEL")
    label.set_defaults(handler=_label)

    merge = actions.add_parser("merge", help="merge (refused while a required context fails)")
    _pr_arguments(merge)
    merge.add_argument("--as", dest="user", metavar="USER")
    merge.set_defaults(handler=_merge)

    ready = actions.add_parser("ready", help="mark a draft pull request ready for review")
    _pr_arguments(ready)
    ready.set_defaults(handler=_ready)

    close = actions.add_parser("close", help="close without merging")
    _pr_arguments(close)
    close.set_defaults(handler=_close)

    status = actions.add_parser("status", help="set a commit status (as a CI system would)")
    status.add_argument("sha", metavar="SHA")
    status.add_argument("--repo", required=True, metavar="OWNER/NAME")
    status.add_argument("--context", required=True)
    status.add_argument(
        "--state", required=True, choices=("pending", "success", "failure", "error")
    )
    status.add_argument("--description", default="")
    status.add_argument("--target-url")
    status.set_defaults(handler=_status)

    triggers = actions.add_parser("triggers", help="GitHub webhook triggers received, newest first")
    triggers.add_argument("--limit", type=int, default=50)
    triggers.add_argument("--json", action="store_true")
    triggers.set_defaults(handler=_triggers)


def _pr_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("number", type=int, metavar="NUMBER")
    parser.add_argument("--repo", required=True, metavar="OWNER/NAME")


def _with_forge(func: Callable[[LocalForge], Awaitable[T]]) -> T:
    async def go(database: Database, settings: Settings) -> T:
        forge = LocalForge(
            engine=database.engine, ledger=database.ledger, home=settings.home, org=settings.org
        )
        return await func(forge)

    return run_async(lambda: with_database(go))


def _repos(args: argparse.Namespace) -> int:
    found = _with_forge(lambda forge: forge.list_repositories())
    if args.json:
        print_json({"items": [r.to_json() for r in found], "nextCursor": None})
    elif not found:
        print("no repositories")
    for repo in [] if args.json else found:
        contexts = ", ".join(repo.required_contexts) or "none"
        print(f"{repo.name}  {repo.default_branch}  requires: {contexts}  {repo.clone_url}")
    return 0


def _create_repo(args: argparse.Namespace) -> int:
    repo = _with_forge(
        lambda forge: forge.create_repository(
            args.name,
            from_dir=args.from_dir,
            default_branch=args.default_branch,
            required_contexts=args.require,
        )
    )
    if args.json:
        print_json(repo.to_json())
    else:
        print(f"{repo.name}: {repo.clone_url}")
    return 0


def _protect(args: argparse.Namespace) -> int:
    repo = _with_forge(lambda forge: forge.set_required_contexts(args.name, args.require))
    print(f"{repo.name} requires: {', '.join(repo.required_contexts) or 'nothing'}")
    return 0


def _summary_line(pr: PullRequest) -> str:
    draft = " draft" if pr.draft else ""
    return (
        f"{pr.repository}#{pr.number}  {pr.state}{draft}  {pr.head} -> {pr.base}  "
        f"{pr.head_sha[:12]}  {pr.title}"
    )


def _prs(args: argparse.Namespace) -> int:
    page = _with_forge(
        lambda forge: forge.list_pull_requests(args.repo, state=args.state, limit=args.limit)
    )
    if args.json:
        print_json({"items": [pr.to_json() for pr in page.items], "nextCursor": page.next_cursor})
        return 0
    if not page.items:
        print("no pull requests")
    for pr in page.items:
        print(_summary_line(pr))
    return 0


def _open(args: argparse.Namespace) -> int:
    async def go(forge: LocalForge) -> PullRequest:
        base = args.base or (await forge.get_repository(args.repo)).default_branch
        return await forge.open_pull_request(
            args.repo,
            head=args.head,
            base=base,
            title=args.title,
            body=args.body,
            draft=args.draft,
            author=args.author,
        )

    pr = _with_forge(go)
    if args.json:
        print_json(pr.to_json())
    else:
        print(_summary_line(pr))
    return 0


def _show(args: argparse.Namespace) -> int:
    async def go(forge: LocalForge) -> dict[str, Any]:
        pr = await forge.get_pull_request(args.repo, args.number)
        data = pr.to_json()
        data["statuses"] = [
            s.to_json() for s in await forge.list_commit_statuses(args.repo, pr.head_sha)
        ]
        data["checkRuns"] = [
            r.to_json() for r in await forge.list_check_runs(args.repo, pr.head_sha)
        ]
        data["files"] = [f.to_json() for f in await forge.list_files(args.repo, args.number)]
        data["mergeBlockers"] = await forge.merge_blockers(args.repo, args.number)
        return data

    data = _with_forge(go)
    if args.json:
        print_json(data)
        return 0
    draft = " (draft)" if data["draft"] else ""
    print(f"{data['repository']}#{data['number']}: {data['title']}{draft}")
    print(f"  state:   {data['state']}   author: {data['author']}")
    print(f"  branch:  {data['head']} -> {data['base']}   head {data['headSha']}")
    print(f"  labels:  {', '.join(data['labels']) or '-'}")
    for review in data["reviews"]:
        stale = " (stale)" if review["stale"] else ""
        print(f"  review:  {review['user']} {review['state']} on {review['commitSha'][:12]}{stale}")
    for status in data["statuses"]:
        print(f"  status:  {status['context']} {status['state']}  {status['description']}")
    for run in data["checkRuns"]:
        print(
            f"  check:   {run['name']} {run['status']}/{run['conclusion'] or '-'}  "
            f"{run['title']} ({run['annotationsCount']} annotations)"
        )
    for changed in data["files"]:
        print(f"  file:    {changed['status']:<9} {changed['filename']}")
    blockers = data["mergeBlockers"]
    print("  merge:   " + ("ready" if not blockers else "blocked: " + "; ".join(blockers)))
    return 0


def _review(args: argparse.Namespace) -> int:
    review = _with_forge(
        lambda forge: forge.review(
            args.repo, args.number, user=args.user, state=args.review_state, body=args.body
        )
    )
    print(f"{args.repo}#{args.number}: {review.user} {review.state} {review.commit_sha[:12]}")
    return 0


def _label(args: argparse.Namespace) -> int:
    pr = _with_forge(
        lambda forge: forge.label(args.repo, args.number, add=args.add, remove=args.remove)
    )
    print(f"{pr.repository}#{pr.number} labels: {', '.join(pr.labels) or '-'}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    # MergeRefused is a WritgateError: the CLI prints its reasons and exits 1.
    pr = _with_forge(
        lambda forge: forge.merge_pull_request(args.repo, args.number, merged_by=args.user)
    )
    print(f"{pr.repository}#{pr.number} merged into {pr.base} at {pr.merge_commit_sha}")
    return 0


def _ready(args: argparse.Namespace) -> int:
    pr = _with_forge(lambda forge: forge.update_pull_request(args.repo, args.number, draft=False))
    print(f"{pr.repository}#{pr.number} is ready for review")
    return 0


def _close(args: argparse.Namespace) -> int:
    pr = _with_forge(lambda forge: forge.close_pull_request(args.repo, args.number))
    print(f"{pr.repository}#{pr.number} {pr.state}")
    return 0


def _status(args: argparse.Namespace) -> int:
    status = _with_forge(
        lambda forge: forge.set_commit_status(
            args.repo,
            args.sha,
            context=args.context,
            state=args.state,
            description=args.description,
            target_url=args.target_url,
        )
    )
    print(f"{args.repo}@{status.sha[:12]} {status.context}: {status.state}")
    return 0


def _triggers(args: argparse.Namespace) -> int:
    async def go(database: Database, settings: Settings) -> Any:
        store = TriggerStore(engine=database.engine)
        return await store.list(settings.org, limit=args.limit)

    found, next_cursor = run_async(lambda: with_database(go))
    if args.json:
        print_json({"items": [t.to_json() for t in found], "nextCursor": next_cursor})
        return 0
    if not found:
        print("no triggers")
    for t in found:
        print(
            f"{t.received_at:%Y-%m-%d %H:%M:%S}  {t.event}/{t.action}  {t.repository or '-'}"
            f"#{t.number or '-'}  {(t.head_sha or '')[:12]}  {t.delivery_id}"
            + ("" if t.dispatched_at else "  (pipelines not started yet)")
        )
        for item in t.dispatch:
            if item.get("runId"):
                print(f"    started {item['pipeline']} ({item['file']}): {item['runId']}")
            else:
                print(f"    skipped {item['pipeline'] or item['file']}: {item['reason']}")
    return 0
