"""``writgate passport build|show|verify``: Change Passports from the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from passport import (
    InvalidPassportError,
    PublicKey,
    SignatureError,
    Verification,
    build_passport,
    dump_passport,
    load_passport,
    load_public_key,
    load_signing_key,
    normalize_writer,
    passport_id,
    recover_pull_request_provenance,
    render_html,
    render_markdown,
    resolve_revision,
    sign_statement,
    verify_passport,
    writer_from_run,
)
from passport.model import NO_PROVENANCE
from writgate.app.database import Database
from writgate.settings import Settings

from ._common import print_json, run_async, with_database

PASSWORD_ENV = "WRITGATE_SIGNING_KEY_PASSWORD"


def register(commands: Any) -> None:
    parser = commands.add_parser("passport", help="build, show and verify Change Passports")
    actions = parser.add_subparsers(dest="passport_command", metavar="ACTION")
    actions.required = True

    build = actions.add_parser("build", help="build the passport of a change (base..head)")
    build.add_argument("--repo", required=True, type=Path, help="path of the git repository")
    build.add_argument("--base", required=True, help="base revision")
    build.add_argument("--head", required=True, help="head revision")
    build.add_argument("--repository", help="repository name (default: from origin or folder)")
    writer = build.add_mutually_exclusive_group()
    writer.add_argument("--run", metavar="RUN_ID", help="take the writer from this writer run")
    writer.add_argument(
        "--writer-json", type=Path, metavar="FILE", help="the writer section or run JSON"
    )
    writer.add_argument(
        "--pr-body",
        type=Path,
        metavar="FILE",
        help="recover the writer from the signed provenance block of this PR body",
    )
    build.add_argument(
        "--trust-key",
        type=Path,
        action="append",
        default=[],
        metavar="PUB",
        help="public key trusted for PR provenance blocks (repeatable)",
    )
    build.add_argument("--sign-key", type=Path, metavar="PEM", help="PKCS#8 private key")
    build.add_argument("--out", required=True, help="output file ('-' for stdout)")
    build.add_argument("--json", action="store_true", help="print a JSON summary")
    build.set_defaults(handler=_build)

    show = actions.add_parser("show", help="render a passport file (statement or envelope)")
    show.add_argument("file", type=Path)
    show.add_argument("--format", choices=("markdown", "json", "html"), default="markdown")
    show.add_argument("--json", action="store_true", help="same as --format json")
    show.add_argument("--key", type=Path, action="append", default=[], metavar="PUB",
                      help="check the signature with this public key")  # fmt: skip
    show.add_argument("--template-dir", type=Path, help="directory of template overrides")
    show.add_argument("--max-files", type=int, default=50, help="file rows shown (markdown)")
    show.set_defaults(handler=_show)

    verify = actions.add_parser("verify", help="verify a signed passport against public keys")
    verify.add_argument("file", type=Path)
    verify.add_argument("--key", type=Path, action="append", required=True, metavar="PUB",
                        help="trusted public key (repeatable)")  # fmt: skip
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=_verify)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidPassportError(f"cannot read: {exc.strerror or exc}", file=str(path)) from exc
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, too deep, huge numbers
        line = getattr(exc, "lineno", None)
        raise InvalidPassportError(f"is not {what} JSON", file=str(path), line=line) from exc


def _password() -> bytes | None:
    value = os.environ.get(PASSWORD_ENV)
    return value.encode() if value else None


async def _run_writer(run_id: str) -> tuple[dict[str, Any], str | None]:
    """The writer section of a run in this writgate's database, and the head it published."""
    # The writer package is above passport; only the application shell joins the two.
    from writer.store import RunStore

    async def load(database: Database, settings: Settings) -> dict[str, Any]:
        store = RunStore(engine=database.engine, ledger=database.ledger)
        record = await store.get(settings.org, run_id)
        return record.to_model().model_dump(mode="json", by_alias=True)

    run = await with_database(load)
    return writer_from_run(run), (run.get("result") or {}).get("headSha")


def _writer_from_file(path: Path) -> dict[str, Any]:
    data = _read_json(path, "writer")
    if isinstance(data, dict) and "kind" not in data and "prompt" in data:
        return writer_from_run(data)
    if isinstance(data, dict) and isinstance(data.get("writer"), dict):
        data = data["writer"]
    try:
        return normalize_writer(data)
    except InvalidPassportError as exc:
        exc.file = str(path)
        raise


