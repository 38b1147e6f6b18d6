"""The signed provenance block of a pull request body, and recovering the writer from it.

writgate's writer ends every PR body it renders with :func:`render_provenance_block`::

    > writgate run `run_…` · model `…` · tags `ci`, `payments`
    <!-- writgate-provenance v1
    eyJwYXlsb2FkVHlwZSI6ImFwcGxpY2F0aW9uL3ZuZC53cml0Z2F0ZS5wcm92ZW5hbmNlK2pzb24iLC…
    -->

The visible line is for people and is never read back. The HTML comment carries a base64 DSSE
envelope (payload type ``application/vnd.writgate.provenance+json``) whose payload is the
canonical JSON ``{"_type", "runId", "headSha", "writer"}``, ``writer`` being the passport's
writer section. :func:`recover_provenance` trusts the block only when its signature verifies
with a configured key, its head SHA is the PR's head and its run id is the expected one, so an
edited body (tags, metadata) or a block copied from another PR changes nothing the gate sees.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from .digest import canonical_json
from .errors import InvalidPassportError, SignatureError
from .model import NO_PROVENANCE, normalize_writer
from .signing import PublicKey, SigningKey, sign_envelope, verify_envelope
from .trailers import RUN_TRAILER, trailer_values

__all__ = [
    "PROVENANCE_PAYLOAD_TYPE",
    "PROVENANCE_TYPE",
    "find_provenance_blocks",
    "recover_provenance",
    "render_provenance_block",
]

PROVENANCE_PAYLOAD_TYPE = "application/vnd.writgate.provenance+json"
PROVENANCE_TYPE = "https://writgate.dev/provenance/v1"
_MARKER = "writgate-provenance v1"
_BLOCK = re.compile(r"<!--[ \t]*writgate-provenance[ \t]+v1[ \t]*\r?\n(?P<data>.*?)-->", re.DOTALL)

Recovered = tuple[dict[str, Any] | None, bool, str]


def _summary(writer: Mapping[str, Any], run_id: str | None) -> str:
    parts = []
    if run_id:
        parts.append(f"writgate run `{run_id}`")
    if writer.get("model"):
        parts.append(f"model `{writer['model']}`")
    if writer.get("tags"):
        parts.append("tags " + ", ".join(f"`{tag}`" for tag in writer["tags"]))
    return "> " + (" · ".join(parts) or "writgate provenance")


def render_provenance_block(
    writer: Mapping[str, Any],
    *,
    head_sha: str,
    key: SigningKey,
    run_id: str | None = None,
) -> str:
    """The Markdown block that ends a PR body: a visible summary and the signed envelope.

    ``writer`` is the passport writer section (camelCase); ``run_id`` defaults to its ``runId``.
    """
    section = normalize_writer(writer)
    run_id = run_id or section["runId"]
    section["runId"] = run_id
    payload = {"_type": PROVENANCE_TYPE, "runId": run_id, "headSha": head_sha, "writer": section}
    envelope = sign_envelope(canonical_json(payload), PROVENANCE_PAYLOAD_TYPE, key)
    encoded = base64.b64encode(canonical_json(envelope)).decode("ascii")
    body = "\n".join(textwrap.wrap(encoded, 76))
    return f"{_summary(section, run_id)}\n<!-- {_MARKER}\n{body}\n-->\n"


def find_provenance_blocks(pr_body: str) -> list[str]:
    """The base64 texts of every provenance block in a PR body (whitespace removed)."""
    return [re.sub(r"\s+", "", match.group("data")) for match in _BLOCK.finditer(pr_body)]


def _decode_envelope(data: str) -> dict[str, Any] | None:
    try:
        envelope = json.loads(base64.b64decode(data, validate=True).decode("utf-8"))
    except (binascii.Error, ValueError):  # base64, UTF-8 and JSON errors are all ValueErrors
        return None
    return envelope if isinstance(envelope, dict) else None


def recover_provenance(
    pr_body: str | None,
    commit_trailers: Mapping[str, Sequence[str]],
    head_sha: str,
    run_id: str | None,
    public_keys: Sequence[PublicKey],
) -> Recovered:
    """The writer section signed into a PR body, if it can be trusted.

    Returns ``(writer, verified, reason)``: the signed writer section, True and how it was
    verified; or None, False and why not. ``commit_trailers`` are the trailers of the PR's
    commits (``{"Writgate-Run": ["run_…"], …}``, keys case-insensitive); ``run_id`` is the run
    the caller expects, if it knows one. The run id must match ``run_id`` and the trailers.
    """
    blocks = find_provenance_blocks(pr_body or "")
    if not blocks:
        return None, False, NO_PROVENANCE
    if len(blocks) > 1:
        return None, False, f"{len(blocks)} provenance blocks in the PR body (expected one)"
    envelope = _decode_envelope(blocks[0])
    if envelope is None:
        return None, False, "the provenance block is not a base64 DSSE envelope"
    if not public_keys:
        return None, False, "no provenance verification key is configured"
    try:
        verified = verify_envelope(envelope, public_keys, payload_type=PROVENANCE_PAYLOAD_TYPE)
    except SignatureError as exc:
        return None, False, f"provenance signature does not verify: {exc}"
    try:
        payload = json.loads(verified.payload.decode("utf-8"))
    except ValueError:
        return None, False, "the signed provenance payload is not JSON"
    if not isinstance(payload, dict) or payload.get("_type") != PROVENANCE_TYPE:
        return None, False, "the signed payload is not writgate provenance"
    signed_head = payload.get("headSha")
    if signed_head != head_sha:
        return None, False, f"provenance is for head {str(signed_head)[:12]}, not {head_sha[:12]}"
    signed_run = payload.get("runId")
    trailer_runs = trailer_values(commit_trailers, RUN_TRAILER)
    if run_id is not None and signed_run != run_id:
        return None, False, f"provenance is for run {signed_run}, not {run_id}"
    if trailer_runs and signed_run not in trailer_runs:
        return (
            None,
            False,
            f"provenance is for run {signed_run}, the {RUN_TRAILER} trailers name "
            + ", ".join(trailer_runs),
        )
    if run_id is None and not trailer_runs:
        return None, False, f"no run id to match: no {RUN_TRAILER} trailer and no expected run"
    writer = payload.get("writer")
    if not isinstance(writer, dict):
        return None, False, "the signed provenance has no writer section"
    try:
        section = normalize_writer(writer)
    except InvalidPassportError as exc:
        return None, False, f"the signed writer section is invalid: {exc}"
    keyid = verified.keyids[0]
    return (
        section,
        True,
        f"signed provenance verified with key {keyid[:16]}…; head {head_sha[:12]} and run "
        f"{signed_run} match",
    )
