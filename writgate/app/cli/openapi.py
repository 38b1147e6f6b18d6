"""``writgate openapi [--out FILE]``: the HTTP API's OpenAPI document, as the server serves it."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from writgate.errors import InputError
from writgate.settings import Settings

__all__ = ["register"]


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "openapi", help="write the HTTP API's OpenAPI document (JSON) to a file or stdout"
    )
    parser.add_argument("--out", type=Path, metavar="FILE", help="write here (default: stdout)")
    parser.set_defaults(handler=_openapi)


def _openapi(args: argparse.Namespace) -> int:
    from writgate.app.server import create_app

    # Building the app reads settings but opens no database: the document needs only routes.
    document = create_app(Settings.from_env()).openapi()
    text = json.dumps(document, indent=2, sort_keys=False) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return 0
    target: Path = args.out
    if target.is_dir():
        raise InputError("is a directory, expected a file name", file=str(target))
    if not target.parent.is_dir():
        raise InputError("the folder does not exist", file=str(target))
    # Atomic: a reader never sees half a document.
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    print(f"wrote {target} ({len(document.get('paths', {}))} paths)", file=sys.stderr)
    return 0
