"""Change Passport: a signed in-toto statement of what a change is and who wrote it (DESIGN §8).

Build one with :func:`build_passport` (from a repository) or :func:`build_statement` (from facts
already gathered); identify it with :func:`passport_id`; read a passport file (bare statement or
DSSE envelope) with :func:`load_passport`.
"""

from __future__ import annotations

from .builder import (
    build_passport,
    build_passport_sync,
    commit_messages,
    recover_pull_request_provenance,
    resolve_revision,
)
from .diff import DiffFacts, FileStat, diff_command, parse_diff, read_diff, read_diff_sync
from .digest import canonical_json, passport_id
from .errors import (
    InvalidPassportError,
    KeyFileError,
    PassportError,
    RevisionError,
    SignatureError,
)
from .files import PAYLOAD_TYPE, LoadedPassport, check_statement, dump_passport, load_passport
from .model import (
    NO_PROVENANCE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    build_statement,
    normalize_writer,
    writer_from_run,
)
from .provenance import (
    PROVENANCE_PAYLOAD_TYPE,
    find_provenance_blocks,
    recover_provenance,
    render_provenance_block,
)
from .render import COMMENT_MARKER, Verification, render_html, render_markdown
from .signing import (
    KeyType,
    PublicKey,
    SigningKey,
    VerifiedEnvelope,
    generate_signing_key,
    load_public_key,
    load_signing_key,
    pae,
    sign_envelope,
    sign_statement,
    verify_envelope,
    verify_passport,
)
from .store import PassportNotFound, PassportStore, StoredPassport
from .trailers import merge_trailers, parse_trailers, trailer_values

__all__ = [  # noqa: RUF022 (plain sorted order, checked by a test)
    "COMMENT_MARKER",
    "DiffFacts",
    "FileStat",
    "InvalidPassportError",
    "KeyFileError",
    "KeyType",
    "LoadedPassport",
    "NO_PROVENANCE",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "PROVENANCE_PAYLOAD_TYPE",
    "PassportError",
    "PassportNotFound",
    "PassportStore",
    "PublicKey",
    "RevisionError",
    "STATEMENT_TYPE",
    "SignatureError",
    "SigningKey",
    "StoredPassport",
    "Verification",
    "VerifiedEnvelope",
    "build_passport",
    "build_passport_sync",
    "build_statement",
    "canonical_json",
    "check_statement",
    "commit_messages",
    "diff_command",
    "dump_passport",
    "find_provenance_blocks",
    "generate_signing_key",
    "load_passport",
    "load_public_key",
    "load_signing_key",
    "merge_trailers",
    "normalize_writer",
    "pae",
    "parse_diff",
    "parse_trailers",
    "passport_id",
    "read_diff",
    "read_diff_sync",
    "recover_provenance",
    "recover_pull_request_provenance",
    "render_html",
    "render_markdown",
    "render_provenance_block",
    "resolve_revision",
    "sign_envelope",
    "sign_statement",
    "trailer_values",
    "verify_envelope",
    "verify_passport",
    "writer_from_run",
]
