"""``writgate keys …``: key management; ``keys signing generate|show-public`` for passports.

Sub-groups register themselves from ``SUBGROUPS`` (one function each taking the ``keys`` action
parsers), so adding ``keys create`` (API keys) is one more entry.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from passport import KeyFileError, generate_signing_key, load_public_key
from writgate.app.database import Database
from writgate.auth import ApiKey, KeyStore
from writgate.settings import Settings

from ._common import print_json, run_async, with_database


def _register_signing(actions: Any) -> None:
    signing = actions.add_parser("signing", help="passport signing keys (ed25519, ECDSA P-256)")
    signing_actions = signing.add_subparsers(dest="signing_command", metavar="ACTION")
    signing_actions.required = True

    generate = signing_actions.add_parser(
        "generate", help="create a private key (PKCS#8 PEM, mode 0600) and its public key"
    )
    generate.add_argument("--out", required=True, type=Path, metavar="PRIVATE.pem")
    generate.add_argument("--type", choices=("ed25519", "p256"), default="ed25519")
    generate.add_argument("--force", action="store_true", help="overwrite existing files")
    generate.add_argument("--json", action="store_true")
    generate.set_defaults(handler=_generate)

    show = signing_actions.add_parser("show-public", help="print the public key and key id")
    show.add_argument("key", type=Path, metavar="KEY", help="private or public key PEM")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_show_public)


def _register_create(actions: Any) -> None:
    create = actions.add_parser("create", help="create an API key for an org (printed once)")
    create.add_argument("--org", required=True, help="the org the key belongs to")
    create.add_argument("--name", default="", help="a label for the key")
    create.add_argument("--json", action="store_true")
    create.set_defaults(handler=_create_api_key)


def _create_api_key(args: argparse.Namespace) -> int:
    async def go(database: Database, _settings: Settings) -> tuple[ApiKey, str]:
        return await KeyStore(engine=database.engine).create(args.org, name=args.name)

    key, token = run_async(lambda: with_database(go))
    if args.json:
        print_json({"id": key.id, "org": key.org_id, "name": key.name, "key": token})
    else:
        print(token)
        print(f"API key {key.id} for org {key.org_id}: shown once, store it now.", file=sys.stderr)
    return 0


# Each entry adds one sub-group to ``writgate keys``.
SUBGROUPS: list[Callable[[Any], None]] = [_register_create, _register_signing]


def register(commands: Any) -> None:
    parser = commands.add_parser("keys", help="manage keys")
    actions = parser.add_subparsers(dest="keys_command", metavar="ACTION")
    actions.required = True
    for add in SUBGROUPS:
        add(actions)


def public_path_for(private: Path) -> Path:
    """Where the public key of ``private`` is written: ``NAME.pub.pem`` next to it."""
    name = private.name.removesuffix(".pem")
    return private.with_name(f"{name}.pub.pem")


def _write_private(path: Path, data: bytes, force: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        descriptor = os.open(path, flags, 0o600)
    except FileExistsError as exc:
        raise KeyFileError("already exists (use --force to replace it)", file=str(path)) from exc
    except OSError as exc:
        raise KeyFileError(f"cannot write: {exc.strerror or exc}", file=str(path)) from exc
    with os.fdopen(descriptor, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)  # O_TRUNC on an existing file keeps its old mode
        handle.write(data)


def _generate(args: argparse.Namespace) -> int:
    key = generate_signing_key(args.type)
    public_path = public_path_for(args.out)
    for path in (args.out, public_path):
        if path.exists() and not args.force:
            raise KeyFileError("already exists (use --force to replace it)", file=str(path))
    _write_private(args.out, key.to_pem(), args.force)
    try:
        public_path.write_bytes(key.public_key.to_pem())
    except OSError as exc:
        raise KeyFileError(f"cannot write: {exc.strerror or exc}", file=str(public_path)) from exc
    if args.json:
        print_json(
            {
                "type": key.type,
                "keyid": key.keyid,
                "privateKey": str(args.out),
                "publicKey": str(public_path),
            }
        )
    else:
        print(f"private key: {args.out} (mode 0600, {key.type})")
        print(f"public key:  {public_path}")
        print(f"keyid:       {key.keyid}")
    return 0


def _show_public(args: argparse.Namespace) -> int:
    public = load_public_key(args.key)
    if args.json:
        print_json({"type": public.type, "keyid": public.keyid, "pem": public.to_pem().decode()})
    else:
        sys.stdout.write(public.to_pem().decode())
        print(f"keyid: {public.keyid}", file=sys.stderr)
    return 0