def _build(args: argparse.Namespace) -> int:
    key = load_signing_key(args.sign_key, _password()) if args.sign_key else None
    if args.trust_key and not args.pr_body:
        raise InvalidPassportError("only applies to --pr-body", field="--trust-key")
    trusted = [load_public_key(path) for path in args.trust_key]
    writer: dict[str, Any] | None = None
    verified, reason = False, NO_PROVENANCE
    if args.run:
        writer, published_head = run_async(lambda: _run_writer(args.run))
        head_sha, _ = resolve_revision(args.repo, args.head)
        verified = published_head == head_sha
        reason = (
            f"writer run {args.run} of this writgate published head {head_sha[:12]}"
            if verified
            else f"writer run {args.run} published head {str(published_head)[:12]}, "
            f"not {head_sha[:12]}"
        )
    elif args.writer_json:
        writer = _writer_from_file(args.writer_json)
        reason = f"writer section given in {args.writer_json} (unsigned)"
    elif args.pr_body:
        try:
            body = args.pr_body.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidPassportError("cannot read the PR body", file=str(args.pr_body)) from exc
        writer, verified, reason = run_async(
            lambda: recover_pull_request_provenance(args.repo, args.base, args.head, body, trusted)
        )

    statement = run_async(
        lambda: build_passport(
            args.repo,
            args.base,
            args.head,
            repository=args.repository,
            writer=writer,
            provenance_verified=verified,
            provenance_reason=reason,
        )
    )
    envelope = sign_statement(statement, key) if key else None
    data = dump_passport(statement, envelope)
    if args.out == "-":
        sys.stdout.write(data.decode("utf-8"))
    else:
        out = Path(args.out)
        partial = out.with_name(f".{out.name}.partial")
        try:  # a reader never sees half a passport
            partial.write_bytes(data)
            partial.replace(out)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise InvalidPassportError(
                f"cannot write: {exc.strerror or exc}", file=args.out
            ) from exc
    totals = statement["predicate"]["change"]["totals"]
    summary = {
        "passportId": passport_id(statement),
        "out": args.out,
        "signed": key is not None,
        "keyid": key.keyid if key else None,
        "totals": totals,
        "provenanceVerified": statement["predicate"]["provenanceVerified"],
        "provenanceReason": statement["predicate"]["provenanceReason"],
    }
    if args.json:
        print_json(summary)
    elif args.out != "-":
        signed = f"signed by key {key.keyid[:16]}" if key else "unsigned"
        print(
            f"wrote passport {summary['passportId']} to {args.out} ({totals['files']} files, "
            f"+{totals['additions']}/-{totals['deletions']}, {signed})"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    loaded = load_passport(args.file)
    statement = loaded.statement
    verification = Verification(signed=loaded.signed)
    if args.key and loaded.signed:
        keys = [load_public_key(path) for path in args.key]
        try:
            _, checked = verify_passport(loaded, keys)
            verification = Verification(signed=True, verified=True, keyids=checked.keyids)
        except SignatureError as exc:
            verification = Verification(signed=True, verified=False, detail=str(exc))
    output_format = "json" if args.json else args.format
    if output_format == "json":
        print_json(
            {
                "passportId": passport_id(statement),
                "signed": loaded.signed,
                "signatureVerified": verification.verified,
                "statement": statement,
            }
        )
    elif output_format == "html":
        sys.stdout.write(
            render_html(statement, verification=verification, template_dir=args.template_dir)
        )
    else:
        sys.stdout.write(
            render_markdown(
                statement,
                verification=verification,
                template_dir=args.template_dir,
                max_files=max(1, args.max_files),
            )
        )
    return 0


def _verify(args: argparse.Namespace) -> int:
    keys: list[PublicKey] = [load_public_key(path) for path in args.key]
    loaded = load_passport(args.file)
    try:
        statement, verified = verify_passport(loaded, keys)
    except SignatureError as exc:
        if args.json:
            print_json({"verified": False, "reason": str(exc)})
        print(f"writgate: passport verification failed: {args.file}: {exc}", file=sys.stderr)
        return 1
    identifier = passport_id(statement)
    if args.json:
        print_json({"verified": True, "passportId": identifier, "keyids": list(verified.keyids)})
    else:
        print(f"verified: passport {identifier} signed by key {', '.join(verified.keyids)}")
    return 0
