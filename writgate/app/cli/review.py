"""``writgate review run``: run the judge's reviewers over a change of a local repository."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from judge import ReviewResult, review_change, to_rdjson, to_rdjsonl, to_sarif
from judge.errors import ReviewConfigError
from judge.findings import severity_rank
from writgate.app.database import Database
from writgate.errors import InputError
from writgate.settings import Settings

from ._common import run_async, with_database

FORMATS = ("text", "json", "rdjson", "rdjsonl", "sarif")


def register(commands: Any) -> None:
    parser = commands.add_parser("review", help="review runs: reviewers over a change")
    actions = parser.add_subparsers(dest="review_command", metavar="ACTION")
    actions.required = True
    run = actions.add_parser("run", help="review the change base..head of a git repository")
    run.add_argument("--repo", required=True, type=Path, help="path of the git repository")
    run.add_argument("--base", required=True, help="base revision")
    run.add_argument("--head", required=True, help="head revision")
    add_reviewer_arguments(run)
    run.add_argument("--format", choices=FORMATS, default="text", help="output format")
    run.add_argument("--output", type=Path, help="write the output to FILE instead of stdout")
    run.add_argument(
        "--fail-on",
        choices=("error", "warning", "info"),
        help="exit 1 when a finding of this severity or worse is found",
    )
    run.add_argument(
        "--save",
        action="store_true",
        help="store the review run in the database (WRITGATE_DATABASE_URL)",
    )
    run.add_argument("--repository", help="repository name to store with --save")
    run.set_defaults(handler=_run)


def add_reviewer_arguments(parser: argparse.ArgumentParser) -> None:
    """``--reviewers`` and ``--config`` (shared with ``gate check``)."""
    parser.add_argument(
        "--reviewers",
        type=reviewer_names,
        help="comma-separated reviewer names (default: .writgate.yml at base, else all built-ins)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="YAML or JSON mapping reviewer names to their options",
    )


def reviewer_names(text: str) -> list[str]:
    """``a,b`` -> ``["a", "b"]`` (argparse type)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one reviewer name")
    return names


def load_reviewer_config(path: Path | None) -> dict[str, Any] | None:
    """The reviewer options file given with ``--config``."""
    if path is None:
        return None
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", file=str(path)) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ReviewConfigError(
            f"invalid YAML: {getattr(exc, 'problem', exc)}",
            file=str(path),
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from exc
    if isinstance(data, dict) and isinstance(data.get("reviewers"), dict):
        data = data["reviewers"]
    if not isinstance(data, dict):
        raise ReviewConfigError("must map reviewer names to options", file=str(path))
    for name, options in data.items():
        if options is not None and not isinstance(options, dict):
            raise ReviewConfigError("options must be a mapping", file=str(path), field=str(name))
    return {str(k): dict(v or {}) for k, v in data.items()}


def render_text(result: ReviewResult) -> str:
    """One line per finding and a summary line."""
    lines = []
    for f in result.findings:
        where = f.path or "(change)"
        if f.start_line:
            where += f":{f.start_line}"
        lines.append(f"{where}: {f.severity} [{f.reviewer}/{f.rule}] {f.message}")
    counts = {"error": 0, "warning": 0, "info": 0}
    for f in result.findings:
        counts[f.severity] += 1
    summary = (
        f"{len(result.findings)} finding(s): {counts['error']} error(s), "
        f"{counts['warning']} warning(s), {counts['info']} info "
        f"({len(result.reviewers)} reviewers"
    )
    failed = [o.name for o in result.failed]
    summary += f"; failed: {', '.join(failed)})" if failed else ")"
    lines.append(summary)
    return "\n".join(lines) + "\n"


def render(result: ReviewResult, fmt: str) -> str:
    """``result`` in ``fmt``."""
    if fmt == "text":
        return render_text(result)
    if fmt == "json":
        return json.dumps(result.to_json(), indent=2) + "\n"
    if fmt == "rdjson":
        return json.dumps(to_rdjson(result.findings), indent=2) + "\n"
    if fmt == "rdjsonl":
        return "".join(json.dumps(d) + "\n" for d in to_rdjsonl(result.findings))
    sarif = to_sarif(
        result.findings,
        reviewers=[o.name for o in result.reviewers],
        base=result.base,
        head=result.head,
    )
    return json.dumps(sarif, indent=2) + "\n"


def _run(args: argparse.Namespace) -> int:
    config = load_reviewer_config(args.config)

    async def go() -> ReviewResult:
        return await review_change(
            args.repo, args.base, args.head, reviewers=args.reviewers, config=config
        )

    result = run_async(go)
    if args.save:

        async def save(database: Database, settings: Settings) -> str:
            from judge import ReviewStore

            store = ReviewStore(engine=database.engine, ledger=database.ledger)
            run = await store.save(settings.org, result, repository=args.repository)
            return run.id

        run_id = run_async(lambda: with_database(save))
        print(f"review run {run_id}", file=sys.stderr)
    output = render(result, args.format)
    if args.output:
        args.output.write_text(output)
    else:
        sys.stdout.write(output)
    if args.fail_on and any(
        severity_rank(f.severity) >= severity_rank(args.fail_on) for f in result.findings
    ):
        return 1
    return 0
